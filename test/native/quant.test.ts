// Quantized linear (Q4_K × Q8_K, Q8_0 × Q8_0) of the native backend against the src/quant oracles:
//  - the activation quantizers are bit-exact ports of quantizeRowQ8_K / quantizeRowQ8_0;
//  - each output agrees with the scalar integer-dot oracle (dotQ4KQ8K / dotQ8_0Q8_0 on the same quantized
//    activations) up to float32 reassociation of the per-block terms;
//  - and with the ReferenceBackend's dequantized f32 product within the activation quantization error.
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  BLOCK_Q8_0_BYTES, BLOCK_Q8_K_BYTES, QK8_0, QK_K, dequantizeMatrix, dotQ4KQ8K, dotQ8_0Q8_0, quantizeMatrix,
  quantizeRowQ8_0, quantizeRowQ8_K,
} from '../../src/quant/index.js';
import { expectWithin, loadNative, NO_NATIVE, rng, U32 } from './util.js';

const { backend, error } = loadNative();
const ref = new ReferenceBackend();
const FORMATS = [
  { dtype: 'q4_k', bs: QK_K, actBytes: BLOCK_Q8_K_BYTES, quantAct: (x: Float32Array) => quantizeRowQ8_K(x), actScale: (q: Uint8Array, o: number) => new DataView(q.buffer, q.byteOffset).getFloat32(o, true), dot: dotQ4KQ8K },
  { dtype: 'q8_0', bs: QK8_0, actBytes: BLOCK_Q8_0_BYTES, quantAct: (x: Float32Array) => { const q = new Uint8Array((x.length / QK8_0) * BLOCK_Q8_0_BYTES); quantizeRowQ8_0(x, q); return q; }, actScale: (q: Uint8Array, o: number) => halfAt(q, o), dot: dotQ8_0Q8_0 },
] as const;

function halfAt(q: Uint8Array, o: number): number {
  return new Tensor('f16', [1], new Uint16Array([q[o]! | (q[o + 1]! << 8)])).get(0);
}

