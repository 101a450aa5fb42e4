// The AVX-512 build of the fast ISQ (quantize_fast_impl.h): 16 lanes per zmm register. Flags in binding.gyp.
#define PHI_NS isq_avx512
#include "quantize_fast_impl.h"

namespace phi4mm {

QuantStatus quantize_weights_q4_K_avx512(const float* x, uint8_t* dst, int k) { return isq_avx512::quantize_q4_K(x, dst, k); }
void quantize_row_q8_K_avx512(const float* x, uint8_t* dst, int k) { isq_avx512::quantize_q8_K(x, dst, k); }
void quantize_row_q8_0_avx512(const float* x, uint8_t* dst, int k) { isq_avx512::quantize_q8_0(x, dst, k); }

}  // namespace phi4mm
