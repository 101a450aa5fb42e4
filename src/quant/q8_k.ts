// Q8_K: ggml's `block_q8_K`, the activation format of the K-quant dot products (never a weight format).
// 256 values in 292 bytes, byte-compatible with ggml.
//
// Block layout (little-endian):
//   bytes 0..3      f32   d           value i ≈ d · qs[i]
//   bytes 4..259    int8  qs[256]
//   bytes 260..291  int16 bsums[16]   bsums[j] = Σ qs[16j..16j+15] (lets the Q4_K dot apply mins cheaply)
//
// Also the scalar oracle of the native Q4_K kernel: dotQ4KQ8K mirrors ggml_vec_dot_q4_K_q8_K_generic,
// float32 accumulation order included.

import {
  asInt8,
  assertFinite,
  assertRowShape,
  nearestInt,
  readF16,
  readF32,
  readI16,
  writeF32,
} from './common.js';
import { BLOCK_Q4_K_BYTES, QK_K, scaleMinK4 } from './q4_k.js';

const fround = Math.fround;

export const BLOCK_Q8_K_BYTES = 4 + QK_K + 2 * (QK_K / 16);
const OFF_QS = 4;
const OFF_BSUMS = 4 + QK_K;
const BSUM_GROUP = 16;

/** Bytes of a Q8_K row of n values (n a multiple of 256). */
export function q8KRowBytes(n: number): number {
  return assertRowShape('q8_K', n, QK_K) * BLOCK_Q8_K_BYTES;
}

/**
 * quantize_row_q8_K_ref: per block, `max` is the signed value of largest magnitude (first one on ties),
 * iscale = −127/max, qs = min(127, nearest_int(iscale·x)), d = 1/iscale. An all-zero block gets d = 0.
 * Non-finite input throws. Returns `dst` (allocated when omitted).
 */
export function quantizeRowQ8_K(src: Float32Array, dst: Uint8Array = new Uint8Array(q8KRowBytes(src.length))): Uint8Array {
  const nb = assertRowShape('q8_K quantize', src.length, QK_K);
  if (dst.length !== nb * BLOCK_Q8_K_BYTES) throw new Error(`q8_K quantize dst: expected ${nb * BLOCK_Q8_K_BYTES} bytes, got ${dst.length}`);
  assertFinite(src, 'q8_K quantize');
  const qs = asInt8(dst);
  for (let i = 0; i < nb; i++) {
    const xb = i * QK_K;
    const o = i * BLOCK_Q8_K_BYTES;
    let max = 0;
    let amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(src[xb + j]!);
      if (ax > amax) {
        amax = ax;
        max = src[xb + j]!;
      }
    }
    if (amax === 0) {
      // ggml zeroes d and qs and leaves bsums untouched; we zero the bsums too (they are Σ 0 anyway).
      dst.fill(0, o, o + BLOCK_Q8_K_BYTES);
      continue;
    }
    // −127 (not −128) so that the SIMD kernels never see −128·(−128) overflow; see ggml's comment.
    const iscale = fround(-127 / max);
    for (let j = 0; j < QK_K; j++) {
      const v = nearestInt(fround(iscale * src[xb + j]!));
      qs[o + OFF_QS + j] = v < 127 ? v : 127;
    }
    for (let j = 0; j < QK_K / BSUM_GROUP; j++) {
      let sum = 0;
      for (let ii = 0; ii < BSUM_GROUP; ii++) sum += qs[o + OFF_QS + j * BSUM_GROUP + ii]!;
      const bo = o + OFF_BSUMS + 2 * j;
      dst[bo] = sum & 0xff;
      dst[bo + 1] = (sum >> 8) & 0xff;
    }
    writeF32(dst, o, fround(1 / iscale));
  }
  return dst;
}

