// Trie walk and mask against a brute-force reference (step every token's bytes through the DFA), on a small
// hand-made vocabulary where every case can be named, and on the real o200k vocabulary.
import { describe, expect, it } from 'vitest';
import {
  compileJsonSchema, compileToolChoice, GrammarConstraint, grammarRuntime, type Grammar, TokenTrie, tokenTrieFor,
} from '../../src/constrained/index.js';
import { DEAD } from '../../src/constrained/dfa.js';
import { PlainChains } from '../../src/constrained/plain.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';

const EOS = 100, TOOL_OPEN = 101, TOOL_CLOSE = 102, OTHER_SPECIAL = 103;
const SMALL = ['{', '}', '"', 'a', 'ab', 'abc', '"a', '":', ':', ' ', '  ', '\n', '1', '12', '0', '-', ',', '[', ']', 't', 'true', 'false',
  'null', '"}', '{"', 'x"', '\\', '\\"', '\\u', '00e9', '\xc3\xa9', '\xc3', '\xa9', '\x01', 'zz']; // binary strings (bytes)

function smallTrie(vocabSize = 110): TokenTrie {
  const tokens = SMALL.map((s, id) => ({ id, bytes: s }));
  // Two ids with identical bytes: both must be allowed or masked together.
  tokens.push({ id: 60, bytes: 'ab' });
  return new TokenTrie({
    vocabSize,
    tokens,
    added: [{ id: EOS, content: '<|end|>' }, { id: TOOL_OPEN, content: '<|tool_call|>' }, { id: TOOL_CLOSE, content: '<|/tool_call|>' }, { id: OTHER_SPECIAL, content: '<|user|>' }],
    eosIds: [EOS],
  });
}

/** Reference: a token is allowed iff all its bytes step through the DFA (specials: their symbol; EOS: accepting). */
function bruteAllowed(grammar: Grammar, trie: TokenTrie, state: number, vocab: number): Set<number> {
  const rt = grammarRuntime(grammar, trie);
  const out = new Set<number>();
  for (let id = 0; id < vocab; id++) {
    if (trie.eosIds.includes(id)) { if (rt.dfa.accepting(state)) out.add(id); continue; }
    const k = rt.specialIds.indexOf(id);
    if (k >= 0) { if (rt.dfa.nextSpecial(state, k) !== DEAD) out.add(id); continue; }
    const bytes = trie.tokenBytes(id);
    if (!bytes) continue;
    let s = state;
    for (const b of bytes) { s = rt.dfa.next(s, b); if (s === DEAD) break; }
    if (s !== DEAD) out.add(id);
  }
  return out;
}

function maskedSet(c: GrammarConstraint, vocab: number): Set<number> {
  const logits = new Float32Array(vocab).fill(1);
  c.mask(logits);
  const out = new Set<number>();
  for (let i = 0; i < vocab; i++) if (logits[i] === 1) out.add(i);
  return out;
}

/** Walks `text` token by token (greedy longest match in the small vocab), comparing the mask at every step. */
function compareAlong(grammar: Grammar, trie: TokenTrie, ids: number[], vocab: number): void {
  const c = new GrammarConstraint(grammar, trie);
  for (const id of ids) {
    const state = (c as unknown as { state: number }).state;
    const got = maskedSet(c, vocab);
    const want = bruteAllowed(grammar, trie, state, vocab);
    const extra = [...got].filter((x) => !want.has(x)), missing = [...want].filter((x) => !got.has(x));
    expect({ extra, missing }, `state ${state}`).toEqual({ extra: [], missing: [] });
    expect(got.size).toBe(want.size);
    expect(got.has(id), `token ${id} should be allowed`).toBe(true);
    c.accept(id);
  }
}

