import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import { describe, expect, it } from 'vitest';
import { bytePairMerge, o200kVocab, rustPatternToRegExp, utf8Binary } from '../../src/text/bpe.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { goldenPath, specJson } from '../helpers/golden.js';

const tok = Phi4Tokenizer.offline();
const special = specJson('special_tokens.json');
const goldenCases = Object.entries<{ text: string; ids: number[] }>(specJson('tokenizer_golden_ids.json'));

describe('Phi4Tokenizer.offline', () => {
  it.each(goldenCases)('reproduces golden ids: %s', (_name, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
    expect(tok.decode(c.ids)).toBe(c.text);
  });

  it('knows every added token of the spec with its flags', () => {
    for (const t of special.added_tokens) {
      expect(tok.tokenToId(t.content)).toBe(t.id);
      expect(tok.idToToken(t.id)).toBe(t.content);
      expect(tok.addedToken(t.id)).toMatchObject({ special: t.special, rstrip: t.rstrip, lstrip: t.lstrip });
      expect(tok.encode(t.content)).toEqual([t.id]);
    }
    expect(tok.eosTokenIds).toEqual(special.generation_config.eos_token_id);
  });

  it('rstrip tokens absorb following whitespace; non-rstrip tokens do not', () => {
    expect(tok.encode('<|user|>\nHi')).toEqual(tok.encode('<|user|>Hi'));
    expect(tok.encode('<|user|> \t\n Hi<|end|>\n<|assistant|>  ')).toEqual(tok.encode('<|user|>Hi<|end|><|assistant|>'));
    // <|endoftext|> has rstrip false: the newline stays and is encoded.
    const eot = tok.encode('<|endoftext|>\nHi');
    expect(eot[0]).toBe(199999);
    expect(eot.length).toBeGreaterThan(2);
    expect(tok.decode(eot)).toBe('<|endoftext|>\nHi');
  });

  it('lstrip tokens absorb preceding whitespace (generic HF flag; unused by Phi)', () => {
    const t = new Phi4Tokenizer({ vocab: o200kVocab(), addedTokens: [{ id: 200100, content: '<X>', special: true, lstrip: true, rstrip: false, normalized: false, single_word: false }] });
    expect(t.encode('a \n <X> b')).toEqual([...t.encode('a'), 200100, ...t.encode(' b')]);
  });

  it('matches the longest added token at a position and adds no BOS', () => {
    const ids = tok.encode('<|endoftext10|><|endoftext|>x');
    expect(ids.slice(0, 2)).toEqual([200010, 199999]);
    expect(tok.encode('x')[0]).not.toBe(199999);
    expect(tok.encode('')).toEqual([]);
  });

  it('round-trips unicode, emoji, CJK, combining marks and odd whitespace', () => {
    const texts = [
      'Grüße, naïve café — “quotes” ‘x’ … 😀👩‍👩‍👧‍👦🏳️‍🌈',
      '日本語のテキスト、中文文本。한국어 텍스트 ภาษาไทย العربية עברית',
      'e\u0301 a\u0308 \u00a0nbsp\u2003em\u3000ideo\r\n\r\nCRLF\t\ttabs   ',
      'code: for (let i = 0; i < 10; i++) { console.log(`${i}`); } // done\n',
      '1234567890 3.14159 -42 1e-9 0x1F',
    ];
    for (const t of texts) expect(tok.decode(tok.encode(t))).toBe(t);
  });

  it('skipSpecialTokens drops special tokens but keeps tool tokens (special:false)', () => {
    const text = '<|system|>S<|tool|>[{"name":"f"}]<|/tool|><|end|><|assistant|><|tool_call|>{"x":1}<|/tool_call|><|end|>';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('S<|tool|>[{"name":"f"}]<|/tool|><|tool_call|>{"x":1}<|/tool_call|>');
  });

  it('decodeBytes keeps raw bytes; decode replaces invalid UTF-8; unknown ids are skipped', () => {
    const ids = tok.encode('🤖');
    expect(ids.length).toBeGreaterThan(1); // the emoji spans several byte tokens
    expect(Buffer.from(tok.decodeBytes(ids)).toString('utf8')).toBe('🤖');
    expect(tok.decode(ids.slice(0, 1))).toContain('\ufffd');
    expect(tok.decode([13225, 200005, 199998, 250000, -1])).toBe(tok.decode([13225]));
    expect(tok.hasToken(199998)).toBe(false);
    expect(tok.hasToken(200028)).toBe(true);
    expect(tok.vocabSize).toBe(200029);
  });

  it('agrees with js-tiktoken o200k_base on plain text (random strings)', () => {
    const ref = new Tiktoken(o200k);
    const alphabet = ['a', 'b', 'Th', 'e', ' ', '  ', '\n', '\t', "'s", "'LL", '1', '23', '.', ',', '!', '?', 'é', 'ß', '中', '文', '😀', 'Ω', '-', '/', '\r\n', 'ing', 'tion'];
    let state = 12345;
    const rand = (n: number) => { state = (Math.imul(state, 1103515245) + 12345) >>> 0; return state % n; };
    for (let trial = 0; trial < 300; trial++) {
      let s = '';
      const len = 1 + rand(40);
      for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)];
      expect(tok.encode(s), JSON.stringify(s)).toEqual(ref.encode(s));
    }
  });

  it('the offline rank table is byte-identical to the official o200k_base.tiktoken (pinned sha256)', () => {
    // The .tiktoken file is one "<base64 token> <rank>" line per rank; rebuild it and compare size and hash.
    const v = o200kVocab();
    const lines = v.tokenById.map((bin, id) => `${Buffer.from(bin!, 'latin1').toString('base64')} ${id}\n`).join('');
    expect(Buffer.byteLength(lines)).toBe(special.base_vocabulary.o200k_base_bytes);
    expect(createHash('sha256').update(lines).digest('hex')).toBe(special.base_vocabulary.o200k_base_sha256);
  });

  it('heap BPE equals the plain tiktoken merge loop on long pieces', () => {
    const ranks = o200kVocab().rankByBinary;
    for (const piece of ['a'.repeat(257), 'abcabcabd'.repeat(30), utf8Binary('ありがとう'.repeat(20))]) {
      expect(bytePairMerge(piece, ranks)).toEqual(naiveMerge(piece, ranks));
    }
  });

  it('encodes a ~4000-token prompt and round-trips it', () => {
    const text = Array.from({ length: 500 }, (_, i) => `Line ${i}: the quick brown fox #${i * 7} jumps.\n`).join('');
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(4000);
    expect(tok.decode(ids)).toBe(text);
  });

  it('rejects non-string input with a clear error', () => {
    expect(() => tok.encode(42 as unknown as string)).toThrow(/expects a string/);
  });
});