/** dequantize_row_q8_K: y = d · qs. */
export function dequantizeRowQ8_K(src: Uint8Array, dst: Float32Array): void {
  const nb = assertRowShape('q8_K dequantize', dst.length, QK_K);
  if (src.length !== nb * BLOCK_Q8_K_BYTES) throw new Error(`q8_K dequantize src: expected ${nb * BLOCK_Q8_K_BYTES} bytes, got ${src.length}`);
  const qs = asInt8(src);
  for (let i = 0; i < nb; i++) {
    const o = i * BLOCK_Q8_K_BYTES;
    const d = readF32(src, o);
    for (let j = 0; j < QK_K; j++) dst[i * QK_K + j] = d * qs[o + OFF_QS + j]!;
  }
}

const LANES = 8; // the generic kernel keeps 8 int32 / float32 partial sums
const aux8 = new Int8Array(QK_K);
const aux32 = new Int32Array(LANES);
const sums = new Float32Array(LANES);

/**
 * ggml_vec_dot_q4_K_q8_K_generic: `nBlocks` Q4_K blocks of `q4row` · `nBlocks` Q8_K blocks of `q8row`.
 * Per block, exact integer sums Σ sc[j]·Σ q4·q8 (8 lanes) and Σ bsums·m; then in float32
 * sums[l] += (d·d8)·aux32[l] and sumf −= (dmin·d8)·Σ bsums·m; finally sumf += Σ sums[l] (lane order).
 * The int→float conversions are exact (|aux32| < 2^22, |Σ bsums·m| < 2^22). Mirrors the unfused C build
 * (an FMA-contracting build fuses `sums[l] += d*aux32[l]` and may differ in the last bits).
 */
export function dotQ4KQ8K(q4row: Uint8Array, q8row: Uint8Array, nBlocks: number): number {
  if (!Number.isInteger(nBlocks) || nBlocks < 0) throw new Error(`q4_K·q8_K dot: bad block count ${nBlocks}`);
  if (q4row.length < nBlocks * BLOCK_Q4_K_BYTES || q8row.length < nBlocks * BLOCK_Q8_K_BYTES) {
    throw new Error(
      `q4_K·q8_K dot: ${nBlocks} blocks need ${nBlocks * BLOCK_Q4_K_BYTES} + ${nBlocks * BLOCK_Q8_K_BYTES} bytes, ` +
        `got ${q4row.length} + ${q8row.length}`,
    );
  }
  const q8 = asInt8(q8row);
  sums.fill(0);
  let sumf = 0;
  for (let i = 0; i < nBlocks; i++) {
    const xo = i * BLOCK_Q4_K_BYTES;
    const yo = i * BLOCK_Q8_K_BYTES;
    // Unpack nibbles into weight order: chunk c of 64 = 32 low nibbles then 32 high nibbles.
    for (let c = 0; c < QK_K / 64; c++) {
      const q = xo + 16 + 32 * c;
      for (let l = 0; l < 32; l++) {
        const b = q4row[q + l]!;
        aux8[64 * c + l] = b & 0xf;
        aux8[64 * c + 32 + l] = b >> 4;
      }
    }
    aux32.fill(0);
    let sumi = 0;
    for (let j = 0; j < QK_K / BSUM_GROUP; j++) {
      sumi += readI16(q8row, yo + OFF_BSUMS + 2 * j) * (scaleMinK4(j >> 1, q4row, xo + 4) >> 8);
    }
    let a = 0;
    let y = yo + OFF_QS;
    for (let j = 0; j < QK_K / 32; j++) {
      const scale = scaleMinK4(j, q4row, xo + 4) & 0xff;
      for (let g = 0; g < 4; g++) {
        for (let l = 0; l < LANES; l++) aux32[l]! += scale * (q8[y + l]! * aux8[a + l]!);
        y += LANES;
        a += LANES;
      }
    }
    const d8 = readF32(q8row, yo);
    const d = fround(readF16(q4row, xo) * d8);
    for (let l = 0; l < LANES; l++) sums[l] = sums[l]! + fround(d * aux32[l]!);
    const dmin = fround(readF16(q4row, xo + 2) * d8);
    sumf = fround(sumf - fround(dmin * sumi));
  }
  for (let l = 0; l < LANES; l++) sumf = fround(sumf + sums[l]!);
  return sumf;
}
