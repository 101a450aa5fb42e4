// A quantized weight format is a block layout plus one row in the traits table (`FORMATS` in ./index.ts).
// Rows of a quantized matrix are stored back to back; a row of K weights is K / blockSize blocks.

import type { QuantDType } from '../tensor/dtype.js';

export interface QuantFormat {
  readonly dtype: QuantDType;
  /** Weights per block (256 for Q4_K, 32 for Q8_0). */
  readonly blockSize: number;
  /** Bytes per block (144 for Q4_K, 34 for Q8_0), byte-compatible with ggml. */
  readonly bytesPerBlock: number;
  /** Quantize `src` (length a multiple of blockSize) into `dst` (src.length / blockSize · bytesPerBlock bytes). */
  quantizeRow(src: Float32Array, dst: Uint8Array): void;
  /** Inverse of quantizeRow: `src` holds n / blockSize blocks, `dst` gets n values. */
  dequantizeRow(src: Uint8Array, dst: Float32Array): void;
  /** Reference dot product of one quantized row with f32 activations x (length = row length). */
  dotRow(row: Uint8Array, x: Float32Array): number;
}

export function rowBytes(f: QuantFormat, k: number): number {
  if (k % f.blockSize !== 0) throw new Error(`${f.dtype}: row length ${k} is not a multiple of the block size ${f.blockSize}`);
  return (k / f.blockSize) * f.bytesPerBlock;
}
