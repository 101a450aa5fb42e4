// Row counts at which the native GEMMs give every row a result independent of how many rows share the call
// (device.ts: row r's result depends only on row r). Measured on the kernels of native/src/kernels_impl.h:
// - f32/bf16/f16 weights: up to 2·MR rows (4 generic, 6 AVX2, 8 AVX-512) run over the full K in registers,
//   more rows slice K at KC = 512 and add the slices' horizontal sums: different rounding when K > 512.
//   Running fewer than 9 rows as 9 (zero padding) puts every call on the sliced path.
// - Q4_K on AVX-512 VNNI: a group of one activation row uses the ymm kernel, groups of 2-4 (QR = 4) the zmm
//   kernel, with different accumulation. Never leaving a group of one (one extra zero row) keeps every row on
//   the zmm kernel.
// - Q8_0: invariant as is.
// A stop-gap until the GEMMs are batch invariant themselves (kernels work); test/engine/batch_invariance
// checks the padded calls for every weight type and ISA.
import type { Tensor } from './tensor.js';
import type { AttentionParams } from './backend.js';

/** Rows above which the f32-family GEMM slices K on every ISA (2·MR ≤ 8). */
const F32_SLICED_MIN_ROWS = 9;
/** The f32-family GEMM's K slice (KC): at most this K is summed in registers, so no padding is needed. */
const F32_K_SLICE = 512;
/** Activation rows per Q4_K/Q8_0 kernel call (QR). */
const Q_ROW_GROUP = 4;

export function nativeInvariantRows(isa: () => string): (w: Tensor, m: number) => number {
  return (w, m) => {
    switch (w.dtype) {
      case 'f32':
      case 'bf16':
      case 'f16':
        return w.shape[1]! > F32_K_SLICE && m < F32_SLICED_MIN_ROWS ? F32_SLICED_MIN_ROWS : m;
      case 'q4_k':
        return isa() === 'avx512' && m % Q_ROW_GROUP === 1 ? m + 1 : m;
      default:
        return m;
    }
  };
}

/**
 * The native attention kernel tiles queries (score tiles of 6 queries, P·V tiles of 4, packed K for long
 * blocks), so a query's result depends on how many share the call (measured: ≤ 1.5e-7 apart). Calling it one
 * query row at a time (tq = 1, each row over its own causal prefix) makes every row's result independent of
 * the batch: the same FLOPs as a causal prefill, without the multi-query reuse.
 */
export function rowByRowAttention(attention: (p: AttentionParams) => Float32Array): (p: AttentionParams) => Float32Array {
  return (p) => {
    if (p.causalOffset === undefined || p.mask || p.bias) return attention(p); // not the decoder's shape
    const { tq, nHeads, nKvHeads, headDim: d, causalOffset: off } = p;
    const qRow = nHeads * d, kvRow = nKvHeads * d;
    const out = p.out ?? new Float32Array(tq * qRow);
    for (let i = 0; i < tq; i++) {
      const tk = off + i + 1;
      attention({
        ...p, q: p.q.subarray(i * qRow, (i + 1) * qRow), k: p.k.subarray(0, tk * kvRow), v: p.v.subarray(0, tk * kvRow),
        tq: 1, tk, causalOffset: off + i, out: out.subarray(i * qRow, (i + 1) * qRow),
      });
    }
    return out;
  };
}
