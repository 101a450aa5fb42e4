// Q8_0: ggml's `block_q8_0`, 32 weights in 34 bytes, byte-compatible with ggml/llama.cpp.
//
// Block layout (little-endian):
//   bytes 0..1   f16  d       scale = amax / 127
//   bytes 2..33  int8 qs[32]  weight i ≈ d · qs[i]
//
// Ports of ggml-quants.c `quantize_row_q8_0_ref` / `dequantize_row_q8_0`.

import type { QuantFormat } from './format.js';
import {
  asInt8,
  assertBytes,
  assertFinite,
  assertRowShape,
  readF16,
  roundHalfAwayFromZero,
  writeF16Scale,
} from './common.js';

const fround = Math.fround;

export const QK8_0 = 32;
export const BLOCK_Q8_0_BYTES = 2 + QK8_0;
/** Largest int8 magnitude used: (1 << 7) − 1. */
const Q8_MAX = 127;

/** quantize_row_q8_0_ref: `src.length / 32` blocks into `dst`. Non-finite input throws. */
export function quantizeRowQ8_0(src: Float32Array, dst: Uint8Array): void {
  const nb = assertRowShape('q8_0 quantize', src.length, QK8_0);
  assertBytes('q8_0 quantize dst', dst.length, nb * BLOCK_Q8_0_BYTES);
  assertFinite(src, 'q8_0 quantize');
  const qs = asInt8(dst);
  for (let i = 0; i < nb; i++) {
    const x0 = i * QK8_0;
    const o = i * BLOCK_Q8_0_BYTES;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) {
      const a = Math.abs(src[x0 + j]!);
      if (a > amax) amax = a;
    }
    // id comes from the float32 d, not from the f16-rounded one that is stored (as in ggml).
    const d = fround(amax / Q8_MAX);
    const id = d !== 0 ? fround(1 / d) : 0;
    writeF16Scale(dst, o, d, 'q8_0 quantize');
    for (let j = 0; j < QK8_0; j++) {
      qs[o + 2 + j] = roundHalfAwayFromZero(fround(src[x0 + j]! * id));
    }
  }
}

/** dequantize_row_q8_0: y = f16(d) · qs, in float32. */
export function dequantizeRowQ8_0(src: Uint8Array, dst: Float32Array): void {
  const nb = assertRowShape('q8_0 dequantize', dst.length, QK8_0);
  assertBytes('q8_0 dequantize src', src.length, nb * BLOCK_Q8_0_BYTES);
  const qs = asInt8(src);
  for (let i = 0; i < nb; i++) {
    const o = i * BLOCK_Q8_0_BYTES;
    const d = readF16(src, o);
    for (let j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * qs[o + 2 + j]!;
  }
}

/** Σ dequant(row)·x accumulated in float64: the "exact" value the quantized dot paths approximate. */
export function dotQ8_0F32(row: Uint8Array, x: Float32Array): number {
  const nb = assertRowShape('q8_0 dot', x.length, QK8_0);
  assertBytes('q8_0 dot row', row.length, nb * BLOCK_Q8_0_BYTES);
  const qs = asInt8(row);
  let sum = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * BLOCK_Q8_0_BYTES;
    let s = 0;
    for (let j = 0; j < QK8_0; j++) s += qs[o + 2 + j]! * x[i * QK8_0 + j]!;
    sum += readF16(row, o) * s;
  }
  return sum;
}

/**
 * ggml_vec_dot_q8_0_q8_0 (scalar generic path): per block an exact integer Σ qx·qy, then in float32
 * `sumf += sumi · (dx · dy)`. Both rows hold `nBlocks` Q8_0 blocks (activations quantized with
 * quantizeRowQ8_0, i.e. the reference quantizer, not ggml's SIMD one that rounds ties to even).
 */
export function dotQ8_0Q8_0(xRow: Uint8Array, yRow: Uint8Array, nBlocks: number): number {
  const need = nBlocks * BLOCK_Q8_0_BYTES;
  if (!Number.isInteger(nBlocks) || nBlocks < 0) throw new Error(`q8_0·q8_0 dot: bad block count ${nBlocks}`);
  if (xRow.length < need || yRow.length < need) {
    throw new Error(`q8_0·q8_0 dot: ${nBlocks} blocks need ${need} bytes per row, got ${xRow.length} and ${yRow.length}`);
  }
  const xq = asInt8(xRow);
  const yq = asInt8(yRow);
  let sumf = 0;
  for (let i = 0; i < nBlocks; i++) {
    const o = i * BLOCK_Q8_0_BYTES;
    let sumi = 0;
    for (let j = 2; j < BLOCK_Q8_0_BYTES; j++) sumi += xq[o + j]! * yq[o + j]!;
    // |sumi| ≤ 32·128² < 2^24, so its conversion to float32 is exact.
    sumf = fround(sumf + fround(sumi * fround(readF16(xRow, o) * readF16(yRow, o))));
  }
  return sumf;
}

export const Q8_0: QuantFormat = {
  dtype: 'q8_0',
  blockSize: QK8_0,
  bytesPerBlock: BLOCK_Q8_0_BYTES,
  quantizeRow: quantizeRowQ8_0,
  dequantizeRow: dequantizeRowQ8_0,
  dotRow: dotQ8_0F32,
};
