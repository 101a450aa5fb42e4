// The sampler seam: logit_bias, logprobs capture from the raw logits, the constraint hook, seeded reproducibility.
import { describe, expect, it } from 'vitest';
import { createSampler, rawLogprobs, type ConstraintSpec, type LogitsConstraint } from '../../src/text/sampler.js';

const grammar = { key: 'k', label: 'test grammar', nfa: {} } as unknown as ConstraintSpec; // opaque to the sampler

const V = 50;
function row(seed: number): Float32Array {
  const r = new Float32Array(V);
  let s = seed;
  for (let i = 0; i < V; i++) { s = (s * 1103515245 + 12345) % 2 ** 31; r[i] = (s / 2 ** 31) * 8 - 4; }
  return r;
}
const ctx = { vocabSize: V, promptIds: [] };

describe('createSampler', () => {
  it('logit_bias +100 forces a token and -100 bans the greedy choice', () => {
    const l = row(3);
    const greedy = createSampler({ params: { temperature: 0 } }, ctx).next(l);
    expect(createSampler({ params: { temperature: 0 }, logitBias: [[7, 100]] }, ctx).next(l)).toBe(7);
    const banned = createSampler({ params: { temperature: 0 }, logitBias: [[greedy, -100]] }, ctx).next(l);
    expect(banned).not.toBe(greedy);
    for (let i = 0; i < 20; i++) expect(createSampler({ params: { temperature: 1 }, seed: i, logitBias: [[greedy, -100]] }, ctx).next(l)).not.toBe(greedy);
  });

  it('rejects biases outside [-100, 100], ids outside the vocabulary and top_logprobs > 20', () => {
    expect(() => createSampler({ params: {}, logitBias: [[1, 101]] }, ctx)).toThrow(/\[-100, 100\]/);
    expect(() => createSampler({ params: {}, logitBias: [[V, 1]] }, ctx)).toThrow(/vocabulary/);
    expect(() => createSampler({ params: {}, topLogprobs: 21 }, ctx)).toThrow(/top_logprobs/);
  });

  it('reports the raw log-softmax at the chosen id (not the biased one) and the top alternatives in order', () => {
    const l = row(5);
    const st = createSampler({ params: { temperature: 0 }, logitBias: [[9, 100]], topLogprobs: 5 }, ctx).step(l);
    expect(st.id).toBe(9);
    let max = -Infinity; for (const v of l) max = Math.max(max, v);
    let sum = 0; for (const v of l) sum += Math.exp(v - max);
    // float64 log-softmax of float32 logits: 1e-9 covers the summation order only
    expect(st.logprob!).toBeCloseTo(l[9]! - max - Math.log(sum), 9);
    const sorted = [...l.keys()].sort((a, b) => l[b]! - l[a]! || a - b).slice(0, 5);
    expect(st.top!.map((t) => t.id)).toEqual(sorted);
    expect(st.top![0]!.logprob).toBeGreaterThanOrEqual(st.top![4]!.logprob);
    const p = st.top!.reduce((a, t) => a + Math.exp(t.logprob), 0);
    expect(p).toBeLessThanOrEqual(1 + 1e-12);
    expect(rawLogprobs(l, 0, 0).top).toEqual([]);
  });

  it('asks the constraint to mask before the draw and tells it the choice', () => {
    const seen: number[] = [];
    const only = (ok: number): LogitsConstraint => ({
      mask: (s) => { for (let i = 0; i < s.length; i++) if (i !== ok) s[i] = -Infinity; },
      accept: (id) => seen.push(id),
    });
    const s = createSampler({ params: { temperature: 1 }, seed: 1, constraint: grammar }, { ...ctx, constraints: () => only(13) });
    expect([s.next(row(1)), s.next(row(2))]).toEqual([13, 13]);
    expect(seen).toEqual([13, 13]);
    expect(() => createSampler({ params: {}, constraint: grammar }, ctx)).toThrow(/not available/);
  });

  it('equal seeds give equal draws, different seeds differ somewhere', () => {
    const draws = (seed: number) => { const s = createSampler({ params: { temperature: 1 }, seed }, ctx); return Array.from({ length: 30 }, (_, i) => s.next(row(i))); };
    expect(draws(4)).toEqual(draws(4));
    expect(draws(4)).not.toEqual(draws(5));
  });
});