describe.skipIf(NO_NATIVE)('native backend (quantized kernels)', () => {
  it('loads the addon', () => {
    expect(error?.message ?? null).toBeNull();
  });
  if (!backend) return;
  const nb = backend;

  it('activation quantizers are bit-exact with src/quant (Q8_K, Q8_0), including zero blocks and ties', () => {
    const r = rng(10);
    const x = r(4 * QK_K, -3, 3);
    x.fill(0, QK_K, 2 * QK_K); // an all-zero block
    for (let i = 2 * QK_K; i < 3 * QK_K; i++) x[i] = ((i % 9) - 4) * 0.25; // many exact .5 ties after scaling
    expect(nb.quantizeQ8K(x, new Uint8Array(4 * BLOCK_Q8_K_BYTES))).toEqual(quantizeRowQ8_K(x));
    const q80 = new Uint8Array((x.length / QK8_0) * BLOCK_Q8_0_BYTES);
    quantizeRowQ8_0(x, q80);
    expect(nb.quantizeQ80(x, new Uint8Array(q80.length))).toEqual(q80);
  });

  it('rejects non-finite activations with a clear error', () => {
    const w = new Tensor('q8_0', [1, 32], new Uint8Array(34));
    const x = new Float32Array(32);
    x[5] = NaN;
    expect(() => nb.linear(x, 1, w)).toThrow(/row 0 element 5 is not finite/);
    // The scan is branch-free over all rows (native/src/addon.cc): infinities of both signs anywhere, the last
    // element of a later row included, are caught; the largest finite magnitudes and subnormals are not.
    const x3 = new Float32Array(3 * 32);
    x3.set([3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -0], 40);
    expect(nb.linear(x3, 3, w).length).toBe(3);
    for (const [at, v] of [[95, Infinity], [33, -Infinity], [64, NaN]] as const) {
      const y = x3.slice();
      y[at] = v;
      expect(() => nb.linear(y, 3, w)).toThrow(new RegExp(`row ${Math.floor(at / 32)} element ${at % 32} is not finite`));
    }
  });

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    for (const f of FORMATS) {
      it.skipIf(!nb.availableIsas().includes(isa))(`${isa} ${f.dtype}: integer-dot oracle and dequantized product, 1 and 2 threads`, () => {
        nb.setIsa(isa);
        const r = rng(f.dtype === 'q4_k' ? 11 : 12);
        for (const k of [256, 512, 768]) {
          const nbk = k / f.bs;
          const nAll = 97 + 4;
          // Rows with different magnitudes so block scales vary; quantized once, narrowed per case.
          const wAll = r(nAll * k).map((v, i) => v * (1 + (Math.floor(i / k) % 7)));
          const wq = new Tensor(f.dtype, [nAll, k], quantizeMatrix(wAll, nAll, k, f.dtype));
          const wDeq = dequantizeMatrix(wq.data as Uint8Array, nAll, k, f.dtype);
          const rb = (wq.data.byteLength / nAll);
          for (const m of [1, 3, 7, 17])
            for (const n of [1, 5, 33, 97]) {
              const off = n === 97 ? 4 : 3; // a row-narrowed view: weights start mid-buffer
              const w = wq.narrow(0, off, n);
              const x = r(m * k, -2, 2);
              const bias = r(n);
              const outs = [1, 2].map((t) => {
                nb.setThreads(t);
                return nb.linear(x, m, w, bias);
              });
              expect(outs[1], `threads 1 vs 2 ${f.dtype} M=${m} N=${n} K=${k}`).toEqual(outs[0]);
              const got = outs[0]!;

              const oracle = new Float32Array(m * n), tolOracle = new Float64Array(m * n), tolDeq = new Float64Array(m * n);
              for (let i = 0; i < m; i++) {
                const xi = x.subarray(i * k, (i + 1) * k);
                const xq = f.quantAct(xi);
                for (let j = 0; j < n; j++) {
                  const row = (wq.data as Uint8Array).subarray((off + j) * rb, (off + j + 1) * rb);
                  oracle[i * n + j] = f.dot(row, xq, nbk) + bias[j]!;
                  // Σ|w|·|x| and, per block, (activation step / 2)·Σ|w| bound the quantization error.
                  let mag = 0, qerr = 0, wmax = 0;
                  for (let t = 0; t < k; t++) wmax = Math.max(wmax, Math.abs(wDeq[(off + j) * k + t]!));
                  for (let b = 0; b < nbk; b++) {
                    let sw = 0;
                    for (let t = b * f.bs; t < (b + 1) * f.bs; t++) {
                      const wv = Math.abs(wDeq[(off + j) * k + t]!);
                      sw += wv;
                      mag += (wv + wmax) * Math.abs(xi[t]!);
                    }
                    qerr += (Math.abs(f.actScale(xq, b * f.actBytes)) / 2) * sw;
                  }
                  // Oracle: same integers, float32 per-block terms summed in another order. The terms are
                  // bounded by (|w| + max|w|)·|x| (Q4_K's d·sc·q and dmin·m parts separately), 2·nb + 10
                  // roundings each, plus the bias add.
                  tolOracle[i * n + j] = (2 * nbk + 10) * U32 * (2 * mag + Math.abs(bias[j]!)) + 1e-30;
                  // Dequantized f32 product: the activation quantization error Σ_b (d8_b / 2)·Σ|w_b| (for
                  // Q8_0 also the f16 rounding of d, ≤ 2^-11 relative: covered by the 1.01 and the extra term).
                  tolDeq[i * n + j] = 1.01 * qerr + (f.dtype === 'q8_0' ? 2 ** -10 * mag : 0) + tolOracle[i * n + j]!;
                }
              }
              const label = `${isa} ${f.dtype} M=${m} N=${n} K=${k}`;
              expectWithin(got, oracle, tolOracle, `${label} vs integer-dot oracle`);
              expectWithin(got, ref.linear(x, m, w, bias), tolDeq, `${label} vs dequantized f32 reference`);
            }
        }
      });
    }
  }
});
