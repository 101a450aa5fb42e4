// The attention kernels beyond f32.test.ts: the vectorized exp of every ISA against Math.exp in ulps, and
// attention over both row layouts (long sequences: packed-K score tiles, multi-query
// P·V tiles, causal query blocks; short chunks and decode: kv groups as rows), with head dims that are not a
// multiple of the vector width and −3.4e38 masks, against the ReferenceBackend.
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { expectWithin, loadNative, NO_NATIVE, rng } from './util.js';

const { backend, error } = loadNative();
const ref = new ReferenceBackend();
const F32_MIN_NORMAL = 2 ** -126;
const F32_MAX = 3.4028234663852886e38;

/** Distance in units in the last place of `want` (a float32) for normal results. */
function ulps(got: number, want: number): number {
  const e = Math.floor(Math.log2(want));
  return Math.abs(got - want) / 2 ** (e - 23);
}

describe.skipIf(NO_NATIVE)('native attention: exp and long sequences', () => {
  it('loads the addon', () => {
    expect(error?.message ?? null).toBeNull();
  });
  if (!backend) return;
  const nb = backend;
  afterAll(() => {
    nb.setThreads(2);
    nb.setIsa(nb.availableIsas()[0]!);
  });

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    const has = nb.availableIsas().includes(isa);

    it.skipIf(!has)(`${isa} exp: ≤ 2 ulp over the float range, 0 for very negative inputs, Inf/NaN`, () => {
      nb.setIsa(isa);
      // A dense sweep of the finite-result range, plus odd lengths so the masked tail lanes are exercised.
      const N = 200_003;
      const x = Float32Array.from({ length: N }, (_, i) => -104 + (193 * i) / (N - 1));
      const y = nb.expF32(x);
      let worst = 0, at = 0;
      for (let i = 0; i < N; i++) {
        const want = Math.fround(Math.exp(x[i]!));
        // Normal results: ≤ 2 ulp (Cephes polynomial with FMA). Subnormal/zero results: ≤ 2 subnormal ulps.
        const err = y[i] === want ? 0 : want >= F32_MIN_NORMAL ? ulps(y[i]!, want) : Math.abs(y[i]! - want) / 2 ** -149;
        if (!(err <= worst)) { worst = err; at = i; }
      }
      expect(worst, `${isa} exp(${x[at]}) = ${y[at]}, expected ${Math.fround(Math.exp(x[at]!))}`).toBeLessThanOrEqual(2);
      const special = Float32Array.from([-3.4e38, -Infinity, -1e10, -150, -104.5, 0, -0, 1e-8, -1e-8, 88.72, 88.8, 1e10, Infinity, NaN]);
      const ys = nb.expF32(special);
      expect(Array.from(ys.subarray(0, 5))).toEqual([0, 0, 0, 0, 0]);
      expect(ys[5]).toBe(1);
      expect(ys[6]).toBe(1);
      expect(ys[7]).toBe(Math.fround(Math.exp(Math.fround(1e-8))));
      expect(ys[8]).toBe(Math.fround(Math.exp(Math.fround(-1e-8))));
      expect(ulps(ys[9]!, Math.fround(Math.exp(Math.fround(88.72))))).toBeLessThanOrEqual(2);
      expect(ys[9]!).toBeLessThanOrEqual(F32_MAX);
      expect(Array.from(ys.subarray(10, 13))).toEqual([Infinity, Infinity, Infinity]);
      expect(ys[13]).toBeNaN();
    });

    it.skipIf(!has)(`${isa} long-sequence attention vs reference, 1 and 2 threads`, () => {
      nb.setIsa(isa);
      const r = rng(77);
      const cases = [
        // SigLIP-like: bidirectional, head dim 72 (not a multiple of 16), query blocks of 24 over 100 queries.
        { tq: 100, tk: 100, nHeads: 3, nKvHeads: 3, headDim: 72 },
        // Causal prefill with GQA; tk not a multiple of the key panel.
        { tq: 70, tk: 70, nHeads: 6, nKvHeads: 2, headDim: 128, causalOffset: 0 },
        // A chunk after a cached prefix: causalOffset > 0, tk = offset + tq.
        { tq: 37, tk: 90, nHeads: 4, nKvHeads: 1, headDim: 40, causalOffset: 53 },
        // Key padding with −3.4e38 (the float32 lowest) plus a bias, and odd head dim.
        { tq: 29, tk: 61, nHeads: 2, nKvHeads: 2, headDim: 17, mask: true, bias: true },
        // Short chunks and decode take the kv-group path (a group's heads as rows): bias rows per head.
        { tq: 3, tk: 50, nHeads: 6, nKvHeads: 2, headDim: 20, causalOffset: 47, mask: true, bias: true },
        { tq: 1, tk: 130, nHeads: 12, nKvHeads: 4, headDim: 128, causalOffset: 129, bias: true },
      ];
      for (const t of [1, 2]) {
        nb.setThreads(t);
        for (const c of cases) {
          const { tq, tk, nHeads, nKvHeads, headDim } = c;
          const p = {
            q: r(tq * nHeads * headDim, -2, 2), k: r(tk * nKvHeads * headDim, -2, 2), v: r(tk * nKvHeads * headDim),
            tq, tk, nHeads, nKvHeads, headDim, scale: headDim ** -0.5, causalOffset: c.causalOffset,
            mask: c.mask ? Float32Array.from({ length: tq * tk }, (_, i) => (i % tk >= tk - 9 || i % 7 === 3 ? -3.4e38 : 0)) : undefined,
            bias: c.bias ? r(nHeads * tq * tk, -1, 1) : undefined,
          };
          // Outputs are convex combinations of v ∈ [−1, 1]. Scores reach |q·k|·scale ≲ 30 here; f32 dot
          // products (relative error ~d·2^-24) and the ≤ 2 ulp exp keep each softmax weight within ~1e-6
          // relative, so 2e-5 absolute (as in f32.test.ts) holds with margin.
          const want = ref.attention(p);
          expectWithin(nb.attention(p), want, new Float64Array(want.length).fill(2e-5), `${isa} attention ${JSON.stringify({ ...c, t })}`);
        }
      }
    });
  }
});
