// Scalar primitives shared by the activation and weight quantizers, bit-exact ports of ggml's (and of
// src/quant/common.ts). Compiled only into the generic-flag target built with -ffp-contract=off.
#pragma once
#include <cstdint>
#include <cstring>

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

// The 12 packed bytes of a Q4_K super-block's 8 sub-block scales and mins, as ggml's quantize_row_q4_K_ref:
// each value × its inverse step through nearest_int and uint8_t, then clamped to 6 bits (63). The unpacked
// 6-bit values go to ls / lm for the caller's re-quantization.
constexpr int Q4K_SUB_BLOCKS = 8;
static inline void pack_q4k_scales(const float* scales, const float* mins, float inv_scale, float inv_min, uint8_t* sc,
                                   uint8_t* ls_out, uint8_t* lm_out) {
  constexpr uint8_t nmax = 63;
  for (int j = 0; j < Q4K_SUB_BLOCKS; ++j) {
    uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);  // through uint8_t before the clamp, as ggml
    uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
    ls = ls < nmax ? ls : nmax;
    lm = lm < nmax ? lm : nmax;
    ls_out[j] = ls;
    lm_out[j] = lm;
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
      sc[j - 4] |= (ls >> 4) << 6;
      sc[j] |= (lm >> 4) << 6;
    }
  }
}

}  // namespace phi4mm
