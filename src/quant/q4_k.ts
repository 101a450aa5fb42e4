// Q4_K: ggml's `block_q4_K`, 256 weights in 144 bytes, byte-compatible with ggml/llama.cpp.
//
// Block layout (little-endian):
//   bytes 0..1     f16   d            super-scale of the 6-bit sub-block scales
//   bytes 2..3     f16   dmin         super-scale of the 6-bit sub-block mins
//   bytes 4..15    uint8 scales[12]   8 scales + 8 mins, 6 bits each (see scaleMinK4)
//   bytes 16..143  uint8 qs[128]      4 chunks of 64 weights; in chunk c, byte 32c+l holds weight 64c+l in
//                                     its low nibble and weight 64c+32+l in its high nibble
// Sub-block j (weights 32j..32j+31) dequantizes as  w = d·sc[j]·q − dmin·m[j],  q ∈ 0..15.
//
// quantizeRowQ4_K is quantize_row_q4_K_ref (what llama-quantize uses without an importance matrix),
// including make_qkx2_quants, evaluated in float32 without FMA contraction (ggml-base is built without
// -march flags on x86-64, so the compiler cannot fuse `a*b + c`; an aarch64 or FMA-contracting build of
// ggml may differ from these bytes in the last bit of a scale, and then in a quant).

import type { QuantFormat } from './format.js';
import {
  assertBytes,
  assertFinite,
  assertRowShape,
  nearestInt as nearestIntImport,
  readF16,
  writeF16Scale,
} from './common.js';

// Bound once: module loaders that expose imports as getters (CJS interop, vitest) would otherwise pay a
// property access per call in the inner loops.
const fround = Math.fround;
const nearestInt = nearestIntImport;
const NEAREST_INT_MAGIC = 12582912;
const NEAREST_INT_MAX = 4194303;

/** MAX(0, MIN(nmax, nearest_int(v))) as a small int; the fast path of nearestInt kept inlinable. */
function roundClamp(v: number, nmax: number): number {
  let l = v <= NEAREST_INT_MAX && v >= -NEAREST_INT_MAX ? (fround(v + NEAREST_INT_MAGIC) - NEAREST_INT_MAGIC) | 0 : nearestInt(v);
  if (l < 0) l = 0;
  else if (l > nmax) l = nmax;
  return l;
}

export const QK_K = 256;
export const BLOCK_Q4_K_BYTES = 2 + 2 + 12 + QK_K / 2;
const SUB = 32; // weights per sub-block
const N_SUB = QK_K / SUB; // 8 sub-blocks per super-block
const OFF_SCALES = 4;
const OFF_QS = 16;
const NMAX_Q4 = 15; // 4-bit quants 0..15
const NMAX_SCALE = 63; // 6-bit scales and mins 0..63

/**
 * get_scale_min_k4: unpack the 6-bit (scale, min) of sub-block j from the 12 scale bytes at `o`.
 * j < 4: scale = s[j] & 63, min = s[j+4] & 63; j ≥ 4: low 4 bits from s[j+4], high 2 bits from the top
 * bits of s[j−4] (scale) and s[j] (min). Returns scale | min << 8.
 */
export function scaleMinK4(j: number, s: Uint8Array, o: number): number {
  if (j < 4) return (s[o + j]! & 63) | ((s[o + j + 4]! & 63) << 8);
  const sc = (s[o + j + 4]! & 0xf) | ((s[o + j - 4]! >> 6) << 4);
  const m = (s[o + j + 4]! >> 4) | ((s[o + j]! >> 6) << 4);
  return sc | (m << 8);
}

// Scratch of makeQkx2Quants (n ≤ MAX_FIT_N, nmax ≤ MAX_FIT_NMAX). Float64Arrays holding float32 values
// avoid a float32→float64 conversion per load in the trial loops.
const MAX_FIT_N = 256;
const MAX_FIT_NMAX = 255;
const fitX = new Float64Array(MAX_FIT_N);
const fitW = new Float64Array(MAX_FIT_N);
const fitXm = new Float64Array(MAX_FIT_N); // fround(x − min) for the current min
const fitLut = new Float64Array(MAX_FIT_NMAX + 1); // fround(fround(scale·l) + min), l = 0..nmax
const fitLaux = new Uint8Array(MAX_FIT_N); // quants of the current trial

