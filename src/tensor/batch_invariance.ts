// Row counts at which the native GEMMs give every row a result independent of how many rows share the call
// (device.ts: row r's result depends only on row r). Measured on the kernels of native/src/kernels_impl.h:
// - f32/bf16/f16 weights: up to 2·MR rows (4 generic, 6 AVX2, 8 AVX-512) run over the full K in registers,
//   more rows slice K at KC = 512 and add the slices' horizontal sums: different rounding when K > 512.
//   Running fewer than 9 rows as 9 (zero padding) puts every call on the sliced path.
// - Q4_K and Q8_0 (the VNNI tile GEMM of the kernels work and its fallbacks): invariant as they are.
// A stop-gap until the f32-family GEMM is batch invariant itself (it could slice K the same way for every M);
// test/engine/batch_invariance checks the device's linear for every weight type, ISA and thread count.
import type { Tensor } from './tensor.js';
import type { AttentionParams } from './backend.js';
import type { Buf, LoraSegment } from './device.js';
import { HostBuf, NativeDevice } from './native_device.js';

/** Rows above which the f32-family GEMM slices K on every ISA (2·MR ≤ 8). */
const F32_SLICED_MIN_ROWS = 9;
/** The f32-family GEMM's K slice (KC): at most this K is summed in registers, so no padding is needed. */
const F32_K_SLICE = 512;
/** Rows to run a linear of m rows at so that every row's result is independent of m. */
export function nativeInvariantRows(w: Tensor, m: number): number {
  const f32Family = w.dtype === 'f32' || w.dtype === 'bf16' || w.dtype === 'f16';
  return f32Family && w.shape[1]! > F32_K_SLICE && m < F32_SLICED_MIN_ROWS ? F32_SLICED_MIN_ROWS : m;
}

/** The native device with its linears padded to batch-invariant row counts (zero rows, results dropped). */
export class InvariantNativeDevice extends NativeDevice {
  override linear(x: Buf, m: number, w: Tensor, out: Buf, lora?: readonly LoraSegment[]): void {
    const rows = nativeInvariantRows(w, m);
    if (rows === m || !(x instanceof HostBuf) || !(out instanceof HostBuf)) {
      super.linear(x, m, w, out, lora);
      return;
    }
    const n = w.shape[0]!, k = w.shape[1]!;
    const px = new HostBuf(new Float32Array(rows * k)), py = new HostBuf(new Float32Array(rows * n));
    px.data.set(x.data.subarray(0, m * k));
    super.linear(px, rows, w, py, lora); // the segments cover rows < m only
    out.data.set(py.data.subarray(0, m * n));
  }
}

/**
 * The v1 native attention kernel tiles queries (score tiles of 6 queries, P·V tiles of 4, packed K for long
 * blocks), so a query's result depends on how many share the call (measured: ≤ 1.5e-7 apart). Calling it one
 * query row at a time (each row over its own causal prefix) makes every row independent of the batch; for a
 * HostDevice over the native backend (the native device has its own paged attention).
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
