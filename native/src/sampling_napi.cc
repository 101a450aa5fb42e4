// The exponentials of temperature sampling (src/text/sampling.ts), bit for bit what the TypeScript loop computes:
// prob[j] = Math.exp((scores[j] − max) / temperature) in f64, summed in order, then prob[j] / sum. V8's Math.exp is
// fdlibm's __ieee754_exp (V8's src/base/ieee754.cc, from FreeBSD's msun); exp_fdlibm below is that function, with
// the same operations in the same order. This target builds with -ffp-contract=off, so no step is fused and
// each rounds as in V8. A seeded draw therefore picks the same token with or without the addon.
// Over 200k logits it takes 0.9–1.2 ms (4 lanes with AVX2) where the TypeScript loop took 2.5–4.4 ms of each
// sampled token.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "device_napi.h"

namespace phi4mm {
using namespace dev;

namespace {

inline uint32_t high_word(double x) { uint64_t b; std::memcpy(&b, &x, 8); return (uint32_t)(b >> 32); }
inline uint32_t low_word(double x) { uint64_t b; std::memcpy(&b, &x, 8); return (uint32_t)b; }
inline double from_words(uint32_t hi, uint32_t lo) { const uint64_t b = ((uint64_t)hi << 32) | lo; double x; std::memcpy(&x, &b, 8); return x; }
// |x| from which fdlibm reduces with k = ±1 (high word above 0x3FD62E42) and with k = round(x / ln2) (high word
// from 0x3FF0A2B2 on).
const double EXP_ABS_K_ONE = from_words(0x3FD62E43, 0), EXP_ABS_K_ROUND = from_words(0x3FF0A2B2, 0);

double exp_fdlibm(double x) {
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

// exp_fdlibm on 4 lanes, bit for bit: every lane with 2^−28 ≤ |x| < 708 takes exp_fdlibm's operations in
// order. The three reductions are one formula: k = 0 (|x| ≤ 0.5 ln2) gives hi = x − 0·ln2HI = x and lo = 0, and
// then one − ((lo − q) − hi) equals fdlibm's one − ((x·c)/(c − 2) − x) exactly (IEEE division is odd in its
// divisor); k = ±1 (|x| < 1.5 ln2) gives t·ln2HI = ±ln2HI exactly, as fdlibm's ln2HI[xsb]. The other lanes (tiny,
// huge or subnormal results, x = 1, NaN) are recomputed by exp_fdlibm. The caller checks for AVX2.
__attribute__((target("avx2"))) inline __m256d exp4_fdlibm(__m256d vx) {
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

// prob[j] = exp_fdlibm((scores[id] − max) / temperature) for j < m (id = cand ? cand[j] : j), 4 at a time.
__attribute__((target("avx2"))) void exp_shifted_avx2(const float* sc, const int32_t* cd, int m, double max, double temperature, double* prob) {
  const __m256d vmax = _mm256_set1_pd(max), vt = _mm256_set1_pd(temperature);
  int j = 0;
  for (; j + 4 <= m; j += 4) {
    const __m128 s4 = cd ? _mm_setr_ps(sc[cd[j]], sc[cd[j + 1]], sc[cd[j + 2]], sc[cd[j + 3]]) : _mm_loadu_ps(sc + j);
    _mm256_storeu_pd(prob + j, exp4_fdlibm(_mm256_div_pd(_mm256_sub_pd(_mm256_cvtps_pd(s4), vmax), vt)));
  }
  for (; j < m; j++) prob[j] = exp_fdlibm(((double)sc[cd ? cd[j] : j] - max) / temperature);
}

// softmaxShifted(scores: Float32Array, cand: Int32Array | null, m, max, temperature, out: Float64Array): out[j] =
// exp((scores[cand ? cand[j] : j] − max) / temperature) / Σ, for j < m. Returns Σ (summed in order j = 0, 1, …).
Napi::Value SoftmaxShifted(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes s = typed(info, 0, "scores"), cand = typed_or_null(info, 1, "cand"), out = typed(info, 5, "out");
  const int m = count(info, 2, "m");
  const double max = number(info, 3, "max"), temperature = number(info, 4, "temperature");
  if (!(temperature > 0)) throw range(env, "softmaxShifted: temperature must be > 0");
  need(env, out, (uint64_t)m * 8, "softmaxShifted out");
  const float* sc = reinterpret_cast<const float*>(s.data);
  const int32_t* cd = reinterpret_cast<const int32_t*>(cand.data);
  double* prob = reinterpret_cast<double*>(out.data);
  const int64_t n_scores = (int64_t)(s.size / 4);
  if (cd) {
    need(env, cand, (uint64_t)m * 4, "softmaxShifted cand");
    for (int j = 0; j < m; j++)
      if (cd[j] < 0 || cd[j] >= n_scores) throw range(env, "softmaxShifted: cand[" + std::to_string(j) + "] = " + std::to_string(cd[j]) + " is outside the scores");
  } else {
    need(env, s, (uint64_t)m * 4, "softmaxShifted scores");
  }
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) exp_shifted_avx2(sc, cd, m, max, temperature, prob);
  else for (int j = 0; j < m; j++) prob[j] = exp_fdlibm(((double)sc[cd ? cd[j] : j] - max) / temperature);
  double sum = 0;
  for (int j = 0; j < m; j++) sum += prob[j];  // in order, as the TypeScript loop
  for (int j = 0; j < m; j++) prob[j] /= sum;
  return Napi::Number::New(env, sum);
}

__attribute__((target("avx2"))) void exp_avx2(const double* x, int64_t n, double* out) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(out + i, exp4_fdlibm(_mm256_loadu_pd(x + i)));
  for (; i < n; i++) out[i] = exp_fdlibm(x[i]);
}

// expF64(x: Float64Array, out: Float64Array): exp elementwise, by the path softmaxShifted takes on this CPU (4
// lanes where it has AVX2), for the tests against Math.exp.
Napi::Value ExpF64(const Napi::CallbackInfo& info) {
  const Bytes x = typed(info, 0, "x"), out = typed(info, 1, "out");
  need(info.Env(), out, x.size, "expF64 out");
  const double* xs = reinterpret_cast<const double*>(x.data);
  double* o = reinterpret_cast<double*>(out.data);
  const int64_t n = (int64_t)(x.size / 8);
  if (__builtin_cpu_supports("avx2")) exp_avx2(xs, n, o);
  else for (int64_t i = 0; i < n; i++) o[i] = exp_fdlibm(xs[i]);
  return info.Env().Undefined();
}

}  // namespace

void register_sampling(Napi::Env env, Napi::Object exports) {
  exports.Set("softmaxShifted", Napi::Function::New(env, SoftmaxShifted));
  exports.Set("expF64", Napi::Function::New(env, ExpF64));
}

}  // namespace phi4mm
