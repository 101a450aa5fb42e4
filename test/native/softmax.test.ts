// The addon's temperature softmax (native/src/sampling_napi.cc) against the TypeScript one it replaces, bit for
// bit: its exp is a port of V8's (fdlibm's), so every probability, the sum and therefore every seeded draw must
// be identical, with no tolerance. Checked on Math.exp itself first, per ISA build (the 8-lane path with
// AVX-512, the 4-lane one with AVX2, the scalar port in the generic one), over the ranges and special values
// where fdlibm takes different branches.
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/tensor/native_addon.js';
import { drawTs, sample, SamplingState, setDrawKernel, setSoftmaxKernel, softmaxShiftedTs, sumExpShiftedTs, type SamplingParams } from '../../src/text/sampling.js';
import { loadNative, NO_NATIVE, rng } from './util.js';

const { backend } = loadNative();

describe.skipIf(NO_NATIVE)('native temperature softmax: bit-identical to the TypeScript loop', () => {
  if (!backend) return;
  const lib = loadAddon();

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    it.skipIf(!backend.availableIsas().includes(isa))(`${isa}: exp equals Math.exp bit for bit, on every branch of fdlibm`, () => {
      const LN2 = Math.LN2;
      const special = [0, -0, 1, -1, 0.5 * LN2, -0.5 * LN2, 1.5 * LN2, -1.5 * LN2, 709.7827128933840, 709.79, -745.1332191019412,
        -745.14, -708.39641853226408, -1021 * LN2, -1022 * LN2, -1040 * LN2, 2 ** -28, -(2 ** -28), 2 ** -29, 5e-324, -5e-324,
        1e308, -1e308, Infinity, -Infinity, NaN];
      const r = rng(5);
      // Uniform draws over ranges that hit each branch: |x| < 2^-28, < 0.5 ln2, < 1.5 ln2, the reduced range, and
      // results that are subnormal, overflow or underflow.
      const ranges: Array<[number, number]> = [[-1e-8, 1e-8], [-0.35, 0.35], [-1.1, 1.1], [-40, 0], [-760, 760], [-746, -700]];
      // Both sides of each threshold fdlibm tests on the high word (0.5 ln2, 1.5 ln2, 2^-28) and of 708, both signs.
      const words = new DataView(new ArrayBuffer(8));
      const fromWords = (hi: number, lo: number) => (words.setUint32(0, hi), words.setUint32(4, lo), words.getFloat64(0));
      const edges = [0x3fd62e42, 0x3fd62e43, 0x3ff0a2b1, 0x3ff0a2b2, 0x3e2fffff, 0x3e300000].flatMap((hi) =>
        [0, 1, 0x7fffffff, 0xffffffff].flatMap((lo) => [fromWords(hi, lo), -fromWords(hi, lo)]));
      edges.push(708 - 1e-13, 708, 708 + 1e-13, -708 - 1e-13, -708, -708 + 1e-13);
      const fixed = [...special, ...edges];
      const x = new Float64Array(fixed.length + ranges.length * 20000);
      x.set(fixed);
      ranges.forEach(([lo, hi], i) => x.set(Float64Array.from(r(20000, lo, hi)), fixed.length + i * 20000));
      const out = new Float64Array(x.length);
      backend.setIsa(isa);
      try {
        lib.expF64(x, out);
      } finally {
        backend.setIsa(backend.availableIsas()[0]!);
      }
      const bad: string[] = [];
      for (let i = 0; i < x.length; i++) if (!Object.is(out[i], Math.exp(x[i]!))) bad.push(`exp(${x[i]}): ${out[i]} vs ${Math.exp(x[i]!)}`);
      expect(bad.slice(0, 5)).toEqual([]);
    });
  }

  it('softmaxShifted: the same probabilities and sum, with and without candidates', () => {
    const r = rng(9);
    for (const [n, spread] of [[1, 1], [7, 3], [1000, 20], [50000, 8]] as const) {
      const scores = r(n, -spread, spread);
      let max = -Infinity;
      for (const v of scores) max = Math.max(max, v);
      const cand = Int32Array.from({ length: Math.ceil(n / 3) }, (_, j) => (j * 3) % n);
      for (const temperature of [0.05, 0.7, 1, 3.5]) {
        for (const c of [null, cand]) {
          const m = c ? c.length : n;
          const a = new Float64Array(m), b = new Float64Array(m);
          const sa = softmaxShiftedTs(scores, c, m, max, temperature, a), sb = lib.softmaxShifted(scores, c, m, max, temperature, b);
          expect(Object.is(sa, sb)).toBe(true);
          expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
        }
      }
    }
  });

  it('seeded sampling draws the same tokens with either kernel', () => {
    const logits = rng(3)(20000, -6, 6);
    const params: SamplingParams[] = [{ temperature: 0.8 }, { temperature: 1.3, topK: 50 }, { temperature: 0.6, topP: 0.9 }, { temperature: 1, minP: 0.05 }];
    // The TypeScript draw with each softmax kernel, then the addon's whole draw (its own softmax inside).
    const run = (k: typeof softmaxShiftedTs | null, native: boolean, p: SamplingParams) => {
      setSoftmaxKernel(k);
      setDrawKernel(native ? null : drawTs);
      const st = new SamplingState({ seed: 1234 });
      return Array.from({ length: 40 }, () => sample(logits, p, st));
    };
    // Counted, so that the default choice is shown to be the addon's draw, not drawTs again.
    const sampleDraw = lib.sampleDraw;
    let nativeDraws = 0;
    lib.sampleDraw = (...a) => (nativeDraws++, sampleDraw(...a));
    try {
      for (const p of params) {
        const ts = run(softmaxShiftedTs, false, p);
        expect(run((...a) => lib.softmaxShifted(...a), false, p)).toEqual(ts);
        expect(nativeDraws).toBe(0);
        expect(run(null, true, p)).toEqual(ts);
        expect(nativeDraws).toBe(40);
        nativeDraws = 0;
        expect(new Set(ts).size).toBeGreaterThan(1); // the draws are random, so equality means something
      }
    } finally {
      lib.sampleDraw = sampleDraw;
      setSoftmaxKernel(null);
      setDrawKernel(null);
    }
  });

  it('sumExpShifted (the logprobs normalizer): the same sum as the TypeScript loop, on each ISA, masked and NaN scores skipped', () => {
    const r = rng(21);
    const rows = [r(200064, -9, 9), Float32Array.from(r(5000, -3, 3), (v, i) => (i % 7 === 0 ? -Infinity : i % 11 === 0 ? NaN : v)), r(1, 0, 1), new Float32Array(0)];
    for (const isa of backend.availableIsas()) {
      backend.setIsa(isa);
      try {
        for (const scores of rows)
          for (const n of [scores.length, Math.floor(scores.length / 3)]) {
            let max = -Infinity;
            for (let i = 0; i < n; i++) if (scores[i]! > max) max = scores[i]!;
            for (const m of [max, max + 0.5]) expect(Object.is(lib.sumExpShifted(scores, n, m), sumExpShiftedTs(scores, n, m)), `${isa} n=${n}`).toBe(true);
          }
      } finally {
        backend.setIsa(backend.availableIsas()[0]!);
      }
    }
    expect(() => lib.sumExpShifted(new Float32Array(4), 5, 0)).toThrow(/sumExpShifted scores: buffer has 16 bytes, needs 20/);
  });

  it('bad arguments get a clear error', () => {
    const s = new Float32Array(4), out = new Float64Array(4);
    expect(() => lib.softmaxShifted(s, null, 4, 0, 0, out)).toThrow(/temperature must be > 0/);
    expect(() => lib.softmaxShifted(s, Int32Array.of(0, 9), 2, 0, 1, out)).toThrow(/cand\[1\] = 9 is outside the scores/);
    expect(() => lib.softmaxShifted(s, null, 4, 0, 1, new Float64Array(2))).toThrow(/out: buffer has 16 bytes, needs 32/);
    expect(() => lib.softmaxShifted(s, null, 8, 0, 1, new Float64Array(8))).toThrow(/scores: buffer has 16 bytes, needs 32/);
  });
});
