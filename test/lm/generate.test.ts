// generateTokens: golden greedy ids (f_generation), stopping, cancellation, the context cap, buffer reuse.
import { describe, expect, it } from 'vitest';
import { golden } from '../helpers/golden.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { generateTokens, type GenerateTokensOptions } from '../../src/models/phi4mm/generate.js';
import type { Phi4MiniDecoder } from '../../src/models/phi4mm/decoder.js';
import { argmax } from '../../src/text/sampling.js';
import { loadDecoder } from './load.js';

const be = new ReferenceBackend();
const g = golden('f_generation');
const prompt = Int32Array.from(g.tensor('text.prompt_ids').data);
const expected = Array.from(g.tensor('text.generated_ids').data);
const lm = loadDecoder('orig');
const greedy = (l: Float32Array) => argmax(l);

async function collect(model: Phi4MiniDecoder, ids: Int32Array, o: Partial<GenerateTokensOptions>): Promise<number[]> {
  const out: number[] = [];
  for await (const id of generateTokens(be, model, ids, { mode: 'language', maxNewTokens: 12, sample: greedy, ...o })) out.push(id);
  return out;
}

describe('generateTokens', () => {
  it('text prompt, no LoRA: the reference greedy ids exactly (both layouts)', async () => {
    expect(g.json.text.adapter).toBe(null);
    expect(await collect(lm, prompt, {})).toEqual(expected);
    expect(await collect(loadDecoder('hf'), prompt, {})).toEqual(expected);
  });

  it('the prompt as inputsEmbeds generates the same ids', async () => {
    expect(await collect(lm, prompt, { inputsEmbeds: lm.embed(prompt), maxNewTokens: 4 })).toEqual(expected.slice(0, 4));
  });

  it('stops after yielding a stop id', async () => {
    expect(await collect(lm, prompt, { stopIds: [expected[2]!] })).toEqual(expected.slice(0, 3));
  });

  it('ends when the signal aborts, and yields nothing for maxNewTokens 0', async () => {
    const ac = new AbortController();
    const out: number[] = [];
    for await (const id of generateTokens(be, lm, prompt, { mode: 'language', maxNewTokens: 12, sample: greedy, signal: ac.signal })) {
      out.push(id);
      if (out.length === 2) ac.abort();
    }
    expect(out).toEqual(expected.slice(0, 2));
    expect(await collect(lm, prompt, { maxNewTokens: 0 })).toEqual([]);
  });

  it('never runs past max_position_embeddings', async () => {
    const short = loadDecoder('orig', { text: { max_position_embeddings: prompt.length + 3 }, key: 'ctx' });
    // (A smaller max_position_embeddings also changes the attention factor, so only the count is comparable.)
    expect(await collect(short, prompt, {})).toHaveLength(3);
    await expect(collect(short, Int32Array.from([...prompt, 1, 2, 3]), {})).rejects.toThrow(/the prompt has 13 tokens; the model takes at most 12/);
    await expect(collect(lm, new Int32Array(0), {})).rejects.toThrow(/prompt is empty/);
    await expect(collect(lm, prompt, { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens/);
  });

  it('decode steps reuse one logits buffer (no per-token vocab-sized allocation)', async () => {
    const bufs = new Set<Float32Array>();
    for await (const _ of generateTokens(be, lm, prompt, { mode: 'speech', maxNewTokens: 4, sample: (l) => { bufs.add(l); return argmax(l); } })) void _;
    expect(bufs.size).toBe(1);
  });
});
