// The AVX2 build of the fast ISQ (quantize_fast_impl.h): 8 lanes per ymm register. Flags in binding.gyp.
#define PHI_NS isq_avx2
#include "quantize_fast_impl.h"

namespace phi4mm {

QuantStatus quantize_weights_q4_K_avx2(const float* x, uint8_t* dst, int k) { return isq_avx2::quantize_q4_K(x, dst, k); }
void quantize_row_q8_K_avx2(const float* x, uint8_t* dst, int k) { isq_avx2::quantize_q8_K(x, dst, k); }
void quantize_row_q8_0_avx2(const float* x, uint8_t* dst, int k) { isq_avx2::quantize_q8_0(x, dst, k); }

}  // namespace phi4mm
