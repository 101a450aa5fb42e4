// The two resamplers of the image preprocessing, bit-exact with the reference's libraries (see
// image_processor.ts): Pillow's fixed-point BILINEAR resize of uint8 RGB, and torch's float32 bicubic
// (a = −0.75) interpolation of the normalised canvas.
import type { RgbImage } from '../../io/image.js';

// ---------------------------------------------------------------- Pillow BILINEAR resize

const PRECISION_BITS = 32 - 8 - 2; // Pillow Resample.c: 8 bits result, 2 bits headroom in an int32
const BILINEAR_SUPPORT = 1.0;

interface ResampleCoeffs {
  ksize: number; // taps reserved per output pixel
  bounds: Int32Array; // [out, 2] = (first input index, tap count)
  kk: Int32Array; // [out, ksize] fixed-point weights (scaled by 2^22)
}

/** Port of Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the triangle filter over the full box. */
function bilinearCoeffs(inSize: number, outSize: number): ResampleCoeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1); // widen the filter when shrinking (antialias)
  const support = BILINEAR_SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0); // C (int) cast truncates
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      w[x] = t < 1 ? 1 - t : 0;
      ww += w[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x]! / ww : w[x]!;
      // (int)(±0.5 + k·2^22): round half away from zero, then truncate toward zero
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/** Pillow's clip8: fixed-point accumulator → uint8 (arithmetic shift, then clamp). */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * `PIL.Image.resize((w, h), BILINEAR)` of an RGB image, bit-exact: horizontal pass over the rows the vertical pass
 * needs, rounded to uint8, then the vertical pass. A pass is skipped when its size is unchanged.
 */
export function pilResizeBilinear(img: RgbImage, outW: number, outH: number): RgbImage {
  const { width: inW, height: inH } = img;
  if (!(outW >= 1 && outH >= 1 && Number.isInteger(outW) && Number.isInteger(outH))) {
    throw new Error(`resize target must be positive integers, got ${outW}×${outH}`);
  }
  const vert = bilinearCoeffs(inH, outH);
  let src = img.data, srcW = inW, rowOffset = 0;
  if (outW !== inW) {
    const yFirst = vert.bounds[0]!;
    const yLast = vert.bounds[(outH - 1) * 2]! + vert.bounds[(outH - 1) * 2 + 1]!;
    src = resampleHorizontal(img.data, inW, yFirst, yLast - yFirst, outW, bilinearCoeffs(inW, outW)); // [yLast−yFirst, outW, 3]
    srcW = outW;
    rowOffset = yFirst;
  }
  if (outH !== inH) src = resampleVertical(src, srcW, rowOffset, outH, vert); // [outH, outW, 3]
  else if (src === img.data) src = img.data.slice();
  return { width: outW, height: outH, data: src };
}

