import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/text/rng.js';
import { argmax, draw, kthLargest, penalizedScores, sample, type SamplingParams, SamplingState, samplingDistribution, validateSamplingParams } from '../../src/text/sampling.js';
import { golden } from '../helpers/golden.js';

const f32 = (xs: number[]) => Float32Array.from(xs);
const probsToLogits = (ps: number[]) => f32(ps.map(Math.log));

function draws(logits: Float32Array, params: SamplingParams, n: number, seed = 1): number[] {
  const st = new SamplingState({ seed });
  return Array.from({ length: n }, () => sample(logits, params, st));
}

describe('Rng', () => {
  it('is deterministic per seed, differs across seeds, and stays in [0, 1)', () => {
    const a = new Rng(42), b = new Rng(42), c = new Rng(43), d = new Rng(42 + 2 ** 32);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(c.next()).not.toBe(xs[0]);
    expect(d.next()).not.toBe(xs[0]); // the high half of the seed matters
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05); // 1000 uniforms: sd of the mean ≈ 0.009
    expect(() => new Rng(1.5)).toThrow(/safe integer/);
  });
});

describe('sample', () => {
  it('greedy (temperature 0) picks the golden top-1 of real model logits', () => {
    const g = golden('e_multimodal');
    for (const name of ['image_audio', 'image_only', 'two_images', 'audio_only']) {
      const logits = g.tensor(`${name}.logits_last`).data;
      expect(sample(logits, { temperature: 0 }, new SamplingState()), name).toBe(g.json[name].top2_last.top1_id);
    }
  });

  it('argmax takes the first of tied maxima', () => {
    expect(argmax(f32([1, 3, 3, 2]))).toBe(1);
  });

  it('same seed → same sequence; another seed → another sequence', () => {
    const logits = f32(Array.from({ length: 50 }, (_, i) => Math.sin(i)));
    const p = { temperature: 1, topP: 0.95 };
    expect(draws(logits, p, 40, 7)).toEqual(draws(logits, p, 40, 7));
    expect(draws(logits, p, 40, 7)).not.toEqual(draws(logits, p, 40, 8));
  });

  it('draws follow the softmax (temperature 1 and 0.5)', () => {
    // p = [0.25, 0.75]; 20000 seeded draws: sd of the frequency ≈ 0.003, so ±0.015 cannot fail by chance.
    const logits = probsToLogits([0.25, 0.75]);
    const freq = (xs: number[]) => xs.filter((x) => x === 1).length / xs.length;
    expect(Math.abs(freq(draws(logits, {}, 20000)) - 0.75)).toBeLessThan(0.015);
    // T = 0.5 squares the odds: 9:1 → 0.9.
    expect(Math.abs(freq(draws(logits, { temperature: 0.5 }, 20000)) - 0.9)).toBeLessThan(0.015);
  });

  it('top_k / top_p / min_p keep the HF sets', () => {
    const logits = probsToLogits([0.2, 0.5, 0.3]);
    const kept = (p: SamplingParams) => samplingDistribution(logits, 1, p).ids;
    expect(kept({ topK: 2 })).toEqual([1, 2]);
    expect(kept({ topK: 1 })).toEqual([1]);
    expect(kept({ topP: 0.6 })).toEqual([1, 2]); // ascending 0.2 (cum 0.2 ≤ 0.4) dropped
    expect(kept({ topP: 0.5 })).toEqual([1]); // cum 0.5 ≤ 0.5 also drops 0.3
    expect(kept({ topP: 1 })).toEqual([0, 1, 2]);
    expect(kept({ minP: 0.5 })).toEqual([1, 2]); // 0.2 < 0.5·0.5
    expect(kept({ minP: 1 })).toEqual([1]);
    const d = samplingDistribution(logits, 1, { topK: 2 });
    expect(d.probs[0]! + d.probs[1]!).toBeCloseTo(1, 12);
    expect(d.probs[0]! / d.probs[1]!).toBeCloseTo(0.5 / 0.3, 6);
    expect(new Set(draws(logits, { topP: 0.6 }, 500))).toEqual(new Set([1, 2]));
  });

  it('top_k selects the k-th largest without a full sort: equal to sorting, ties with the k-th value kept (HF)', () => {
    const rng = new Rng(9);
    for (const [n, levels] of [[1, 1], [7, 3], [31, 5], [33, 2], [1000, 1000], [200064, 64], [5000, 1]] as const) {
      // Few distinct levels: heavy ties around any k.
      const v = Float32Array.from({ length: n }, () => Math.floor(rng.next() * levels) - levels / 2);
      const sorted = v.slice().sort();
      for (const k of new Set([1, 2, Math.ceil(n / 3), n - 1, n].filter((x) => x >= 1 && x <= n))) {
        expect(kthLargest(v.slice(), k), `n=${n} k=${k}`).toBe(sorted[n - k]);
      }
    }
    expect(() => kthLargest(new Float32Array(3), 4)).toThrow(/k = 4 outside \[1, 3\]/);
    // The kept set through samplingDistribution: every id scoring ≥ the k-th largest (ties included).
    const logits = Float32Array.from({ length: 200064 }, () => Math.floor(rng.next() * 50));
    const kth = logits.slice().sort()[logits.length - 40]!;
    const want = [...logits.keys()].filter((i) => logits[i]! >= kth);
    expect(want.length).toBeGreaterThan(40); // ties at the k-th value
    expect(samplingDistribution(logits, 1, { topK: 40 }).ids).toEqual(want);
  });

  it('top_p on a large vocabulary equals a full sort (the unsorted tail shortcut is exact)', () => {
    const rng = new Rng(3);
    const logits = Float32Array.from({ length: 20000 }, () => 8 * rng.next() ** 4);
    for (const topP of [0.1, 0.5, 0.9, 0.999]) {
      expect(samplingDistribution(logits, 0.7, { topP }).ids, `top_p ${topP}`).toEqual(naiveTopP(logits, 0.7, topP));
    }
  });

  it('draw is the walk over samplingDistribution (same id for the same random number), masks and filters included', () => {
    // draw walks the distribution without building its arrays; this pins it to the arrays' semantics.
    let checked = 0;
    for (let trial = 0; trial < 24; trial++) {
      const n = trial % 2 ? 1000 : 37;
      const x = Float32Array.from({ length: n }, (_, i) => Math.round(Math.sin(i * (trial + 1.3)) * 6) / (trial % 3 ? 1 : 8)); // ties
      if (trial % 4 === 0) for (let i = 0; i < n; i += 3) x[i] = -Infinity;
      for (const p of [{}, { topK: 5 }, { topP: 0.9 }, { minP: 0.05 }, { topK: 50, topP: 0.8, minP: 0.01 }] as SamplingParams[])
        for (const t of [0.3, 1, 1.7]) {
          const { ids, probs } = samplingDistribution(x, t, p);
          const a = new Rng(trial), b = new Rng(trial);
          for (let d = 0; d < 20; d++) {
            let r = b.next(), want = ids[ids.length - 1]!;
            for (let j = 0; j < ids.length; j++) if ((r -= probs[j]!) < 0) { want = ids[j]!; break; }
            expect(draw(x, t, p, a)).toBe(want);
            checked++;
          }
        }
    }
    expect(checked).toBe(24 * 5 * 3 * 20);
  });

  it('repetition penalty (HF: divide positive, multiply negative) covers prompt and generated ids', () => {
    const st = new SamplingState({ promptIds: [0, 1] });
    st.accept(3);
    expect(Array.from(penalizedScores(f32([2, -2, 1, 4]), { repetitionPenalty: 2 }, st))).toEqual([1, -4, 1, 2]);
  });

  it('frequency / presence penalties (OpenAI) count generated ids only', () => {
    const st = new SamplingState({ promptIds: [2] });
    st.accept(0); st.accept(0); st.accept(1);
    expect(Array.from(penalizedScores(f32([5, 5, 5]), { frequencyPenalty: 0.5, presencePenalty: 1 }, st))).toEqual([3, 3.5, 5]);
    // sample() records what it picks, so a strong penalty moves greedy decoding away from a repeated token.
    const s2 = new SamplingState();
    const logits = f32([1, 0.9]);
    expect([0, 1, 2].map(() => sample(logits, { temperature: 0, presencePenalty: 0.5 }, s2))).toEqual([0, 1, 0]);
  });

  it('masks ids ≥ vocabLimit, suppressed ids and NaN; errors when nothing is left', () => {
    const logits = f32([0, 1, NaN, 3, 9]);
    expect(sample(logits, { temperature: 0, vocabLimit: 4, suppressIds: [3] }, new SamplingState())).toBe(1);
    expect(new Set(draws(logits, { vocabLimit: 2 }, 300))).toEqual(new Set([0, 1]));
    expect(() => sample(logits, { vocabLimit: 2, suppressIds: [0, 1] }, new SamplingState())).toThrow(/every token is masked/);
  });

  it('rejects invalid parameters with clear messages', () => {
    const bad: [SamplingParams, RegExp][] = [
      [{ temperature: -0.1 }, /temperature/],
      [{ temperature: NaN }, /temperature/],
      [{ topP: 0 }, /top_p/],
      [{ topP: 1.5 }, /top_p/],
      [{ topK: -1 }, /top_k/],
      [{ topK: 2.5 }, /top_k/],
      [{ minP: 2 }, /min_p/],
      [{ repetitionPenalty: 0 }, /repetition_penalty/],
      [{ frequencyPenalty: 3 }, /frequency_penalty/],
      [{ presencePenalty: -2.5 }, /presence_penalty/],
      [{ vocabLimit: 0 }, /vocabLimit/],
    ];
    for (const [p, re] of bad) expect(() => validateSamplingParams(p), JSON.stringify(p)).toThrow(re);
    expect(() => validateSamplingParams({ temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1.1 })).not.toThrow();
  });
});

/** HF TopPLogitsWarper with a full sort, as the reference. */
function naiveTopP(logits: Float32Array, temperature: number, topP: number): number[] {
  const max = Math.max(...logits);
  const e = Array.from(logits, (x) => Math.exp((x - max) / temperature));
  const z = e.reduce((a, b) => a + b, 0);
  const order = e.map((v, i) => [v / z, i] as const).sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const drop = new Set<number>();
  let cum = 0;
  for (let q = 0; q < order.length - 1; q++) {
    cum += order[q]![0];
    if (cum > 1 - topP) break;
    drop.add(order[q]![1]);
  }
  return order.map(([, i]) => i).filter((i) => !drop.has(i)).sort((a, b) => a - b);
}
