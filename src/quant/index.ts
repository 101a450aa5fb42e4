// Quantized weight formats: the traits table and whole-matrix helpers used by the loader (ISQ).
// A matrix [rows, cols] quantizes row by row along cols (= K, the reduction dimension of x·Wᵀ), so each
// row is cols / blockSize blocks stored back to back.

import type { QuantDType } from '../tensor/dtype.js';
import { rowBytes, type QuantFormat } from './format.js';
import { Q4_K } from './q4_k.js';
import { Q8_0 } from './q8_0.js';

export type { QuantFormat } from './format.js';
export { rowBytes } from './format.js';
export * from './q8_0.js';
export * from './q4_k.js';
export * from './q8_k.js';
export { nearestInt, roundHalfAwayFromZero } from './common.js';

export const FORMATS: Record<QuantDType, QuantFormat> = { q4_k: Q4_K, q8_0: Q8_0 };

export function formatOf(dtype: QuantDType): QuantFormat {
  const f = (FORMATS as Record<string, QuantFormat | undefined>)[dtype];
  if (!f) throw new Error(`unknown quantized dtype '${String(dtype)}' (known: ${Object.keys(FORMATS).join(', ')})`);
  return f;
}

/** Whether rows of length k can be stored as `dtype`; callers keep such tensors in f32 otherwise. */
export function canQuantize(dtype: QuantDType, k: number): boolean {
  return Number.isInteger(k) && k > 0 && k % formatOf(dtype).blockSize === 0;
}

function checkShape(what: string, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 0) {
    throw new Error(`${what}: bad shape [${rows}, ${cols}]`);
  }
}

/** Quantize a row-major f32 matrix [rows, cols]; returns rows · rowBytes(cols) bytes. */
export function quantizeMatrix(w: Float32Array, rows: number, cols: number, dtype: QuantDType): Uint8Array {
  checkShape(`quantize ${dtype}`, rows, cols);
  if (w.length !== rows * cols) throw new Error(`quantize ${dtype}: ${w.length} values do not form a [${rows}, ${cols}] matrix`);
  const f = formatOf(dtype);
  const rb = rowBytes(f, cols);
  const out = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) {
    f.quantizeRow(w.subarray(r * cols, (r + 1) * cols), out.subarray(r * rb, (r + 1) * rb));
  }
  return out;
}

/** Inverse of quantizeMatrix: bytes of a [rows, cols] `dtype` matrix → row-major f32. */
export function dequantizeMatrix(q: Uint8Array, rows: number, cols: number, dtype: QuantDType): Float32Array {
  checkShape(`dequantize ${dtype}`, rows, cols);
  const f = formatOf(dtype);
  const rb = rowBytes(f, cols);
  if (q.length !== rows * rb) throw new Error(`dequantize ${dtype}: expected ${rows * rb} bytes for [${rows}, ${cols}], got ${q.length}`);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    f.dequantizeRow(q.subarray(r * rb, (r + 1) * rb), out.subarray(r * cols, (r + 1) * cols));
  }
  return out;
}