describe('pre-tokenizer regex translation', () => {
  it('uses Unicode White_Space for \\s (U+0085 is space, U+FEFF is not) and expands (?i:…)', () => {
    const re = rustPatternToRegExp("\\s+|(?i:'s)");
    expect('\u0085'.match(re)).toEqual(['\u0085']);
    expect('\ufeff'.match(re)).toBeNull();
    expect("'S".match(re)).toEqual(["'S"]);
  });
});

describe('Phi4Tokenizer.fromDir', () => {
  it('falls back to the offline ranks for a checkpoint folder without tokenizer files', () => {
    const t = Phi4Tokenizer.fromDir(goldenPath('model_hf'));
    for (const [, c] of goldenCases) expect(t.encode(c.text)).toEqual(c.ids);
    expect(t.chatTemplate).toBe(tok.chatTemplate);
  });

  it('uses tokenizer_config.json, chat_template.jinja and generation_config.json when present', () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi4tok-'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
      chat_template: 'CONFIG {{ messages[0].content }}',
      eos_token: { content: '<|end|>' },
      added_tokens_decoder: { '200021': { content: '<|user|>', special: true, rstrip: false } },
    }));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 200020 }));
    let t = Phi4Tokenizer.fromDir(dir);
    expect(t.chatTemplate).toBe('CONFIG {{ messages[0].content }}');
    expect(t.eosToken).toBe('<|end|>');
    expect(t.eosTokenIds).toEqual([200020]);
    // Only <|user|> is an added token now, and without rstrip the newline is encoded.
    expect(t.encode('<|user|>\nHi').length).toBe(3);
    expect(t.encode('<|end|>')).not.toEqual([200020]);
    writeFileSync(join(dir, 'chat_template.jinja'), 'FILE');
    t = Phi4Tokenizer.fromDir(dir);
    expect(t.chatTemplate).toBe('FILE');
  });

  it('gives clear errors for a missing folder and malformed files', () => {
    expect(() => Phi4Tokenizer.fromDir('/nonexistent/phi4')).toThrow(/not found/);
    const dir = mkdtempSync(join(tmpdir(), 'phi4tok-bad-'));
    writeFileSync(join(dir, 'tokenizer_config.json'), '{ not json');
    expect(() => Phi4Tokenizer.fromDir(dir)).toThrow(/tokenizer_config\.json: not valid JSON/);
    writeFileSync(join(dir, 'tokenizer_config.json'), '{}');
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Unigram', vocab: [] } }));
    expect(() => Phi4Tokenizer.fromDir(dir)).toThrow(/Unigram.*not supported/);
  });
});

/** tiktoken's reference O(n²) loop, for cross-checking the heap version. */
function naiveMerge(piece: string, ranks: Map<string, number>): number[] {
  const bounds = Array.from({ length: piece.length + 1 }, (_, i) => i);
  for (;;) {
    let best = -1, bestRank = Infinity;
    for (let i = 0; i + 2 < bounds.length; i++) {
      const r = ranks.get(piece.slice(bounds[i], bounds[i + 2]));
      if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
    }
    if (best < 0) break;
    bounds.splice(best + 1, 1);
  }
  return bounds.slice(0, -1).map((b, i) => ranks.get(piece.slice(b, bounds[i + 1]))!);
}
