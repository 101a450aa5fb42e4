// The quantized GEMM paths (row kernels for few activation rows, the AVX-512 VNNI tile GEMM for many) against
// the plain reference kernel (native/src/qgemm_ref.cc), bit for bit: block dots are exact int32 and every path
// combines them with the same float operations in block order, so no tolerance is needed. The same property
// gives batch invariance: row r of an M-row product equals the 1-row product (GEMV) of that row.
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/tensor/native_addon.js';
import { quantizeMatrix, QK_K, QK8_0 } from '../../src/quant/index.js';
import { loadNative, NO_NATIVE, rng } from './util.js';

const { backend } = loadNative();

interface QAddon {
  linearQ(x: Float32Array, m: number, w: Uint8Array, format: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
  linearQRef(x: Float32Array, m: number, w: Uint8Array, format: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
}

const FORMATS = [
  { dtype: 'q4_k', fmt: 0, bs: QK_K, rowBytes: (k: number) => (k / QK_K) * 144, ks: [256, 768] },
  { dtype: 'q8_0', fmt: 1, bs: QK8_0, rowBytes: (k: number) => (k / QK8_0) * 34, ks: [32, 96, 544] },
] as const;

describe.skipIf(NO_NATIVE)('quantized GEMM: bit-exact with the reference kernel, batch invariant', () => {
  if (!backend) return;
  const nb = backend;
  const lib = loadAddon() as unknown as QAddon;

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    for (const f of FORMATS) {
      it.skipIf(!nb.availableIsas().includes(isa))(`${isa} ${f.dtype}: odd shapes, M = 1..33, 1 and 2 threads`, () => {
        nb.setIsa(isa);
        const r = rng(f.fmt === 0 ? 21 : 22);
        for (const k of f.ks) {
          const nAll = 83;
          // Row magnitudes vary so block scales (and Q4_K mins) vary; some rows all-negative or all-zero.
          const wAll = r(nAll * k).map((v, i) => {
            const row = Math.floor(i / k);
            return row % 11 === 5 ? 0 : row % 7 === 3 ? -Math.abs(v) * 3 : v * (1 + (row % 5));
          });
          const wq = quantizeMatrix(wAll, nAll, k, f.dtype);
          const rb = f.rowBytes(k);
          for (const n of [1, 15, 16, 17, 70, 80]) {
            const off = nAll - n; // a row-narrowed view: the weights start mid-buffer
            const w = wq.subarray(off * rb, (off + n) * rb);
            const mMax = 33;
            const x = r(mMax * k, -2, 2);
            for (let i = 0; i < k; i++) x[5 * k + i] = 0; // an all-zero activation row
            const bias = n % 2 ? r(n) : null;
            const want = new Float32Array(mMax * n);
            lib.linearQRef(x, mMax, w, f.fmt, n, k, bias, want);
            for (const m of [1, 2, 3, 7, 8, 9, 17, 33])
              for (const t of [1, 2]) {
                nb.setThreads(t);
                const got = new Float32Array(m * n);
                lib.linearQ(x, m, w, f.fmt, n, k, bias, got);
                const label = `${isa} ${f.dtype} M=${m} N=${n} K=${k} threads=${t}`;
                expect(got, label).toEqual(want.subarray(0, m * n));
              }
            // Batch invariance spelled out: each row alone (GEMV) equals its row of the 33-row product.
            nb.setThreads(2);
            const full = new Float32Array(mMax * n);
            lib.linearQ(x, mMax, w, f.fmt, n, k, bias, full);
            for (const row of [0, 8, 32]) {
              const one = new Float32Array(n);
              lib.linearQ(x.subarray(row * k, (row + 1) * k), 1, w, f.fmt, n, k, bias, one);
              expect(one, `${isa} ${f.dtype} row ${row} N=${n} K=${k}`).toEqual(full.subarray(row * n, (row + 1) * n));
            }
          }
        }
      });
    }
  }
});
