// Compute precision of the encoders' linears. 'f32' multiplies bf16 weights with f32 activations (exact
// products, what the golden fixtures were made with). 'bf16' rounds the activations to bf16 first (nearest
// even), as a bf16 run of the reference does, so the native backend can use vdpbf16ps: twice the
// multiply-adds per instruction. Products are exact in f32 either way (bf16 × bf16 has 16 significant bits);
// only the activations' rounding (relative 2^-9 per element) and the summation order differ.
import type { Backend } from './backend.js';
import type { Tensor } from './tensor.js';

export type ComputePrecision = 'f32' | 'bf16';

interface Bf16Capable {
  hasBf16Compute: boolean;
  linearBf16(x: Float32Array, m: number, w: Tensor, bias?: Float32Array | null, out?: Float32Array): Float32Array;
}

/** Rounds f32 values to bf16 (round to nearest, ties to even), in f32. NaN stays NaN. */
export function roundToBf16(x: Float32Array, out = new Float32Array(x.length)): Float32Array {
  const src = new Uint32Array(x.buffer, x.byteOffset, x.length), dst = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < x.length; i++) {
    const u = src[i]!;
    if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) { dst[i] = u | 0x400000; continue; } // quiet NaN
    dst[i] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return out;
}

/**
 * `be` with its linears over bf16 weights computed in `precision`; every other op (and every other weight
 * dtype) is untouched. With 'bf16': the native backend's vdpbf16ps kernel where the CPU has AVX512-BF16,
 * else the activations are rounded here and the f32 kernel runs (same numerics up to summation order, no
 * speed-up). The reference backend takes the second path and is the oracle for the first.
 */
export function withComputePrecision(be: Backend, precision: ComputePrecision): Backend {
  if (precision === 'f32') return be;
  if (precision !== 'bf16') throw new Error(`compute precision must be 'f32' or 'bf16', got ${JSON.stringify(precision)}`);
  const fast = (be as Partial<Bf16Capable>).hasBf16Compute === true ? (be as unknown as Bf16Capable) : null;
  const view = Object.create(be) as Backend;
  const linear = be.linear.bind(be);
  let scratch = new Float32Array(0);
  view.linear = (x, m, w, bias, out) => {
    if (w.dtype !== 'bf16') return linear(x, m, w, bias, out);
    if (fast) return fast.linearBf16(x, m, w, bias, out);
    const k = w.shape[1]!;
    if (scratch.length < m * k) scratch = new Float32Array(m * k);
    return linear(roundToBf16(x.subarray(0, m * k), scratch.subarray(0, m * k)), m, w, bias, out);
  };
  return view;
}