describe('small vocabulary', () => {
  const trie = smallTrie();
  const grammar = compileJsonSchema({ type: 'object', properties: { a: { type: 'string' }, ab: { type: 'integer' } }, required: ['ab'], additionalProperties: false });
  const id = (s: string) => SMALL.indexOf(s);

  it('preorder trie: every token reachable, subtree ends nest', () => {
    expect(trie.numNodes).toBeGreaterThan(SMALL.length - 5);
    for (let i = 0; i < trie.numNodes; i++) {
      expect(trie.nodeEnd[i]).toBeGreaterThan(i);
      for (let j = i + 1; j < trie.nodeEnd[i]!; j++) expect(trie.nodeDepth[j]).toBeGreaterThan(trie.nodeDepth[i]!);
    }
    expect(trie.dupTokens.size).toBe(1);
  });

  it('mask equals the brute-force set at every step of {"a":"ab","ab":12}', () => {
    const ids = ['{"', 'a', '":', '"', 'ab', '"', ',', '"', 'ab', '":', '12', '}'].map(id);
    expect(ids).not.toContain(-1);
    compareAlong(grammar, trie, ids, 110);
  });

  it('duplicate-byte ids, EOS only when accepting, added tokens and padding never', () => {
    const c = new GrammarConstraint(grammar, trie);
    c.accept(id('{"'));
    const inKey = maskedSet(c, 110);
    expect(inKey.has(id('ab')) && inKey.has(60)).toBe(true);
    expect(inKey.has(id('abc'))).toBe(false); // no property "abc"
    expect(inKey.has(EOS) || inKey.has(OTHER_SPECIAL) || inKey.has(TOOL_OPEN) || inKey.has(105)).toBe(false);
    for (const t of [60, id('":'), id('12'), id('}')]) c.accept(t);
    expect(c.canEnd()).toBe(true);
    expect(c.isComplete()).toBe(true);
    expect([...maskedSet(c, 110)]).toEqual([EOS]);
    c.accept(EOS);
    expect(c.finished).toBe(true);
    expect(maskedSet(c, 110).size).toBe(0);
  });

  it('raw control bytes and invalid UTF-8 never enter a string; escapes do', () => {
    const g = compileJsonSchema({ type: 'string' });
    const c = new GrammarConstraint(g, trie);
    c.accept(id('"'));
    const allowed = maskedSet(c, 110);
    expect(allowed.has(id('\x01'))).toBe(false);
    expect(allowed.has(id('\xa9'))).toBe(false); // a lone continuation byte
    expect(allowed.has(id('\xc3'))).toBe(true); // a lead byte: its continuation may follow
    expect(allowed.has(id('\\"')) && allowed.has(id('\\u'))).toBe(true);
    c.accept(id('\xc3'));
    expect([...maskedSet(c, 110)]).toEqual([id('\xa9')]);
    c.accept(id('\xa9'));
    c.accept(id('\\u'));
    c.accept(id('00e9'));
    c.accept(id('"'));
    expect(c.isComplete()).toBe(true);
    expect(() => new GrammarConstraint(g, trie).accept(id('a'))).toThrow(/not allowed/);
  });

  it('tool-call grammar: the markers are matched as added tokens', () => {
    const g = compileToolChoice([{ type: 'function', function: { name: 'a', parameters: { type: 'object', properties: {}, additionalProperties: false } } }], 'required', { maxIndent: 0 })!;
    const c = new GrammarConstraint(g, trie);
    expect([...maskedSet(c, 110)]).toEqual([TOOL_OPEN]);
    c.accept(TOOL_OPEN);
    expect(maskedSet(c, 110).has(id('['))).toBe(true);
  });
});

describe('real o200k vocabulary', () => {
  it('trie mask equals brute force along a generated output', () => {
    const tok = Phi4Tokenizer.offline();
    const trie = tokenTrieFor(tok);
    const grammar = compileJsonSchema({
      type: 'object', properties: { name: { type: 'string' }, n: { type: 'number' }, k: { enum: ['x', 'y'] } }, required: ['name', 'n', 'k'],
    });
    const text = '{"name": "Zoë \\"\\u00e9", "n": -12.5e3, "k": "y"}';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    compareAlong(grammar, trie, ids, trie.vocabSize);
  });

  it('bounded strings (the plain-token fast path near the bound) match brute force too', () => {
    const tok = Phi4Tokenizer.offline();
    const trie = tokenTrieFor(tok);
    const grammar = compileJsonSchema({ type: 'object', properties: { s: { type: 'string', minLength: 2, maxLength: 7 } }, required: ['s'] });
    const text = '{"s":"Zoë hi!"}';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    compareAlong(grammar, trie, ids, trie.vocabSize);
    // The fast path applies inside the string, with exactly the characters left before the bound.
    const rt = grammarRuntime(grammar, trie);
    const chains = new PlainChains(rt.dfa, trie.plain!.maxChars);
    const at = (prefix: string) => [...Buffer.from(prefix, 'utf8')].reduce((s, b) => rt.dfa.next(s, b), rt.dfa.start);
    expect(chains.run(at('{"s":'))).toBe(0);
    expect(chains.run(at('{"s":"'))).toBe(7);
    expect(chains.run(at('{"s":"Zoë h'))).toBe(2);
    expect(chains.run(at('{"s":"Zo\\u00eb hi!'))).toBe(0);
  });
});
