// Small ops in TypeScript over contiguous f32 buffers with explicit dims. They are memory-bound and cheap
// next to the GEMMs, so they stay out of the addon. Each returns its output buffer; `out` may alias `x`
// for the elementwise ones.
import { isQuantDType } from './dtype.js';
import type { Tensor } from './tensor.js';
import { weightRow } from './weight_row.js';

/**
 * Σ x[o..o+n)² in f64 as the native device's SIMD computes it (native/src/device_impl.h), so the host device
 * stays its bit-exact oracle: value i adds into partial sum i mod 16 (each square is exact in f64), then the
 * partials p combine as c_j = p_j + p_{j+8}, d_j = c_j + c_{j+4}, e_j = d_j + d_{j+2}, sum = e_0 + e_1. A sum in
 * index order is one 4-cycle dependency per value (~4 µs per 3,072-value row natively); this one vectorizes.
 */
export function sumSquares(x: Float32Array, o: number, n: number): number {
  const p = new Float64Array(16);
  for (let i = 0; i < n; i++) p[i & 15] = p[i & 15]! + x[o + i]! * x[o + i]!;
  for (let h = 8; h >= 1; h >>= 1) for (let j = 0; j < h; j++) p[j] = p[j]! + p[j + h]!;
  return p[0]!;
}

/** RMSNorm over the last dim as HF computes it: w · (x · rsqrt(mean(x²) + eps)), in f32. x: [rows, dim]. */
export function rmsNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, eps: number, out: Float32Array = new Float32Array(rows * dim)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const inv = 1 / Math.sqrt(sumSquares(x, o, dim) / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = w[i]! * Math.fround(x[o + i]! * inv);
  }
  return out;
}

/** LayerNorm over the last dim (biased variance, as torch). x: [rows, dim]. */
export function layerNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, b: Float32Array | null, eps: number, out: Float32Array = new Float32Array(rows * dim)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[o + i]!;
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[o + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = (x[o + i]! - mean) * inv * w[i]! + (b ? b[i]! : 0);
  }
  return out;
}

/** Softmax over the last dim, in place. x: [rows, dim]. */
export function softmaxRows(x: Float32Array, rows: number, dim: number): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mx = -Infinity;
    for (let i = 0; i < dim; i++) mx = Math.max(mx, x[o + i]!);
    let s = 0;
    for (let i = 0; i < dim; i++) s += x[o + i] = Math.exp(x[o + i]! - mx);
    for (let i = 0; i < dim; i++) x[o + i]! /= s;
  }
  return x;
}

export function silu(x: Float32Array, out: Float32Array = new Float32Array(x.length)): Float32Array {
  for (let i = 0; i < x.length; i++) out[i] = x[i]! / (1 + Math.exp(-x[i]!));
  return out;
}

/**
 * out [rows, w] = (x[:, :w] (+ b1)) · (g / (1 + e^−g)), g = x[:, w:] (+ b2), x [rows, 2w]: the conformer's FFN gate
 * (no biases: up · swish(gate)) and GLU ((a + b1) · swish(g + b2)). Bias adds in f32, as torch adds f32 tensors;
 * the rest in f64, rounded once.
 */
export function swishGate(x: Float32Array, rows: number, w: number, b1: Float32Array | null, b2: Float32Array | null, out: Float32Array = new Float32Array(rows * w)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * 2 * w;
    for (let j = 0; j < w; j++) {
      const g = b2 ? Math.fround(x[o + w + j]! + b2[j]!) : x[o + w + j]!;
      const up = b1 ? Math.fround(x[o + j]! + b1[j]!) : x[o + j]!;
      out[r * w + j] = up * (g / (1 + Math.exp(-g)));
    }
  }
  return out;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
/** GELU, tanh approximation (torch `gelu(approximate='tanh')`, HF `gelu_pytorch_tanh`). */
export function geluTanh(x: Float32Array, out: Float32Array = new Float32Array(x.length)): Float32Array {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
  }
  return out;
}

/** Complementary error function, Chebyshev fit with fractional error < 1.2e-7 (Numerical Recipes erfcc). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}

/** GELU with the exact erf (torch `gelu()` default): x · ½ · erfc(−x/√2). */
export function geluErf(x: Float32Array, out: Float32Array = new Float32Array(x.length)): Float32Array {
  for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i]! * erfc(-x[i]! * Math.SQRT1_2);
  return out;
}

export function add(a: Float32Array, b: Float32Array, out: Float32Array = new Float32Array(a.length)): Float32Array {
  if (a.length !== b.length) throw new Error(`add: lengths ${a.length} and ${b.length} differ`);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

/** Rows `ids` of a [V, D] table of any dtype (f32, bf16, f16, q4_k, q8_0) → [ids.length, D] f32. */
export function embedding(table: Tensor, ids: ArrayLike<number>, out?: Float32Array): Float32Array {
  const [vocab, d] = table.shape as [number, number];
  out ??= new Float32Array(ids.length * d);
  if (out.length < ids.length * d) throw new Error(`embedding: out has ${out.length} values, expected ${ids.length} x ${d}`);
  const t = isQuantDType(table.dtype) ? table : table.contiguous();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`embedding: token id ${id} outside [0, ${vocab})`);
    weightRow(t, id, d, out.subarray(i * d, (i + 1) * d));
  }
  return out;
}

export interface ConvOptions {
  stride?: number;
  padding?: number;
  groups?: number;
}

