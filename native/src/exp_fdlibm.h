// Math.exp as V8 computes it, bit for bit: V8's Math.exp is fdlibm's __ieee754_exp (V8's src/base/ieee754.cc,
// from FreeBSD's msun), and exp_fdlibm is that function with the same operations in the same order. Every file
// that includes this builds with -ffp-contract=off, so no step is fused and each rounds as in V8. Internal
// linkage: each ISA build keeps its own copy (an inline function shared across them could run AVX code on a
// CPU without it).
#pragma once
#include "immintrin_quiet.h"

#include <cstdint>
#include <cstring>

namespace phi4mm {

static inline uint32_t high_word(double x) { uint64_t b; std::memcpy(&b, &x, 8); return (uint32_t)(b >> 32); }
static inline uint32_t low_word(double x) { uint64_t b; std::memcpy(&b, &x, 8); return (uint32_t)b; }
static inline double from_words(uint32_t hi, uint32_t lo) { const uint64_t b = ((uint64_t)hi << 32) | lo; double x; std::memcpy(&x, &b, 8); return x; }
// |x| from which fdlibm reduces with k = ±1 (high word above 0x3FD62E42) and with k = round(x / ln2) (high word
// from 0x3FF0A2B2 on).
static const double EXP_ABS_K_ONE = from_words(0x3FD62E43, 0), EXP_ABS_K_ROUND = from_words(0x3FF0A2B2, 0);

static inline double exp_fdlibm(double x) {
  static const double one = 1.0, halF[2] = {0.5, -0.5},
                      o_threshold = 7.09782712893383973096e+02,  // 0x40862E42 FEFA39EF
                      u_threshold = -7.45133219101941108420e+02, // 0xC0874910 D52D3051
                      ln2HI[2] = {6.93147180369123816490e-01, -6.93147180369123816490e-01},  // 0x3FE62E42 FEE00000
                      ln2LO[2] = {1.90821492927058770002e-10, -1.90821492927058770002e-10},  // 0x3DEA39EF 35793C76
                      invln2 = 1.44269504088896338700e+00,       // 0x3FF71547 652B82FE
                      P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
                      P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08,
                      E = 2.718281828459045;                     // 0x4005BF0A 8B145769
  // volatile as in V8: the overflow and underflow products must be computed, not folded
  static volatile double huge = 1.0e+300, twom1000 = 9.33263618503218878990e-302, two1023 = 8.988465674311579539e307;

  double y, hi = 0.0, lo = 0.0, c, t, twopk;
  int32_t k = 0;
  uint32_t hx = high_word(x);
  const int32_t xsb = (hx >> 31) & 1;
  hx &= 0x7FFFFFFF;  // high word of |x|

  if (hx >= 0x40862E42) {  // |x| ≥ 709.78…: non-finite, overflow or underflow
    if (hx >= 0x7FF00000) {
      if (((hx & 0xFFFFF) | low_word(x)) != 0) return x + x;  // NaN
      return xsb == 0 ? x : 0.0;                               // exp(±inf) = {inf, 0}
    }
    if (x > o_threshold) return huge * huge;
    if (x < u_threshold) return twom1000 * twom1000;
  }
  if (hx > 0x3FD62E42) {    // |x| > 0.5 ln2
    if (hx < 0x3FF0A2B2) {  // and |x| < 1.5 ln2
      if (x == 1.0) return E;
      hi = x - ln2HI[xsb];
      lo = ln2LO[xsb];
      k = 1 - xsb - xsb;
    } else {
      k = static_cast<int32_t>(invln2 * x + halF[xsb]);
      t = k;
      hi = x - t * ln2HI[0];  // t·ln2HI is exact here
      lo = t * ln2LO[0];
    }
    x = hi - lo;
  } else if (hx < 0x3E300000) {  // |x| < 2^−28
    if (huge + x > one) return one + x;
  } else {
    k = 0;
  }
  t = x * x;
  twopk = k >= -1021 ? from_words(0x3FF00000 + ((uint32_t)k << 20), 0) : from_words(0x3FF00000 + ((uint32_t)(k + 1000) << 20), 0);
  c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return one - ((x * c) / (c - 2.0) - x);
  y = one - ((lo - (x * c) / (2.0 - c)) - hi);
  if (k >= -1021) {
    if (k == 1024) return y * 2.0 * two1023;
    return y * twopk;
  }
  return y * twopk * twom1000;
}

#if defined(__AVX2__)
// exp_fdlibm on 4 lanes, bit for bit: every lane with 2^−28 ≤ |x| < 708 takes exp_fdlibm's operations in
// order. The three reductions are one formula: k = 0 (|x| ≤ 0.5 ln2) gives hi = x − 0·ln2HI = x and lo = 0, and
// then one − ((lo − q) − hi) equals fdlibm's one − ((x·c)/(c − 2) − x) exactly (IEEE division is odd in its
// divisor); k = ±1 (|x| < 1.5 ln2) gives t·ln2HI = ±ln2HI exactly, as fdlibm's ln2HI[xsb]. The other lanes (tiny,
// huge or subnormal results, x = 1, NaN) are recomputed by exp_fdlibm.
static inline __m256d exp4_fdlibm(__m256d vx) {
  const __m256d ax = _mm256_andnot_pd(_mm256_set1_pd(-0.0), vx);
  const __m256d neg = _mm256_cmp_pd(vx, _mm256_setzero_pd(), _CMP_LT_OQ);
  const __m256d general = _mm256_cmp_pd(ax, _mm256_set1_pd(EXP_ABS_K_ROUND), _CMP_GE_OQ);
  const __m256d k1 = _mm256_andnot_pd(general, _mm256_cmp_pd(ax, _mm256_set1_pd(EXP_ABS_K_ONE), _CMP_GE_OQ));
  const __m256d half = _mm256_blendv_pd(_mm256_set1_pd(0.5), _mm256_set1_pd(-0.5), neg);
  const __m256d kr = _mm256_round_pd(_mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(1.44269504088896338700e+00), vx), half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256d pm1 = _mm256_blendv_pd(_mm256_set1_pd(1.0), _mm256_set1_pd(-1.0), neg);
  const __m256d t = _mm256_blendv_pd(_mm256_and_pd(k1, pm1), kr, general);  // k as a double: 0, ±1 or rounded
  const __m256d hi = _mm256_sub_pd(vx, _mm256_mul_pd(t, _mm256_set1_pd(6.93147180369123816490e-01)));
  const __m256d lo = _mm256_mul_pd(t, _mm256_set1_pd(1.90821492927058770002e-10));
  const __m256d r = _mm256_sub_pd(hi, lo);
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d p = _mm256_add_pd(_mm256_set1_pd(-1.65339022054652515390e-06), _mm256_mul_pd(r2, _mm256_set1_pd(4.13813679705723846039e-08)));
  p = _mm256_add_pd(_mm256_set1_pd(6.61375632143793436117e-05), _mm256_mul_pd(r2, p));
  p = _mm256_add_pd(_mm256_set1_pd(-2.77777777770155933842e-03), _mm256_mul_pd(r2, p));
  p = _mm256_add_pd(_mm256_set1_pd(1.66666666666666019037e-01), _mm256_mul_pd(r2, p));
  const __m256d c = _mm256_sub_pd(r, _mm256_mul_pd(r2, p));
  const __m256d q = _mm256_div_pd(_mm256_mul_pd(r, c), _mm256_sub_pd(_mm256_set1_pd(2.0), c));
  const __m256d y = _mm256_sub_pd(_mm256_set1_pd(1.0), _mm256_sub_pd(_mm256_sub_pd(lo, q), hi));
  const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(t)), _mm256_set1_epi64x(1023)), 52);
  __m256d res = _mm256_mul_pd(y, _mm256_castsi256_pd(e));
  const __m256d ok = _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(ax, _mm256_set1_pd(0x1p-28), _CMP_GE_OQ), _mm256_cmp_pd(ax, _mm256_set1_pd(708.0), _CMP_LT_OQ)),
                                   _mm256_cmp_pd(vx, _mm256_set1_pd(1.0), _CMP_NEQ_OQ));
  const int okm = _mm256_movemask_pd(ok);
  if (okm != 0xF) {
    alignas(32) double xs[4], rs[4];
    _mm256_store_pd(xs, vx), _mm256_store_pd(rs, res);
    for (int i = 0; i < 4; i++) if (!(okm >> i & 1)) rs[i] = exp_fdlibm(xs[i]);
    res = _mm256_load_pd(rs);
  }
  return res;
}
#endif