function resampleHorizontal(data: Uint8Array, inW: number, y0: number, rows: number, outW: number, c: ResampleCoeffs): Uint8Array {
  const out = new Uint8Array(rows * outW * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const rowIn = (y + y0) * inW * 3, rowOut = y * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.bounds[xx * 2]!, n = c.bounds[xx * 2 + 1]!, kOff = xx * c.ksize;
      let s0 = half, s1 = half, s2 = half;
      for (let x = 0, p = rowIn + xmin * 3; x < n; x++, p += 3) {
        const k = c.kk[kOff + x]!;
        s0 += data[p]! * k; s1 += data[p + 1]! * k; s2 += data[p + 2]! * k;
      }
      const o = rowOut + xx * 3;
      out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** `rowOffset` = first source row held in `data` (the horizontal pass only produced the needed rows). */
function resampleVertical(data: Uint8Array, w: number, rowOffset: number, outH: number, c: ResampleCoeffs): Uint8Array {
  const out = new Uint8Array(outH * w * 3);
  const half = 1 << (PRECISION_BITS - 1);
  const stride = w * 3;
  const acc = new Float64Array(stride);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[yy * 2]! - rowOffset, n = c.bounds[yy * 2 + 1]!, kOff = yy * c.ksize;
    acc.fill(half);
    for (let y = 0; y < n; y++) {
      const k = c.kk[kOff + y]!, row = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) acc[i] += data[row + i]! * k; // exact: sums stay below 2^31
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

// ---------------------------------------------------------------- torch bicubic (float32)

const CUBIC_A = Math.fround(-0.75); // torch's bicubic constant
const f32 = Math.fround;
const f32Bits = new Float32Array(1);
const i32Bits = new Int32Array(f32Bits.buffer);

/**
 * float32 fused multiply-add `a·b + c` with a single rounding (a, b, c float32 values).
 * torch's CPU upsample kernel is compiled with FMA enabled and GCC contracts `t0*w0 + t1*w1 + …` into FMAs;
 * the golden global images match only this (B and C: 0 of 1.2 M values differ; plain float32 sums: 1 ULP off in 12 %).
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 significant bits fit a double
  const s = p + c;
  const bb = s - p;
  const err = (p - (s - bb)) + (c - bb); // TwoSum: s + err = p + c exactly
  const r = f32(s);
  if (err === 0 || r === s || r === 0) return r; // r === s: s is a float32, so p + c lies within half an ulp of it
  // s is in (r, neighbour); only an exact float32 tie can round the wrong way: break it in the direction of err
  f32Bits[0] = r;
  i32Bits[0]! += (s > r) === (r > 0) ? 1 : -1;
  const other = f32Bits[0]!;
  if (s - r !== other - s) return r;
  return (err > 0) === (other > r) ? other : r;
}

/** torch `cubic_convolution1` (|x| ≤ 1) as GCC contracts it: fma(fma(A+2, x, −(A+3))·x, x, 1). */
function cubic1(x: number): number {
  return fmaf(f32(fmaf(f32(CUBIC_A + 2), x, -f32(CUBIC_A + 3)) * x), x, 1);
}
/** torch `cubic_convolution2` (1 < |x| < 2): ((A·x − 5A)·x + 8A)·x − 4A, contracted into three FMAs. */
function cubic2(x: number): number {
  return fmaf(fmaf(fmaf(CUBIC_A, x, -f32(5 * CUBIC_A)), x, f32(8 * CUBIC_A)), x, -f32(4 * CUBIC_A));
}

interface CubicTaps { index: Int32Array; weight: Float32Array } // [out, 4] clamped source indices and weights

/** torch `HelperInterpCubic::compute_indices_weights` (align_corners=False, no explicit scale). */
function cubicTaps(inSize: number, outSize: number): CubicTaps {
  const scale = f32(inSize / outSize);
  const index = new Int32Array(outSize * 4), weight = new Float32Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    const real = fmaf(scale, f32(i + 0.5), -0.5); // area_pixel_compute_source_index (cubic: not clamped at 0)
    const i0 = Math.floor(real);
    const t = f32(real - i0);
    const w = [cubic2(f32(t + 1)), cubic1(t), cubic1(f32(1 - t)), cubic2(f32(f32(1 - t) + 1))];
    for (let j = 0; j < 4; j++) {
      index[i * 4 + j] = Math.min(Math.max(i0 - 1 + j, 0), inSize - 1);
      weight[i * 4 + j] = w[j]!;
    }
  }
  return { index, weight };
}

/** `v0·w0 + v1·w1 + v2·w2 + v3·w3` in torch's contracted order: fma(v3,w3, fma(v2,w2, fma(v0,w0, v1·w1))). */
function dot4(v0: number, v1: number, v2: number, v3: number, w: Float32Array, o: number): number {
  return fmaf(v3, w[o + 3]!, fmaf(v2, w[o + 2]!, fmaf(v0, w[o]!, f32(v1 * w[o + 1]!))));
}

/**
 * `F.interpolate(x[None], (outH, outW), mode='bicubic', align_corners=False)` of a float32 CHW tensor, as torch's
 * CPU kernel computes it: per output, rows interpolated along x, then those 4 values along y.
 */
export function torchBicubicResize(chw: Float32Array, channels: number, inH: number, inW: number, outH: number, outW: number): Float32Array {
  if (chw.length !== channels * inH * inW) throw new Error(`bicubic input has ${chw.length} values, expected ${channels}×${inH}×${inW}`);
  const ty = cubicTaps(inH, outH), tx = cubicTaps(inW, outW);
  const xi = tx.index, xw = tx.weight;
  const out = new Float32Array(channels * outH * outW); // [C, outH, outW]
  const rows = new Float32Array(4 * outW); // the 4 source rows of one output row, interpolated along x
  for (let c = 0; c < channels; c++) {
    const plane = c * inH * inW;
    for (let oy = 0; oy < outH; oy++) {
      for (let j = 0; j < 4; j++) {
        const r = plane + ty.index[oy * 4 + j]! * inW;
        for (let ox = 0, o = 0; ox < outW; ox++, o += 4) {
          rows[j * outW + ox] = dot4(chw[r + xi[o]!]!, chw[r + xi[o + 1]!]!, chw[r + xi[o + 2]!]!, chw[r + xi[o + 3]!]!, xw, o);
        }
      }
      const base = (c * outH + oy) * outW;
      for (let ox = 0; ox < outW; ox++) {
        out[base + ox] = dot4(rows[ox]!, rows[outW + ox]!, rows[2 * outW + ox]!, rows[3 * outW + ox]!, ty.weight, oy * 4);
      }
    }
  }
  return out;
}

