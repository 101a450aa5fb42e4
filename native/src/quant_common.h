// Scalar primitives shared by the activation and weight quantizers, bit-exact ports of ggml's (and of
// src/quant/common.ts). Compiled only into the generic-flag target built with -ffp-contract=off.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace phi4mm {

// ggml's nearest_int: round half to even through the float32 sum with 1.5·2^23. Outside |f| < 2^22 it reads
// the same mantissa bits as ggml's release build (whose assert is compiled out).
static inline int nearest_int(float f) {
  float val = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// f32 → f16 bits, round to nearest even (as ggml's GGML_FP32_TO_FP16 on x86 F16C and src/tensor/dtype.ts).
static inline uint16_t fp32_to_fp16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t sign = (u >> 16) & 0x8000;
  const uint32_t exp = (u >> 23) & 0xff;
  uint32_t mant = u & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    const int shift = 14 - e;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return (uint16_t)(sign | half);
}

// Stores GGML_FP32_TO_FP16(v) at p and its f16 value in *stored; false (nothing stored) when it overflows f16
// (src/quant throws there rather than storing an Inf scale that would dequantize to Inf/NaN).
static inline bool store_f16_scale(uint8_t* p, float v, float* stored) {
  constexpr uint16_t f16_exp = 0x7c00;
  const uint16_t h = fp32_to_fp16(v);
  if ((h & f16_exp) == f16_exp) return false;
  std::memcpy(p, &h, 2);
  *stored = fp16_to_fp32_soft(h);
  return true;
}

// ggml's quantize_row_q4_K_ref between the sub-block fits and the re-quantization, shared by the scalar port and
// the vectorized quantizer: the 12 packed bytes of 6-bit scales and mins at blk + 4 (each value × 63 / the
// largest, through nearest_int and uint8_t, then clamped to 63), then d and dmin (largest / 63) as f16 at blk.
// ls / lm: the 6-bit values; d / dmin: the stored f16 values. False when d or dmin overflows f16.
constexpr int Q4K_SUB_BLOCKS = 8;
static inline bool q4k_pack_scales(const float* scales, const float* mins, uint8_t* blk, uint8_t* ls, uint8_t* lm, float* d, float* dmin) {
  constexpr uint8_t nmax = 63;
  float max_scale = 0, max_min = 0;  // the min is subtracted, so scales are non-negative
  for (int j = 0; j < Q4K_SUB_BLOCKS; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t* sc = blk + 4;
  for (int j = 0; j < Q4K_SUB_BLOCKS; ++j) {
    uint8_t s = (uint8_t)nearest_int(inv_scale * scales[j]);  // through uint8_t before the clamp, as ggml
    uint8_t m = (uint8_t)nearest_int(inv_min * mins[j]);
    s = s < nmax ? s : nmax;
    m = m < nmax ? m : nmax;
    ls[j] = s;
    lm[j] = m;
    if (j < 4) {
      sc[j] = s;
      sc[j + 4] = m;
    } else {
      sc[j + 4] = (s & 0xF) | ((m & 0xF) << 4);
      sc[j - 4] |= (s >> 4) << 6;
      sc[j] |= (m >> 4) << 6;
    }
  }
  return store_f16_scale(blk, max_scale / 63.f, d) && store_f16_scale(blk + 2, max_min / 63.f, dmin);
}

// A super-block's 256 quants (0..15) as ggml's nibble pairs at qs: in each 64-weight group, byte l holds
// weight l (low nibble) and weight l + 32 (high nibble).
static inline void q4k_pack_nibbles(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 256; j += 64, qs += 32)
    for (int l = 0; l < 32; ++l) qs[l] = L[j + l] | (L[j + l + 32] << 4);
}

}  // namespace phi4mm
