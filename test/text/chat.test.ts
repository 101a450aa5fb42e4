import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyChatTemplate, renderChat } from '../../src/text/chat.js';
import { PHI4MM_CHAT_TEMPLATE } from '../../src/text/chat_template.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { SPEC_DIR, specJson } from '../helpers/golden.js';

const golden = specJson('tokenizer_golden_ids.json');
const tok = Phi4Tokenizer.offline();

describe('chat template', () => {
  it('the built-in template is byte-exact with the spec copy and the hub tokenizer_config', () => {
    expect(PHI4MM_CHAT_TEMPLATE).toBe(readFileSync(join(SPEC_DIR, 'chat_template.jinja'), 'utf8'));
    expect(PHI4MM_CHAT_TEMPLATE).toBe(specJson('tokenizer_config.phi4mm.json').chat_template);
  });

  it('renders the golden text_chat prompt, whose ids match the golden ids', () => {
    const text = applyChatTemplate(
      [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'How to explain Internet for a medieval knight?' }],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(golden.text_chat.text);
    expect(tok.encode(text)).toEqual(golden.text_chat.ids);
  });

  it('without a generation prompt appends eos_token; with tools on a system message renders the tool block', () => {
    const msgs = [
      { role: 'system', content: 'Sys', tools: [{ name: 'f', parameters: {} }] },
      { role: 'user', content: 'Q' },
      { role: 'assistant', content: 'A' },
    ];
    expect(applyChatTemplate(msgs)).toBe('<|system|>Sys<|tool|>[{"name":"f","parameters":{}}]<|/tool|><|end|><|user|>Q<|end|><|assistant|>A<|end|><|endoftext|>');
    expect(applyChatTemplate([{ role: 'user', content: 'Q', tools: '[]' }], { addGenerationPrompt: true })).toBe('<|user|>Q<|end|><|assistant|>');
  });

  it('renders a checkpoint template through the tokenizer (template, eos and extra variables)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi4chat-'));
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ eos_token }}{{ who }}');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|end|>' }));
    const custom = Phi4Tokenizer.fromDir(dir);
    expect(renderChat(custom, [{ role: 'user', content: 'hi' }], { variables: { who: '!' } })).toBe('[user:hi]<|end|>!');
  });

  it('gives clear errors for bad messages and broken templates', () => {
    expect(() => applyChatTemplate([{ role: 'user', content: [{ type: 'text' }] as unknown as string }])).toThrow(/content must be a string/);
    expect(() => applyChatTemplate([{ role: '', content: 'x' }])).toThrow(/role must be a non-empty string/);
    expect(() => applyChatTemplate([], { template: '{% for %}' })).toThrow(/chat template/);
    expect(() => applyChatTemplate([], { template: "{{ raise_exception('nope') }}" })).toThrow(/nope/);
  });
});
