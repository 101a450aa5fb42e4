// Element types of the tensor runtime and the by-hand half-precision codecs (Node 20 has no Float16Array).

/** Plain element types. Quantized block types are described by `src/quant` (see `QuantFormat`). */
export type PlainDType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u8';
export type QuantDType = 'q4_k' | 'q8_0';
export type DType = PlainDType | QuantDType;

export const PLAIN_DTYPE_BYTES: Record<PlainDType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u8: 1 };

export function isQuantDType(d: DType): d is QuantDType {
  return d === 'q4_k' || d === 'q8_0';
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bf16 bits → f32: bf16 is the top half of an IEEE f32, so this is exact. */
export function bf16ToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** f32 → bf16 bits, round to nearest even (as torch does); NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits → f32 (exact, including subnormals, inf, NaN). */
export function f16ToF32(h: number): number {
  const s = (h & 0x8000) !== 0 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 → IEEE half bits, round to nearest even (as `(ggml_fp16_t)` / numpy `astype(float16)`). */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/** Decode a run of bf16 values (little-endian u16) into f32. */
export function decodeBf16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const d32 = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) d32[i] = src[i]! << 16;
  return dst;
}

// 65536-entry table: f16 decoding is on the load path of every f16 checkpoint, so it must be a lookup.
let f16Table: Float32Array | null = null;
export function decodeF16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  const t = f16Table;
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
  return dst;
}

export function encodeBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToBf16(src[i]!);
  return dst;
}

export function encodeF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToF16(src[i]!);
  return dst;
}
