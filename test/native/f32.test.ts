// f32/bf16/f16 linear, matmul and attention of the native backend against the ReferenceBackend, on odd
// shapes, for every ISA variant this CPU has and for 1 and 2 threads.
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16, encodeF16 } from '../../src/tensor/dtype.js';
import { expectWithin, loadNative, NO_NATIVE, rng, U32 } from './util.js';

const { backend, error } = loadNative();
const ref = new ReferenceBackend();
const THREADS = [1, 2];

/**
 * The reference accumulates in float64 (JS numbers), the kernels in float32 in another order, so the gap is
 * bounded by the float32 summation error (K + 2)·u·(Σ|x·w| + |bias|) (the +2 covers the final reduction and
 * the bias add), plus one rounding of the reference's own f32 output.
 */
function linearTol(x: Float32Array, m: number, wf: Float32Array, n: number, k: number, bias?: Float32Array): Float64Array {
  const tol = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += Math.abs(x[i * k + t]! * wf[j * k + t]!);
      const b = bias ? Math.abs(bias[j]!) : 0;
      tol[i * n + j] = (k + 3) * U32 * (s + b) + 1e-30;
    }
  return tol;
}

describe.skipIf(NO_NATIVE)('native backend (f32 kernels)', () => {
  it('loads the addon', () => {
    // A failed build must fail here (with the build's error), not skip: CI builds the addon.
    expect(error?.message ?? null).toBeNull();
    expect(backend!.name).toBe('native');
    expect(backend!.availableIsas()).toContain('scalar');
  });
  if (!backend) return;
  const nb = backend;
  afterAll(() => nb.setThreads(2));

  it('refuses unknown or unsupported ISAs and bad thread counts with clear errors', () => {
    expect(() => nb.setIsa('sse9' as never)).toThrow(/unknown ISA 'sse9'/);
    for (const isa of ['avx512', 'avx2'] as const) {
      if (!nb.availableIsas().includes(isa)) expect(() => nb.setIsa(isa)).toThrow(/not supported by this CPU/);
    }
    expect(() => nb.setThreads(0)).toThrow(/positive integer/);
  });

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    describe(`isa ${isa}`, () => {
      const has = nb.availableIsas().includes(isa);
      it.skipIf(!has)('linear f32: odd shapes, bias, 1 and 2 threads give identical results', () => {
        nb.setIsa(isa);
        expect(nb.isa).toBe(isa);
        const r = rng(1);
        for (const m of [1, 3, 7, 17])
          for (const n of [1, 5, 33, 97])
            for (const k of [1, 3, 31, 257]) {
              const x = r(m * k), wf = r(n * k), bias = r(n);
              const w = Tensor.f32(wf, [n, k]);
              const want = ref.linear(x, m, w, bias);
              const tol = linearTol(x, m, wf, n, k, bias);
              const outs = THREADS.map((t) => {
                nb.setThreads(t);
                return nb.linear(x, m, w, bias);
              });
              expectWithin(outs[0]!, want, tol, `${isa} f32 M=${m} N=${n} K=${k}`);
              // Each output is computed by one task in a fixed order whatever the split: bitwise equal.
              expect(outs[1], `threads 1 vs 2, M=${m} N=${n} K=${k}`).toEqual(outs[0]);
            }
      });

      it.skipIf(!has)('linear bf16/f16 weights and row-narrowed (strided) weight views', () => {
        nb.setIsa(isa);
        const r = rng(2);
        for (const t of THREADS) {
          nb.setThreads(t);
          for (const [m, n, k] of [[1, 5, 31], [3, 33, 257], [17, 97, 64], [7, 1, 3]] as const) {
            const big = r((n + 3) * k);
            for (const dtype of ['f32', 'bf16', 'f16'] as const) {
              const data = dtype === 'f32' ? big : dtype === 'bf16' ? encodeBf16(big) : encodeF16(big);
              const full = new Tensor(dtype, [n + 3, k], data);
              const w = full.narrow(0, 2, n); // rows 2..n+1: a view with an element offset
              const x = r(m * k);
              const wf = w.f32();
              const want = ref.linear(x, m, w);
              expectWithin(nb.linear(x, m, w), want, linearTol(x, m, wf, n, k), `${isa} ${dtype} narrowed M=${m} N=${n} K=${k} t=${t}`);
            }
            // A column slice: rows are strided by the full width (ldw > K).
            const wide = Tensor.f32(r(n * (k + 5)), [n, k + 5]);
            const cols = wide.narrow(1, 5, k);
            const x = r(m * k);
            expectWithin(nb.linear(x, m, cols), ref.linear(x, m, cols), linearTol(x, m, cols.f32(), n, k), `${isa} column view M=${m} N=${n} K=${k}`);
          }
        }
      });

      it.skipIf(!has)('bf16/f16 weights give bit for bit the f32 result of the same (exactly widened) weights', () => {
        // With several A tiles per B tile the kernel copies each B tile to contiguous f32 once and reuses it;
        // widening is exact and the FMAs are the same, so nothing may differ. Shapes cross MR, NR, KC (512) and MC (128).
        nb.setIsa(isa);
        const r = rng(5);
        for (const t of THREADS) {
          nb.setThreads(t);
          for (const [m, n, k] of [[17, 97, 600], [5, 7, 1030], [130, 13, 64], [4, 6, 9]] as const) {
            const x = r(m * k), wf = r(n * k);
            // and the shared copy path itself against the reference (K > KC: several slices, a tail)
            expectWithin(nb.linear(x, m, Tensor.f32(wf, [n, k])), ref.linear(x, m, Tensor.f32(wf, [n, k])), linearTol(x, m, wf, n, k), `${isa} f32 M=${m} N=${n} K=${k} t=${t}`);
            for (const dtype of ['bf16', 'f16'] as const) {
              const w = new Tensor(dtype, [n, k], dtype === 'bf16' ? encodeBf16(wf) : encodeF16(wf));
              expect(nb.linear(x, m, w), `${isa} ${dtype} M=${m} N=${n} K=${k} t=${t}`).toEqual(nb.linear(x, m, Tensor.f32(w.f32(), [n, k])));
            }
          }
        }
      });

      it.skipIf(!has)('matmul A·B and A·Bᵀ', () => {
        nb.setIsa(isa);
        const r = rng(3);
        for (const t of THREADS) {
          nb.setThreads(t);
          for (const [m, k, n] of [[1, 1, 1], [3, 31, 5], [17, 257, 33], [7, 3, 97]] as const) {
            const a = r(m * k), b = r(k * n);
            const bt = Tensor.f32(b, [k, n]).transpose(0, 1).contiguous().data as Float32Array; // [n, k]
            const tol = linearTol(a, m, bt, n, k);
            expectWithin(nb.matmul(a, b, m, k, n), ref.matmul(a, b, m, k, n), tol, `${isa} matmul ${m}x${k}x${n}`);
            expectWithin(nb.matmul(a, bt, m, k, n, true), ref.matmul(a, bt, m, k, n, true), tol, `${isa} matmul transB ${m}x${k}x${n}`);
          }
        }
      });

      it.skipIf(!has)('attention: GQA, causal offsets, mask, bias, decode', () => {
        nb.setIsa(isa);
        const r = rng(4);
        const cases = [
          { tq: 5, tk: 5, nHeads: 6, nKvHeads: 2, headDim: 64, causalOffset: 0 },
          { tq: 1, tk: 9, nHeads: 4, nKvHeads: 1, headDim: 72, causalOffset: 8 }, // decode
          { tq: 3, tk: 7, nHeads: 3, nKvHeads: 3, headDim: 3, causalOffset: 4 },
          { tq: 17, tk: 17, nHeads: 2, nKvHeads: 2, headDim: 1 },
          { tq: 33, tk: 40, nHeads: 4, nKvHeads: 2, headDim: 128, mask: true, bias: true },
        ];
        for (const t of THREADS) {
          nb.setThreads(t);
          for (const c of cases) {
            const { tq, tk, nHeads, nKvHeads, headDim } = c;
            const p = {
              q: r(tq * nHeads * headDim), k: r(tk * nKvHeads * headDim), v: r(tk * nKvHeads * headDim),
              tq, tk, nHeads, nKvHeads, headDim, scale: headDim ** -0.5, causalOffset: c.causalOffset,
              // A padding-style mask (−1e4 on some keys) and a small relative-position-like bias.
              mask: c.mask ? Float32Array.from({ length: tq * tk }, (_, i) => (i % tk > tk - 4 ? -1e4 : 0)) : undefined,
              bias: c.bias ? r(nHeads * tq * tk, -0.5, 0.5) : undefined,
            };
            // Outputs are convex combinations of v ∈ [−1, 1]; f32 scores/softmax (relative error ~1e-6 per
            // weight, scores up to ~10) against the float64 reference stay well inside 2e-5 absolute.
            const want = ref.attention(p);
            expectWithin(nb.attention(p), want, new Float64Array(want.length).fill(2e-5), `${isa} attention ${JSON.stringify({ ...c, t })}`);
          }
        }
      });
    });
  }
});