/** torch Conv2d on one image: x [C, H, W], w [O, C/groups, kh, kw], bias [O] → [O, H', W']. */
export function conv2d(x: Float32Array, c: number, h: number, wd: number, w: Float32Array, o: number, kh: number, kw: number, bias: Float32Array | null, opt: ConvOptions = {}): { out: Float32Array; h: number; w: number } {
  const s = opt.stride ?? 1, p = opt.padding ?? 0, g = opt.groups ?? 1;
  if (c % g !== 0 || o % g !== 0) throw new Error(`conv2d: channels ${c}→${o} not divisible by groups ${g}`);
  const cg = c / g, og = o / g;
  const ho = Math.floor((h + 2 * p - kh) / s) + 1, wo = Math.floor((wd + 2 * p - kw) / s) + 1;
  const out: Float32Array = new Float32Array(o * ho * wo);
  for (let oc = 0; oc < o; oc++) {
    const grp = Math.floor(oc / og);
    const b = bias ? bias[oc]! : 0;
    for (let y = 0; y < ho; y++) {
      for (let xq = 0; xq < wo; xq++) {
        let acc = 0;
        for (let ic = 0; ic < cg; ic++) {
          const ch = grp * cg + ic;
          for (let ky = 0; ky < kh; ky++) {
            const iy = y * s - p + ky;
            if (iy < 0 || iy >= h) continue;
            const xrow = (ch * h + iy) * wd, wrow = ((oc * cg + ic) * kh + ky) * kw;
            for (let kx = 0; kx < kw; kx++) {
              const ix = xq * s - p + kx;
              if (ix < 0 || ix >= wd) continue;
              acc += x[xrow + ix]! * w[wrow + kx]!;
            }
          }
        }
        out[(oc * ho + y) * wo + xq] = acc + b;
      }
    }
  }
  return { out, h: ho, w: wo };
}

/** torch Conv1d on one sequence: x [C, T], w [O, C/groups, k], bias [O] → [O, T'] (zero padding both sides). */
export function conv1d(x: Float32Array, c: number, t: number, w: Float32Array, o: number, k: number, bias: Float32Array | null, opt: ConvOptions = {}): { out: Float32Array; t: number } {
  const s = opt.stride ?? 1, p = opt.padding ?? 0, g = opt.groups ?? 1;
  if (c % g !== 0 || o % g !== 0) throw new Error(`conv1d: channels ${c}→${o} not divisible by groups ${g}`);
  const cg = c / g, og = o / g;
  const to = Math.floor((t + 2 * p - k) / s) + 1;
  const out: Float32Array = new Float32Array(o * to);
  for (let oc = 0; oc < o; oc++) {
    const grp = Math.floor(oc / og);
    const b = bias ? bias[oc]! : 0;
    for (let i = 0; i < to; i++) {
      let acc = 0;
      for (let ic = 0; ic < cg; ic++) {
        const xo = (grp * cg + ic) * t, wo = (oc * cg + ic) * k;
        for (let kk = 0; kk < k; kk++) {
          const ti = i * s - p + kk;
          if (ti >= 0 && ti < t) acc += x[xo + ti]! * w[wo + kk]!;
        }
      }
      out[oc * to + i] = acc + b;
    }
  }
  return { out, t: to };
}

/** Output size of a 3×3 / stride 2 / padding 1 conv along a side of n. */
export function conv3x3s2Out(n: number): number {
  return Math.floor((n - 1) / 2) + 1;
}

/**
 * 3×3 / stride 2 / padding 1 conv on a channel-last image x [h, w, cin] (cin = c: depthwise; cin = 1: one input
 * channel broadcast to c outputs), weight tap-major [9, c], bias [c] → [h', w', c]: bias + Σ taps in (ky, kx)
 * order (then max(·, 0) when relu). The NeMo subsampling convs of the audio encoder.
 */
export function conv3x3s2(x: Float32Array, h: number, w: number, c: number, cin: number, weight: Float32Array, bias: Float32Array, relu: boolean, out?: Float32Array): Float32Array {
  if (cin !== 1 && cin !== c) throw new Error(`conv3x3s2: cin must be 1 or c (${c}), got ${cin}`);
  const ho = conv3x3s2Out(h), wo = conv3x3s2Out(w);
  const y = out ?? new Float32Array(ho * wo * c);
  for (let r = 0; r < ho; r++)
    for (let q = 0; q < wo; q++) {
      const dst = (r * wo + q) * c;
      y.set(bias, dst);
      for (let ky = 0; ky < 3; ky++) {
        const iy = 2 * r - 1 + ky;
        if (iy < 0 || iy >= h) continue;
        for (let kx = 0; kx < 3; kx++) {
          const ix = 2 * q - 1 + kx;
          if (ix < 0 || ix >= w) continue;
          const src = (iy * w + ix) * cin, wt = (ky * 3 + kx) * c;
          for (let ch = 0; ch < c; ch++) y[dst + ch] += x[src + (cin === 1 ? 0 : ch)]! * weight[wt + ch]!;
        }
      }
      if (relu) for (let ch = 0; ch < c; ch++) if (!(y[dst + ch]! > 0)) y[dst + ch] = 0;
    }
  return y;
}

/** AvgPool2d(kernel k, stride k) on x [C, H, W] → [C, H/k, W/k] (floor). */
export function avgPool2d(x: Float32Array, c: number, h: number, w: number, k = 2): { out: Float32Array; h: number; w: number } {
  const ho = Math.floor(h / k), wo = Math.floor(w / k);
  const out: Float32Array = new Float32Array(c * ho * wo);
  const inv = 1 / (k * k);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < ho; y++)
      for (let xq = 0; xq < wo; xq++) {
        let s = 0;
        for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) s += x[(ch * h + y * k + dy) * w + xq * k + dx]!;
        out[(ch * ho + y) * wo + xq] = s * inv;
      }
  return { out, h: ho, w: wo };
}

