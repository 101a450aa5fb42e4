// Scalar helpers shared by the block quantizers, each a bit-exact port of a ggml primitive.
//
// ggml's reference quantizers run in IEEE float32 (x86-64 SSE, FLT_EVAL_METHOD 0, no FMA contraction).
// JS numbers are float64, so every float32 operation is followed by Math.fround: a single +, −, ×, ÷ or
// sqrt of float32 operands computed in float64 and then rounded to float32 equals the float32 result
// (float64 has more than 2·24 + 2 significand bits, so the double rounding is innocuous).

import { f16ToF32, f32ToF16 } from '../tensor/dtype.js';

const fround = Math.fround;

/** 1.5 · 2^23: adding it to a float32 |f| < 2^22 leaves round-half-even(f) in the low mantissa bits. */
const NEAREST_INT_MAGIC = 12582912;
/** Largest |f| for which nearest_int is exact (2^22 − 1). */
const NEAREST_INT_MAX = 4194303;
const nearestF32 = new Float32Array(1);
const nearestI32 = new Int32Array(nearestF32.buffer);

/**
 * ggml's `nearest_int(float)`: the float32 sum `f + 1.5·2^23` rounds f to the nearest integer, ties to even
 * (unlike C `roundf`). Valid for |f| ≤ 4194303, as ggml asserts. `f` must already be a float32 value.
 */
export function nearestInt(f: number): number {
  if (Math.abs(f) <= NEAREST_INT_MAX) return fround(f + NEAREST_INT_MAGIC) - NEAREST_INT_MAGIC;
  // Outside ggml's asserted range (asserts are compiled out in release builds) the C code reads the
  // mantissa bits of the float32 sum; reproduce that so degenerate fits clamp exactly as in ggml.
  nearestF32[0] = f + NEAREST_INT_MAGIC;
  return (nearestI32[0]! & 0x007fffff) - 0x00400000;
}

/** C `roundf`: round half away from zero. For float32 input |f| < 2^23 the +0.5 in float64 is exact. */
export function roundHalfAwayFromZero(f: number): number {
  return f < 0 ? -Math.floor(-f + 0.5) : Math.floor(f + 0.5);
}

/** Throws if any element of `src` is NaN or ±Inf; ggml would silently write garbage blocks. */
export function assertFinite(src: Float32Array, what: string): void {
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (v - v !== 0) throw new Error(`${what}: input element ${i} is ${v}; only finite values can be quantized`);
  }
}

export function assertRowShape(what: string, n: number, blockSize: number): number {
  if (n % blockSize !== 0) throw new Error(`${what}: row length ${n} is not a multiple of the block size ${blockSize}`);
  return n / blockSize;
}

export function assertBytes(what: string, have: number, need: number): void {
  if (have !== need) throw new Error(`${what}: expected ${need} bytes, got ${have}`);
}

export function readU16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

export function readI16(b: Uint8Array, o: number): number {
  return ((b[o]! | (b[o + 1]! << 8)) << 16) >> 16;
}

/** Little-endian f16 at byte `o`, widened to float32 (exact). */
export function readF16(b: Uint8Array, o: number): number {
  return f16ToF32(readU16(b, o));
}

const F16_EXP_MASK = 0x7c00;

/**
 * GGML_FP32_TO_FP16 (round to nearest even) stored little-endian at byte `o`; returns the stored value as
 * float32. A scale that overflows f16 to ±Inf is an error here (ggml would store Inf and dequantize to
 * Inf/NaN), so out-of-range weights fail loudly instead of poisoning the model.
 */
export function writeF16Scale(b: Uint8Array, o: number, v: number, what: string): number {
  const h = f32ToF16(v);
  if ((h & F16_EXP_MASK) === F16_EXP_MASK) throw new Error(`${what}: block scale ${v} overflows f16 (inputs too large in magnitude)`);
  writeU16(b, o, h);
  return f16ToF32(h);
}

const f32Scratch = new Float32Array(1);
const f32Bytes = new Uint8Array(f32Scratch.buffer);

/** Little-endian float32 at byte `o` (any alignment). */
export function readF32(b: Uint8Array, o: number): number {
  f32Bytes[0] = b[o]!;
  f32Bytes[1] = b[o + 1]!;
  f32Bytes[2] = b[o + 2]!;
  f32Bytes[3] = b[o + 3]!;
  return f32Scratch[0]!;
}

export function writeF32(b: Uint8Array, o: number, v: number): void {
  f32Scratch[0] = v;
  b[o] = f32Bytes[0]!;
  b[o + 1] = f32Bytes[1]!;
  b[o + 2] = f32Bytes[2]!;
  b[o + 3] = f32Bytes[3]!;
}

/** Signed view of the same bytes (int8 quants). */
export function asInt8(b: Uint8Array): Int8Array {
  return new Int8Array(b.buffer, b.byteOffset, b.byteLength);
}
