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