/**
 * make_qkx2_quants: fit x[xo..xo+n) ≈ scale·L − theMin with L ∈ 0..nmax, minimizing the weighted squared
 * (or absolute, useMad) error over nstep+1 trial inverse scales. Writes L[lo..lo+n), stores −min into
 * outMin[outIdx] and returns the scale. Weights must be non-negative (ggml's always are).
 *
 * Bit-identical to ggml: every float32 operation, in ggml's order. The speed-ups only (a) hoist x − min and
 * scale·l + min, which ggml recomputes from the same operands, and (b) skip work whose outcome is known:
 * a trial whose quants equal the previous trial's has the same sums, fit and error, which already failed to
 * beat (or became) the best; and a trial's error, a float32 sum of non-negative terms that never decreases,
 * is abandoned once it reaches the best error.
 */
export function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  outMin: Float32Array,
  outIdx: number,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): number {
  if (n < 1 || n > MAX_FIT_N || nmax < 1 || nmax > MAX_FIT_NMAX) throw new Error(`make_qkx2_quants: unsupported n=${n}, nmax=${nmax}`);
  const xs = fitX;
  const ws = fitW;
  const xm = fitXm;
  const lut = fitLut;
  const Laux = fitLaux;
  let min = x[xo]!;
  let max = min;
  let sumW = weights[0]!;
  let sumX = fround(sumW * min);
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const w = weights[i]!;
    if (!(w >= 0)) throw new Error(`make_qkx2_quants: weight ${i} is ${w}; weights must be non-negative`);
    xs[i] = xi;
    ws[i] = w;
    if (i === 0) continue;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = fround(sumW + w);
    sumX = fround(sumX + fround(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    outMin[outIdx] = -min;
    return 0;
  }
  for (let i = 0; i < n; i++) xm[i] = fround(xs[i]! - min);
  let iscale = fround(nmax / fround(max - min));
  let scale = fround(1 / iscale);
  for (let l = 0; l <= nmax; l++) lut[l] = fround(fround(scale * l) + min);
  let bestErr = 0;
  for (let i = 0; i < n; i++) {
    const l = roundClamp(fround(iscale * xm[i]!), nmax);
    L[lo + i] = l;
    const diff = fround(lut[l]! - xs[i]!);
    bestErr = fround(bestErr + fround(ws[i]! * (useMad ? Math.abs(diff) : fround(diff * diff))));
  }
  if (nstep < 1) {
    outMin[outIdx] = -min;
    return scale;
  }
  for (let is = 0; is <= nstep; is++) {
    // `min` is the best fit so far (updated below), so the trial grid moves with it, as in ggml.
    iscale = fround(fround(fround(rmin + fround(rdelta * is)) + nmax) / fround(max - min));
    let changed = is === 0;
    for (let i = 0; i < n; i++) {
      const l = roundClamp(fround(iscale * xm[i]!), nmax);
      if (Laux[i] !== l) {
        Laux[i] = l;
        changed = true;
      }
    }
    if (!changed) continue;
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Laux[i]!;
      const wl = fround(ws[i]! * l);
      sumL = fround(sumL + wl);
      sumL2 = fround(sumL2 + fround(wl * l));
      sumXL = fround(sumXL + fround(wl * xs[i]!));
    }
    const D = fround(fround(sumW * sumL2) - fround(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = fround(fround(fround(sumW * sumXL) - fround(sumX * sumL)) / D);
    let thisMin = fround(fround(fround(sumL2 * sumX) - fround(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = fround(sumXL / sumL2);
    }
    for (let l = 0; l <= nmax; l++) lut[l] = fround(fround(thisScale * l) + thisMin);
    let err = 0;
    let i = 0;
    if (useMad) {
      for (; i < n && err < bestErr; i++) err = fround(err + fround(ws[i]! * Math.abs(fround(lut[Laux[i]!]! - xs[i]!))));
    } else {
      for (; i < n && err < bestErr; i++) {
        const diff = fround(lut[Laux[i]!]! - xs[i]!);
        err = fround(err + fround(ws[i]! * fround(diff * diff)));
      }
    }
    if (i === n && err < bestErr) {
      for (let k = 0; k < n; k++) L[lo + k] = Laux[k]!;
      bestErr = err;
      scale = thisScale;
      min = thisMin;
      for (let k = 0; k < n; k++) xm[k] = fround(xs[k]! - min);
    }
  }
  outMin[outIdx] = -min;
  return scale;
}

// Per-call scratch, reused across blocks and calls (quantization is synchronous, so sharing is safe).
const L = new Uint8Array(QK_K);
const weights = new Float32Array(SUB);
const mins = new Float32Array(N_SUB);
const scales = new Float32Array(N_SUB);

/** quantize_row_q4_K_ref: `src.length / 256` blocks into `dst`. Non-finite input throws. */
export function quantizeRowQ4_K(src: Float32Array, dst: Uint8Array): void {
  const nb = assertRowShape('q4_k quantize', src.length, QK_K);
  assertBytes('q4_k quantize dst', dst.length, nb * BLOCK_Q4_K_BYTES);
  assertFinite(src, 'q4_k quantize');
  for (let i = 0; i < nb; i++) {
    const xb = i * QK_K;
    const o = i * BLOCK_Q4_K_BYTES;
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < N_SUB; j++) {
      const xs = xb + SUB * j;
      let sumX2 = 0;
      for (let l = 0; l < SUB; l++) {
        const v = src[xs + l]!;
        sumX2 = fround(sumX2 + fround(v * v));
      }
      const avX = fround(Math.sqrt(fround(sumX2 / SUB)));
      for (let l = 0; l < SUB; l++) weights[l] = avX + Math.abs(src[xs + l]!); // Float32Array store rounds
      const scale = makeQkx2Quants(SUB, NMAX_Q4, src, xs, weights, L, SUB * j, mins, j, -1, fround(0.1), 20, false);
      scales[j] = scale;
      if (scale > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }

    const invScale = maxScale > 0 ? fround(NMAX_SCALE / maxScale) : 0;
    const invMin = maxMin > 0 ? fround(NMAX_SCALE / maxMin) : 0;
    const so = o + OFF_SCALES;
    for (let j = 0; j < N_SUB; j++) {
      // ggml stores nearest_int into a uint8_t before clamping to 63, hence the & 0xff.
      let ls = nearestInt(fround(invScale * scales[j]!)) & 0xff;
      let lm = nearestInt(fround(invMin * mins[j]!)) & 0xff;
      if (ls > NMAX_SCALE) ls = NMAX_SCALE;
      if (lm > NMAX_SCALE) lm = NMAX_SCALE;
      if (j < 4) {
        dst[so + j] = ls;
        dst[so + j + 4] = lm;
      } else {
        dst[so + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        dst[so + j - 4]! |= (ls >> 4) << 6;
        dst[so + j]! |= (lm >> 4) << 6;
      }
    }
    const dAll = writeF16Scale(dst, o, fround(maxScale / NMAX_SCALE), 'q4_k quantize');
    const dminAll = writeF16Scale(dst, o + 2, fround(maxMin / NMAX_SCALE), 'q4_k quantize');

    // Re-quantize against the stored (f16, 6-bit) scales. A sub-block whose effective scale is 0 keeps the
    // L from make_qkx2_quants, as in ggml.
    for (let j = 0; j < N_SUB; j++) {
      const sm = scaleMinK4(j, dst, so);
      const d = fround(dAll * (sm & 0xff));
      if (d === 0) continue;
      const dm = fround(dminAll * (sm >> 8));
      const xs = xb + SUB * j;
      for (let ii = 0; ii < SUB; ii++) {
        let l = nearestInt(fround(fround(src[xs + ii]! + dm) / d));
        l = l < 0 ? 0 : l > NMAX_Q4 ? NMAX_Q4 : l;
        L[SUB * j + ii] = l;
      }
    }

    const qo = o + OFF_QS;
    for (let c = 0; c < QK_K / 64; c++) {
      for (let l = 0; l < 32; l++) dst[qo + 32 * c + l] = L[64 * c + l]! | (L[64 * c + 32 + l]! << 4);
    }
  }
}

/** dequantize_row_q4_K: y = d·sc·q − dmin·m, each product and the difference in float32. */
export function dequantizeRowQ4_K(src: Uint8Array, dst: Float32Array): void {
  const nb = assertRowShape('q4_k dequantize', dst.length, QK_K);
  assertBytes('q4_k dequantize src', src.length, nb * BLOCK_Q4_K_BYTES);
  for (let i = 0; i < nb; i++) {
    const o = i * BLOCK_Q4_K_BYTES;
    const d = readF16(src, o);
    const dmin = readF16(src, o + 2);
    let y = i * QK_K;
    for (let c = 0; c < QK_K / 64; c++) {
      const sm1 = scaleMinK4(2 * c, src, o + OFF_SCALES);
      const sm2 = scaleMinK4(2 * c + 1, src, o + OFF_SCALES);
      const d1 = fround(d * (sm1 & 0xff));
      const m1 = fround(dmin * (sm1 >> 8));
      const d2 = fround(d * (sm2 & 0xff));
      const m2 = fround(dmin * (sm2 >> 8));
      const q = o + OFF_QS + 32 * c;
      for (let l = 0; l < 32; l++) dst[y++] = fround(d1 * (src[q + l]! & 0xf)) - m1;
      for (let l = 0; l < 32; l++) dst[y++] = fround(d2 * (src[q + l]! >> 4)) - m2;
    }
  }
}

/** Σ dequant(row)·x accumulated in float64 per sub-block: d·sc·Σq·x − dmin·m·Σx. */
export function dotQ4_KF32(row: Uint8Array, x: Float32Array): number {
  const nb = assertRowShape('q4_k dot', x.length, QK_K);
  assertBytes('q4_k dot row', row.length, nb * BLOCK_Q4_K_BYTES);
  let sum = 0;
  for (let i = 0; i < nb; i++) {
    const o = i * BLOCK_Q4_K_BYTES;
    const d = readF16(row, o);
    const dmin = readF16(row, o + 2);
    for (let c = 0; c < QK_K / 64; c++) {
      const sm1 = scaleMinK4(2 * c, row, o + OFF_SCALES);
      const sm2 = scaleMinK4(2 * c + 1, row, o + OFF_SCALES);
      const q = o + OFF_QS + 32 * c;
      const x1 = i * QK_K + 64 * c;
      const x2 = x1 + 32;
      let qx1 = 0, sx1 = 0, qx2 = 0, sx2 = 0;
      for (let l = 0; l < 32; l++) {
        const b = row[q + l]!;
        const a1 = x[x1 + l]!;
        const a2 = x[x2 + l]!;
        qx1 += (b & 0xf) * a1;
        sx1 += a1;
        qx2 += (b >> 4) * a2;
        sx2 += a2;
      }
      sum += d * (sm1 & 0xff) * qx1 - dmin * (sm1 >> 8) * sx1;
      sum += d * (sm2 & 0xff) * qx2 - dmin * (sm2 >> 8) * sx2;
    }
  }
  return sum;
}

export const Q4_K: QuantFormat = {
  dtype: 'q4_k',
  blockSize: QK_K,
  bytesPerBlock: BLOCK_Q4_K_BYTES,
  quantizeRow: quantizeRowQ4_K,
  dequantizeRow: dequantizeRowQ4_K,
  dotRow: dotQ4_KF32,
};
