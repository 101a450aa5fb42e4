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

// exp_fdlibm on a vector of lanes, bit for bit: every lane with 2^−28 ≤ |x| < 708 takes exp_fdlibm's operations
// in order. The three reductions are one formula: k = 0 (|x| ≤ 0.5 ln2) gives hi = x − 0·ln2HI = x and lo = 0,
// and then one − ((lo − q) − hi) equals fdlibm's one − ((x·c)/(c − 2) − x) exactly (IEEE division is odd in its
// divisor); k = ±1 (|x| < 1.5 ln2) gives t·ln2HI = ±ln2HI exactly, as fdlibm's ln2HI[xsb]. The other lanes (tiny,
// huge or subnormal results, x = 1, NaN) are recomputed by exp_fdlibm. V: the lane traits below (AVX2: 4 lanes,
// compare masks in registers; AVX-512: 8 lanes, mask registers).
template <class V>
static inline typename V::D expv_fdlibm(typename V::D vx) {
  using D = typename V::D;
  using M = typename V::M;
  const D ax = V::abs(vx);
  const M neg = V::lt(vx, V::set1(0.0));
  const M general = V::ge(ax, V::set1(EXP_ABS_K_ROUND));
  const M k1 = V::and_not(general, V::ge(ax, V::set1(EXP_ABS_K_ONE)));
  const D half = V::blend(neg, V::set1(0.5), V::set1(-0.5));
  const D kr = V::trunc(V::add(V::mul(V::set1(1.44269504088896338700e+00), vx), half));
  const D pm1 = V::blend(neg, V::set1(1.0), V::set1(-1.0));
  const D t = V::blend(general, V::select(k1, pm1), kr);  // k as a double: 0, ±1 or rounded
  const D hi = V::sub(vx, V::mul(t, V::set1(6.93147180369123816490e-01)));
  const D lo = V::mul(t, V::set1(1.90821492927058770002e-10));
  const D r = V::sub(hi, lo);
  const D r2 = V::mul(r, r);
  D p = V::add(V::set1(-1.65339022054652515390e-06), V::mul(r2, V::set1(4.13813679705723846039e-08)));
  p = V::add(V::set1(6.61375632143793436117e-05), V::mul(r2, p));
  p = V::add(V::set1(-2.77777777770155933842e-03), V::mul(r2, p));
  p = V::add(V::set1(1.66666666666666019037e-01), V::mul(r2, p));
  const D c = V::sub(r, V::mul(r2, p));
  const D q = V::div(V::mul(r, c), V::sub(V::set1(2.0), c));
  const D y = V::sub(V::set1(1.0), V::sub(V::sub(lo, q), hi));
  D res = V::mul(y, V::pow2(t));
  const int ok = V::bits(V::and_(V::and_(V::ge(ax, V::set1(0x1p-28)), V::lt(ax, V::set1(708.0))), V::ne(vx, V::set1(1.0))));
  if (ok != (1 << V::N) - 1) {
    alignas(64) double xs[V::N], rs[V::N];
    V::store(xs, vx), V::store(rs, res);
    for (int i = 0; i < V::N; i++) if (!(ok >> i & 1)) rs[i] = exp_fdlibm(xs[i]);
    res = V::load(rs);
  }
  return res;
}

#if defined(__AVX2__)
struct ExpLanesAvx2 {
  using D = __m256d;
  using M = __m256d;  // all-ones / all-zero lanes
  static constexpr int N = 4;
  static D set1(double v) { return _mm256_set1_pd(v); }
  static D load(const double* p) { return _mm256_load_pd(p); }
  static void store(double* p, D v) { _mm256_store_pd(p, v); }
  static D add(D a, D b) { return _mm256_add_pd(a, b); }
  static D sub(D a, D b) { return _mm256_sub_pd(a, b); }
  static D mul(D a, D b) { return _mm256_mul_pd(a, b); }
  static D div(D a, D b) { return _mm256_div_pd(a, b); }
  static D abs(D a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static D trunc(D a) { return _mm256_round_pd(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  static M lt(D a, D b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M ge(D a, D b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static M ne(D a, D b) { return _mm256_cmp_pd(a, b, _CMP_NEQ_OQ); }
  static M and_(M a, M b) { return _mm256_and_pd(a, b); }
  static M and_not(M a, M b) { return _mm256_andnot_pd(a, b); }  // ¬a ∧ b
  static D blend(M m, D a, D b) { return _mm256_blendv_pd(a, b, m); }  // m ? b : a
  static D select(M m, D a) { return _mm256_and_pd(m, a); }       // m ? a : 0
  static int bits(M m) { return _mm256_movemask_pd(m); }
  static D pow2(D k) {  // 2^k for an integer-valued k with a normal result
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023)), 52));
  }
};
static inline __m256d exp4_fdlibm(__m256d vx) { return expv_fdlibm<ExpLanesAvx2>(vx); }
#endif

#if defined(__AVX512F__)
struct ExpLanesAvx512 {
  using D = __m512d;
  using M = __mmask8;
  static constexpr int N = 8;
  static D set1(double v) { return _mm512_set1_pd(v); }
  static D load(const double* p) { return _mm512_load_pd(p); }
  static void store(double* p, D v) { _mm512_store_pd(p, v); }
  static D add(D a, D b) { return _mm512_add_pd(a, b); }
  static D sub(D a, D b) { return _mm512_sub_pd(a, b); }
  static D mul(D a, D b) { return _mm512_mul_pd(a, b); }
  static D div(D a, D b) { return _mm512_div_pd(a, b); }
  static D abs(D a) { return _mm512_abs_pd(a); }
  static D trunc(D a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  static M lt(D a, D b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M ge(D a, D b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static M ne(D a, D b) { return _mm512_cmp_pd_mask(a, b, _CMP_NEQ_OQ); }
  static M and_(M a, M b) { return a & b; }
  static M and_not(M a, M b) { return ~a & b; }
  static D blend(M m, D a, D b) { return _mm512_mask_blend_pd(m, a, b); }
  static D select(M m, D a) { return _mm512_maskz_mov_pd(m, a); }
  static int bits(M m) { return m; }
  static D pow2(D k) {
    return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(k)), _mm512_set1_epi64(1023)), 52));
  }
};
static inline __m512d exp8_fdlibm(__m512d vx) { return expv_fdlibm<ExpLanesAvx512>(vx); }
#endif

}  // namespace phi4mm
