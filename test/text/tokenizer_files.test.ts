import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { binaryToByteLevel, O200K_PATTERN, rustPatternToRegExp, utf8Binary } from '../../src/text/bpe.js';
import { PHI4MM_CHAT_TEMPLATE } from '../../src/text/chat_template.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { writeTokenizerFiles } from '../../src/text/tokenizer_files.js';
import { specJson } from '../helpers/golden.js';

const goldenCases = Object.entries<{ text: string; ids: number[] }>(specJson('tokenizer_golden_ids.json'));
const offline = Phi4Tokenizer.offline();
let dir: string;
let tokJson: any;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'phi4tokfiles-'));
  writeTokenizerFiles(dir);
  tokJson = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
});

describe('writeTokenizerFiles', () => {
  it('tokenizer_config.json matches the hub file on every key it sets', () => {
    const written = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    const hub = specJson('tokenizer_config.phi4mm.json');
    for (const key of Object.keys(hub)) expect(written[key], key).toEqual(hub[key]);
    expect(written.chat_template).toBe(PHI4MM_CHAT_TEMPLATE);
  });

  it('fromDir on the written files encodes the golden cases like offline()', () => {
    const t = Phi4Tokenizer.fromDir(dir);
    expect(t.source).toContain('tokenizer.json');
    for (const [name, c] of goldenCases) {
      expect(t.encode(c.text), name).toEqual(c.ids);
      expect(t.encode(c.text), name).toEqual(offline.encode(c.text));
      expect(t.decode(c.ids), name).toBe(c.text);
    }
    expect(t.vocabSize).toBe(offline.vocabSize);
    expect(t.idToToken(1879)).toBe(offline.idToToken(1879));
  });

  it('puts added tokens in model.vocab under their own ids (HF would renumber them otherwise)', () => {
    const added = specJson('special_tokens.json').added_tokens;
    for (const t of added) expect(tokJson.model.vocab[t.content]).toBe(t.id);
    expect(tokJson.added_tokens.map((t: any) => t.id)).toEqual(added.map((t: any) => t.id));
  });

  it('merges let HF-style BPE rebuild tokens and reproduce tiktoken ids', () => {
    let multiByte = 0;
    for (let id = 0; id < 199998; id++) if (offline.decodeBytes([id]).length > 1) multiByte++;
    expect(tokJson.model.merges.length).toBe(multiByte); // one merge per multi-byte token
    const bpe = hfBpe(tokJson.model.vocab, tokJson.model.merges);
    // Every sampled multi-byte token is reachable through the merge list alone (no whole-word shortcut).
    for (let id = 256; id < 199998; id += 211) {
      const token = offline.idToToken(id)!;
      expect(bpe([...token]), `token ${id}`).toEqual([id]);
    }
    // Whole pre-tokenized words give the same ids as the rank-based encoder.
    const text = goldenCases.map(([, c]) => c.text).join(' ') + ' antidisestablishmentarianism Pneumonoultramicroscopic 😀🤖🎉';
    for (const [piece] of text.matchAll(rustPatternToRegExp(O200K_PATTERN))) {
      expect(bpe([...binaryToByteLevel(utf8Binary(piece))]), piece).toEqual(offline.encodeOrdinary(piece));
    }
  });
});

/** transformers-style BPE: repeatedly apply the listed merge with the best priority (leftmost on ties). */
function hfBpe(vocab: Record<string, number>, merges: string[]): (symbols: string[]) => number[] {
  const priority = new Map(merges.map((m, i) => [m, i]));
  return (symbols) => {
    const parts = [...symbols];
    for (;;) {
      let best = -1, bestP = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const p = priority.get(`${parts[i]} ${parts[i + 1]}`);
        if (p !== undefined && p < bestP) { bestP = p; best = i; }
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best]! + parts[best + 1]!);
    }
    return parts.map((p) => vocab[p]!);
  };
}
