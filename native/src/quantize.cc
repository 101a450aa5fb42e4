// Activation quantizers: bit-exact ports of ggml's reference quantizers (and of src/quant/q8_k.ts,
// src/quant/q8_0.ts). Scalar on purpose: they are O(M·K) next to the O(M·N·K) dot products, and being
// exact lets the tests compare the integer kernels with the TypeScript oracle to the last bit of each block.
#include <cmath>
#include "kernels.h"
#include "quant_common.h"

namespace phi4mm {

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
