// The plain reference of the quantized GEMM (see qgemm_impl.h): scalar integer dots per block, combined in
// block order with exactly the float operations every fast path uses, so the tests can require bit equality.
#include <cmath>
#include "kernels.h"

namespace phi4mm {

void qgemm_ref(int fmt, const QGemmArgs& g) {
  for (int m = 0; m < g.m; m++) {
    const uint8_t* x = g.xq + (int64_t)m * g.xq_row_bytes;
    for (int n = 0; n < g.n; n++) {
      const uint8_t* w = g.w + (int64_t)n * g.w_row_bytes;
      float acc = 0.f;
      for (int i = 0; i < g.nb; i++) {
        if (fmt == 0) {
          const uint8_t* blk = w + (int64_t)i * BLOCK_Q4_K_BYTES;
          const uint8_t* y = x + (int64_t)i * BLOCK_Q8_K_BYTES;
          const uint8_t* s = blk + 4;
          int32_t sumi = 0, summ = 0;
          for (int j = 0; j < 8; j++) {  // sub-block j: 32 weights, scale/min by get_scale_min_k4
            const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
            const int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
              const int e = 32 * j + l;  // element; its nibble: byte 16 + 32·(e/64) + e%32, high half when e%64 ≥ 32
              const uint8_t b = blk[16 + 32 * (e / 64) + (e % 32)];
              dot += ((e % 64) >= 32 ? b >> 4 : b & 0xf) * (int8_t)y[4 + e];
            }
            int16_t b0, b1;
            std::memcpy(&b0, y + 4 + QK_K + 4 * j, 2);
            std::memcpy(&b1, y + 4 + QK_K + 4 * j + 2, 2);
            sumi += sc * dot;
            summ += mn * (b0 + b1);
          }
          float d8;
          std::memcpy(&d8, y, 4);
          const float d = fp16_to_fp32_soft(load_u16(blk)), dmin = fp16_to_fp32_soft(load_u16(blk + 2));
          acc = std::fma(d * d8, (float)sumi, acc);
          acc = std::fma(-(dmin * d8), (float)summ, acc);
        } else {
          const uint8_t* blk = w + (int64_t)i * BLOCK_Q8_0_BYTES;
          const uint8_t* y = x + (int64_t)i * BLOCK_Q8_0_BYTES;
          int32_t sumi = 0;
          for (int l = 0; l < QK8_0; l++) sumi += (int8_t)blk[2 + l] * (int8_t)y[2 + l];
          acc = std::fma(fp16_to_fp32_soft(load_u16(blk)) * fp16_to_fp32_soft(load_u16(y)), (float)sumi, acc);
        }
      }
      g.y[(int64_t)m * g.ldy + n] = acc + (g.bias ? g.bias[n] : 0.f);
    }
  }
}

}  // namespace phi4mm
