// Activation quantizers: bit-exact ports of ggml's reference quantizers (and of src/quant/q8_k.ts,
// src/quant/q8_0.ts). Scalar on purpose: they are O(M·K) next to the O(M·N·K) dot products, and being
// exact lets the tests compare the integer kernels with the TypeScript oracle to the last bit of each block.
#include <cmath>
#include "kernels.h"

namespace phi4mm {

// ggml's nearest_int: round half to even through the float32 sum with 1.5·2^23.
static inline int nearest_int(float f) {
  float val = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// f32 → f16 bits, round to nearest even (as ggml's GGML_FP32_TO_FP16 on x86 F16C and src/tensor/dtype.ts).
static uint16_t fp32_to_fp16(float x) {
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

void quantize_row_q8_K(const float* x, uint8_t* dst, int k) {
  for (int i = 0; i < k / QK_K; i++, x += QK_K, dst += BLOCK_Q8_K_BYTES) {
    int8_t* qs = reinterpret_cast<int8_t*>(dst + 4);
    float max = 0, amax = 0;
    for (int j = 0; j < QK_K; j++) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax == 0) {
      std::memset(dst, 0, BLOCK_Q8_K_BYTES);
      continue;
    }
    // −127 (not −128): the SIMD kernels then never meet −128 in maddubs/sign tricks.
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) {
      const int v = nearest_int(iscale * x[j]);
      qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK_K / 16; j++) {
      int16_t sum = 0;
      for (int l = 0; l < 16; l++) sum += qs[16 * j + l];
      std::memcpy(dst + 4 + QK_K + 2 * j, &sum, 2);
    }
    const float d = 1 / iscale;
    std::memcpy(dst, &d, 4);
  }
}

void quantize_row_q8_0(const float* x, uint8_t* dst, int k) {
  for (int i = 0; i < k / QK8_0; i++, x += QK8_0, dst += BLOCK_Q8_0_BYTES) {
    float amax = 0;
    for (int j = 0; j < QK8_0; j++) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;  // from the f32 d, not the stored f16 one (as ggml)
    const uint16_t h = fp32_to_fp16(d);
    std::memcpy(dst, &h, 2);
    int8_t* qs = reinterpret_cast<int8_t*>(dst + 2);
    for (int j = 0; j < QK8_0; j++) qs[j] = (int8_t)std::round(x[j] * id);
  }
}

}  // namespace phi4mm
