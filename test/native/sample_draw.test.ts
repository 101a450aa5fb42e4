// The addon's draw (native/src/sampling_napi.cc: candidates, top-k, softmax, top-p ranked in bands or by radix
// sort, min-p, the walk) against drawTs, the TypeScript reference: the same id for the same random number, with no
// tolerance, since both compute the same sums in the same order. Shapes are chosen to reach every path: masked
// ids, heavy ties (top-k at the k-th value, top-p ties inside a band and across band edges), a flat distribution
// whose kept head is large enough for the radix sort, and peaked ones where the first band suffices.
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/tensor/native_addon.js';
import { argmaxTs, copyMaskNaNTs, drawTs, samplingDistribution, setSoftmaxKernel, softmaxShiftedTs, type SamplingParams } from '../../src/text/sampling.js';
import { loadNative, NO_NATIVE, rng } from './util.js';

const { backend } = loadNative();

describe.skipIf(NO_NATIVE)('native sampleDraw: the same ids as drawTs', () => {
  if (!backend) return;
  const lib = loadAddon();
  const r = rng(17);

  // name → scores: flat (σ ≈ 0.3: ~18k of 20k tokens kept at top_p 0.9, the radix path), peaked, integer-valued
  // (ties everywhere), and masked (every third id −∞).
  const rows: Array<[string, Float32Array]> = [
    ['flat 20k', r(20000, -0.5, 0.5)],
    ['peaked 20k', Float32Array.from(r(20000, 0, 1), (u) => 12 * u ** 6)],
    ['ties 9999', Float32Array.from(r(9999, 0, 1), (u) => Math.floor(u * 6))],
    ['masked 3001', Float32Array.from(r(3001, -4, 4), (v, i) => (i % 3 === 0 ? -Infinity : v))],
    ['one finite', Float32Array.from({ length: 100 }, (_, i) => (i === 57 ? 0.5 : -Infinity))],
  ];
  const params: SamplingParams[] = [{}, { topK: 1 }, { topK: 40 }, { topK: 5000 }, { topP: 0.9 }, { topP: 0.3 }, { topP: 0.999 },
    { minP: 0.2 }, { topK: 200, topP: 0.8, minP: 0.01 }, { topP: 1e-9 }];

  // Per ISA build: the draw's exponentials are the active ISA's exp_f64 (8 lanes with AVX-512, 4 with AVX2, the
  // scalar port in the generic build).
  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    for (const [name, scores] of rows) {
      it.skipIf(!backend.availableIsas().includes(isa))(`${isa}, ${name}: every parameter set, 3 temperatures, 25 random numbers`, () => {
        setSoftmaxKernel(softmaxShiftedTs); // the whole reference in TypeScript
        backend.setIsa(isa);
        try {
          const us = r(25, 0, 1);
          let distinct = 0;
          for (const p of params)
            for (const t of [0.4, 1, 2.5]) {
              const seen = new Set<number>();
              for (const u of us) {
                const want = drawTs(scores, t, p.topK ?? 0, p.topP ?? 1, p.minP ?? 0, u);
                expect(lib.sampleDraw(scores, t, p.topK ?? 0, p.topP ?? 1, p.minP ?? 0, u), `${JSON.stringify(p)} t=${t} r=${u}`).toBe(want);
                seen.add(want);
              }
              if (seen.size > 1) distinct++;
            }
          if (name !== 'one finite') expect(distinct).toBeGreaterThan(10); // the draws vary, so equality means something
        } finally {
          setSoftmaxKernel(null);
          backend.setIsa(backend.availableIsas()[0]!);
        }
      });
    }
  }

  it('argmaxScores and copyMaskNaN equal the TypeScript ones: masked values, ties, +∞, maxima in the scalar tail', () => {
    const cases: Float32Array[] = [
      ...rows.map(([, sc]) => sc),
      Float32Array.of(),
      Float32Array.of(NaN, -Infinity, NaN),
      Float32Array.of(NaN, 2, 2, NaN, 1, 2), // tie: the first 2 wins; NaN is never the max
      Float32Array.of(1, 3, Infinity, 5, Infinity),
      Float32Array.of(-1, -2, -3, -4, -0.5), // the max in the tail after the 4-wide blocks
      Float32Array.of(-0, 0, -0, 0, 0),
      Float32Array.from(r(1027, -3, 3), (v, i) => (i % 5 === 0 ? NaN : i === 1026 ? 9 : v)),
    ];
    for (const sc of cases) {
      expect(lib.argmaxScores(sc), `argmax of ${sc.length}`).toBe(argmaxTs(sc));
      const want = new Float32Array(sc.length), got = new Float32Array(sc.length);
      copyMaskNaNTs(sc, want);
      lib.copyMaskNaN(sc, got);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `copyMaskNaN of ${sc.length}`).toBe(true);
    }
    expect(argmaxTs(cases[cases.length - 1]!)).toBe(1026);
    expect(argmaxTs(Float32Array.of(NaN, 2, 2, NaN, 1, 2))).toBe(1);
    expect(() => lib.copyMaskNaN(new Float32Array(4), new Float32Array(3))).toThrow(/copyMaskNaN dst: buffer has 12 bytes, needs 16/);
  });

  it('top-p keeps what a full HF sort keeps, at the radix and band sizes', () => {
    // HF: ascending order (ties: higher id first), drop while the cumulative sum is ≤ 1 − top_p, keep the last.
    for (const [scores, topP] of [[rows[0]![1], 0.9], [rows[1]![1], 0.95], [rows[2]![1], 0.5]] as const) {
      const max = scores.reduce((a, b) => Math.max(a, b), -Infinity);
      const e = Array.from(scores, (x) => Math.exp(x - max));
      const z = e.reduce((a, b) => a + b, 0);
      const order = e.map((v, i) => [v / z, i] as const).sort((a, b) => a[0] - b[0] || b[1] - a[1]);
      let cum = 0, q = 0;
      for (; q < order.length - 1; q++) { cum += order[q]![0]; if (cum > 1 - topP) break; }
      const want = order.slice(q).map(([, i]) => i).sort((a, b) => a - b);
      expect(samplingDistribution(scores, 1, { topP }).ids).toEqual(want);
      expect(want.length).toBeGreaterThan(topP === 0.9 ? 4672 : 1); // past the bands: the radix path
    }
  });

  it('no finite score → −1; bad arguments get a clear error', () => {
    expect(lib.sampleDraw(Float32Array.of(-Infinity, NaN), 1, 0, 1, 0, 0.5)).toBe(-1);
    const s = Float32Array.of(1, 2, 3);
    expect(() => lib.sampleDraw(s, 0, 0, 1, 0, 0.5)).toThrow(/temperature must be > 0/);
    expect(() => lib.sampleDraw(s, 1, -1, 1, 0, 0.5)).toThrow(/topK out of range/);
    expect(() => lib.sampleDraw(s, 1, 0, 0, 0, 0.5)).toThrow(/topP must be in \(0, 1\]/);
    expect(() => lib.sampleDraw(s, 1, 0, 1, 2, 0.5)).toThrow(/minP must be in \[0, 1\]/);
    expect(() => lib.sampleDraw(s, 1, 0, 1, 0, 1)).toThrow(/r must be in \[0, 1\)/);
  });
});