#if defined(__AVX512F__)
// exp4_fdlibm on 8 lanes: the same operations per lane, masks instead of blends; the same lanes fall back.
static inline __m512d exp8_fdlibm(__m512d vx) {
  const __m512d ax = _mm512_abs_pd(vx);
  const __mmask8 neg = _mm512_cmp_pd_mask(vx, _mm512_setzero_pd(), _CMP_LT_OQ);
  const __mmask8 general = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(EXP_ABS_K_ROUND), _CMP_GE_OQ);
  const __mmask8 k1 = ~general & _mm512_cmp_pd_mask(ax, _mm512_set1_pd(EXP_ABS_K_ONE), _CMP_GE_OQ);
  const __m512d half = _mm512_mask_blend_pd(neg, _mm512_set1_pd(0.5), _mm512_set1_pd(-0.5));
  const __m512d kr = _mm512_roundscale_pd(_mm512_add_pd(_mm512_mul_pd(_mm512_set1_pd(1.44269504088896338700e+00), vx), half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512d pm1 = _mm512_mask_blend_pd(neg, _mm512_set1_pd(1.0), _mm512_set1_pd(-1.0));
  const __m512d t = _mm512_mask_blend_pd(general, _mm512_maskz_mov_pd(k1, pm1), kr);  // k as a double: 0, ±1 or rounded
  const __m512d hi = _mm512_sub_pd(vx, _mm512_mul_pd(t, _mm512_set1_pd(6.93147180369123816490e-01)));
  const __m512d lo = _mm512_mul_pd(t, _mm512_set1_pd(1.90821492927058770002e-10));
  const __m512d r = _mm512_sub_pd(hi, lo);
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d p = _mm512_add_pd(_mm512_set1_pd(-1.65339022054652515390e-06), _mm512_mul_pd(r2, _mm512_set1_pd(4.13813679705723846039e-08)));
  p = _mm512_add_pd(_mm512_set1_pd(6.61375632143793436117e-05), _mm512_mul_pd(r2, p));
  p = _mm512_add_pd(_mm512_set1_pd(-2.77777777770155933842e-03), _mm512_mul_pd(r2, p));
  p = _mm512_add_pd(_mm512_set1_pd(1.66666666666666019037e-01), _mm512_mul_pd(r2, p));
  const __m512d c = _mm512_sub_pd(r, _mm512_mul_pd(r2, p));
  const __m512d q = _mm512_div_pd(_mm512_mul_pd(r, c), _mm512_sub_pd(_mm512_set1_pd(2.0), c));
  const __m512d y = _mm512_sub_pd(_mm512_set1_pd(1.0), _mm512_sub_pd(_mm512_sub_pd(lo, q), hi));
  const __m512i e = _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(t)), _mm512_set1_epi64(1023)), 52);
  __m512d res = _mm512_mul_pd(y, _mm512_castsi512_pd(e));
  const __mmask8 ok = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(0x1p-28), _CMP_GE_OQ) & _mm512_cmp_pd_mask(ax, _mm512_set1_pd(708.0), _CMP_LT_OQ) &
                      _mm512_cmp_pd_mask(vx, _mm512_set1_pd(1.0), _CMP_NEQ_OQ);
  if (ok != 0xFF) {
    alignas(64) double xs[8], rs[8];
    _mm512_store_pd(xs, vx), _mm512_store_pd(rs, res);
    for (int i = 0; i < 8; i++) if (!(ok >> i & 1)) rs[i] = exp_fdlibm(xs[i]);
    res = _mm512_load_pd(rs);
  }
  return res;
}
#endif

}  // namespace phi4mm
