import { describe, expect, it } from 'vitest';
import { IncrementalDetokenizer, StopMatcher, TokenTextStream } from '../../src/text/stream.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { specJson } from '../helpers/golden.js';

const tok = Phi4Tokenizer.offline();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const eos: number[] = specJson('special_tokens.json').generation_config.eos_token_id;

describe('IncrementalDetokenizer', () => {
  it('never splits a UTF-8 character and adds up to the full decode', () => {
    const text = specJson('tokenizer_golden_ids.json').multilingual_sample.text + ' Ωμέγα 👩‍👩‍👧 ½ 中文';
    const ids = tok.encode(text);
    const d = new IncrementalDetokenizer(tok);
    const deltas = ids.map((id) => d.push(id));
    expect(deltas.some((s) => s === '')).toBe(true); // some tokens end mid-character, so they emit nothing yet
    for (const s of deltas) {
      expect(s).not.toContain('\ufffd');
      expect(s).not.toMatch(LONE_SURROGATE);
    }
    expect(deltas.join('') + d.flush()).toBe(text);
  });

  it('holds an incomplete character until it completes; flush turns a dangling one into U+FFFD', () => {
    const ids = tok.encode('🤖');
    expect(ids.length).toBeGreaterThan(1);
    const d = new IncrementalDetokenizer(tok);
    expect(d.push(ids[0]!)).toBe('');
    expect(ids.slice(1).map((id) => d.push(id)).join('')).toBe('🤖');
    const e = new IncrementalDetokenizer(tok);
    e.push(ids[0]!);
    expect(e.flush()).toBe('\ufffd');
  });

  it('skips special tokens by default but keeps tool tokens', () => {
    const ids = tok.encode('<|assistant|><|tool_call|>x<|/tool_call|><|end|>');
    const d = new IncrementalDetokenizer(tok);
    expect(ids.map((id) => d.push(id)).join('')).toBe('<|tool_call|>x<|/tool_call|>');
    const keep = new IncrementalDetokenizer(tok, { skipSpecialTokens: false });
    expect(ids.map((id) => keep.push(id)).join('')).toBe('<|assistant|><|tool_call|>x<|/tool_call|><|end|>');
  });
});

describe('StopMatcher', () => {
  it('holds back a possible stop prefix and emits text before a completed stop', () => {
    const m = new StopMatcher(['STOP', '\n\n']);
    expect(m.push('Hello S')).toEqual({ text: 'Hello ', stopped: false });
    expect(m.push('TO')).toEqual({ text: '', stopped: false });
    expect(m.push('P world')).toEqual({ text: '', stopped: true });
    expect(m.stoppedOn).toBe('STOP');
    expect(m.push('more')).toEqual({ text: '', stopped: true });
    expect(m.flush()).toBe('');
  });

  it('releases held text when it stops looking like a stop string, and on flush', () => {
    const m = new StopMatcher(['STOP']);
    expect(m.push('ST')).toEqual({ text: '', stopped: false });
    expect(m.push('ay')).toEqual({ text: 'STay', stopped: false });
    expect(m.push('..S')).toEqual({ text: '..', stopped: false });
    expect(m.flush()).toBe('S');
  });

  it('the earliest stop wins; text before it in the same chunk is emitted', () => {
    const m = new StopMatcher(['bb', 'a']);
    expect(m.push('xxbbya')).toEqual({ text: 'xx', stopped: true });
    expect(m.stoppedOn).toBe('bb');
    expect(() => new StopMatcher([''])).toThrow(/non-empty/);
  });
});

describe('TokenTextStream', () => {
  it('stops on an eos id without emitting it, and counts tokens', () => {
    const ids = [...tok.encode('Hi there'), eos[0]!, 13225];
    const s = new TokenTextStream(tok, { stopIds: eos });
    let text = '';
    for (const id of ids) {
      const step = s.push(id);
      text += step.text;
      if (step.finishReason) break;
    }
    expect(text).toBe('Hi there');
    expect(s.finishReason).toBe('stop');
    expect(s.completionTokens).toBe(ids.length - 1);
    expect(() => s.push(1)).toThrow(/finished/);
  });

  it('uses the tokenizer eos ids by default and finishes with length at max_tokens', () => {
    const s = new TokenTextStream(tok, { maxTokens: 2 });
    const ids = tok.encode('one two three');
    expect(s.push(ids[0]!).finishReason).toBeNull();
    const last = s.push(ids[1]!);
    expect(last).toEqual({ text: tok.decode([ids[1]!]), finishReason: 'length' });
    const d = new TokenTextStream(tok);
    expect(d.push(eos[1]!)).toEqual({ text: '', finishReason: 'stop' });
    expect(() => new TokenTextStream(tok, { maxTokens: 0 })).toThrow(/max_tokens/);
  });

  it('applies stop strings across token boundaries and flushes held text at the end', () => {
    const ids = tok.encode('The answer is 42. END of story');
    const s = new TokenTextStream(tok, { stopStrings: ['END'] });
    let text = '';
    for (const id of ids) {
      const step = s.push(id);
      text += step.text;
      if (step.finishReason) break;
    }
    expect(text).toBe('The answer is 42. ');
    expect(s.stoppedOn).toBe('END');
    const t = new TokenTextStream(tok, { stopStrings: ['42!'] });
    const out = tok.encode('say 42').map((id) => t.push(id).text).join('');
    expect(out + t.end().text).toBe('say 42');
    expect(t.finishReason).toBe('length');
  });
});
