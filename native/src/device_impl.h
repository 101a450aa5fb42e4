// The per-ISA part of the device ops (device.h), written once and compiled three times (device_{generic,avx2,
// avx512}.cc, flags in binding.gyp) into phi4mm::{generic,avx2,avx512}. Every result row is computed by one
// fixed sequence of operations that depends only on that row's inputs (and, for attention, on its sequence's
// cached keys), never on how rows are tiled or batched: batch invariance holds bit for bit.
#include "device_simd.h"
#include "exp_fdlibm.h"

namespace phi4mm {
namespace PHI_NS {
namespace {

// ---- glue ----------------------------------------------------------------------------------------------------
// Σx² in f64 over 16 partial sums (value i into partial i mod 16; a square of an f32 is exact in f64), combined
// as c_j = p_j + p_{j+8}, d_j = c_j + c_{j+4}, e_j = d_j + d_{j+2}, e_0 + e_1: src/tensor/ops.ts's sumSquares, so
// bit-identical with the host device. Zero tail lanes add +0, which changes no partial (all are ≥ +0).
// Values [i, n) into their partials, then the pairwise combination (the scalar build does all of it here).
inline double sum_squares_finish(double* part, const float* x, int i, int n) {
  for (; i < n; i++) part[i & 15] += (double)x[i] * (double)x[i];
  for (int h = 8; h >= 1; h >>= 1)
    for (int j = 0; j < h; j++) part[j] += part[j + h];
  return part[0];
}
#if defined(__AVX512F__)
double sum_squares(const float* x, int n) {
  __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();  // partials 0..7, 8..15
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    a = _mm512_add_pd(a, _mm512_mul_pd(lo, lo));
    b = _mm512_add_pd(b, _mm512_mul_pd(hi, hi));
  }
  const __m512d c = _mm512_add_pd(a, b);
  const __m256d d = _mm256_add_pd(_mm512_castpd512_pd256(c), _mm512_extractf64x4_pd(c, 1));
  const __m128d e = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(_mm_add_sd(e, _mm_unpackhi_pd(e, e)));
}
#elif defined(__AVX2__)
double sum_squares(const float* x, int n) {
  __m256d p[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};  // partials 4q..4q+3
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int q = 0; q < 4; q++) {
      const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * q));
      p[q] = _mm256_add_pd(p[q], _mm256_mul_pd(v, v));
    }
  alignas(32) double part[16];
  for (int q = 0; q < 4; q++) _mm256_store_pd(part + 4 * q, p[q]);
  return sum_squares_finish(part, x, i, n);
}
#else
double sum_squares(const float* x, int n) {
  double part[16] = {};
  return sum_squares_finish(part, x, 0, n);
}
#endif

// 1/sqrt(Σx²/dim + eps) in f64, fround(x·inv), then ·w in f32: the TypeScript expressions' operations in their
// order, so bit-identical with the host device.
void rms_norm(const float* x, float* out, const float* w, int rows, int dim, double eps) {
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (int64_t)r * dim;
    float* o = out + (int64_t)r * dim;
    const double inv = 1.0 / std::sqrt(sum_squares(xr, dim) / dim + eps);
    for (int i = 0; i < dim; i++) o[i] = w[i] * (float)((double)xr[i] * inv);
  }
}

// ---- swiglu in f64 ----------------------------------------------------------------------------------------------
// out = up · (g / (1 + e^−g)) in f64, rounded once to f32: the TypeScript expression's arithmetic. e^x in f64 to
// ≤ ~1 ulp (Cody-Waite reduction with FMA, degree-13 Taylor polynomial, 2^n in two halves), so the f32 result
// equals the host device's (V8's exp is < 1 ulp too) except where an f32 rounding boundary falls between the two
// f64 values (~2^-28 of values: then 1 f32 ulp). Inputs below −40 give e = 0 (1 + e^−40 rounds to 1 anyway).
constexpr double EXPD_LO = -40.0, EXPD_HI = 709.782712893384;
constexpr double LOG2E_D = 1.4426950408889634, LN2_HI_D = 6.93147180369123816490e-01, LN2_LO_D = 1.90821492927058770002e-10;
constexpr double INV_FACT[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
                                 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800};
#if defined(__AVX512F__)
inline __m512d vexp_pd(__m512d x) {
  const __mmask8 big = _mm512_cmp_pd_mask(x, _mm512_set1_pd(EXPD_HI), _CMP_GT_OQ);
  const __mmask8 small = _mm512_cmp_pd_mask(x, _mm512_set1_pd(EXPD_LO), _CMP_LT_OQ);
  x = _mm512_min_pd(_mm512_max_pd(x, _mm512_set1_pd(EXPD_LO)), _mm512_set1_pd(EXPD_HI));
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(LOG2E_D)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(LN2_HI_D), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(LN2_LO_D), r);
  __m512d p = _mm512_set1_pd(INV_FACT[13]);
  for (int k = 12; k >= 0; k--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(INV_FACT[k]));
  const __m512i ni = _mm512_cvtpd_epi64(n), n1 = _mm512_srai_epi64(ni, 1), n2 = _mm512_sub_epi64(ni, n1);
  const __m512i bias = _mm512_set1_epi64(1023);
  const __m512d s1 = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(n1, bias), 52));
  const __m512d s2 = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(n2, bias), 52));
  __m512d y = _mm512_mul_pd(_mm512_mul_pd(p, s1), s2);
  y = _mm512_mask_blend_pd(big, y, _mm512_set1_pd(INFINITY));
  return _mm512_mask_blend_pd(small, y, _mm512_setzero_pd());
}
void swiglu_rows(const float* gu, float* out, int rows, int inter) {
  for (int r = 0; r < rows; r++) {
    const float* g = gu + (int64_t)r * 2 * inter;
    const float* u = g + inter;
    float* o = out + (int64_t)r * inter;
    int i = 0;
    for (; i + 8 <= inter; i += 8) {
      const __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(g + i)), up = _mm512_cvtps_pd(_mm256_loadu_ps(u + i));
      const __m512d e = vexp_pd(_mm512_sub_pd(_mm512_setzero_pd(), a));
      _mm256_storeu_ps(o + i, _mm512_cvtpd_ps(_mm512_mul_pd(up, _mm512_div_pd(a, _mm512_add_pd(_mm512_set1_pd(1.0), e)))));
    }
    for (; i < inter; i++) { const double a = g[i]; o[i] = (float)((double)u[i] * (a / (1.0 + std::exp(-a)))); }
  }
}
#elif defined(__AVX2__)
inline __m256d vexp_pd(__m256d x) {
  const __m256d big = _mm256_cmp_pd(x, _mm256_set1_pd(EXPD_HI), _CMP_GT_OQ);
  const __m256d small = _mm256_cmp_pd(x, _mm256_set1_pd(EXPD_LO), _CMP_LT_OQ);
  x = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(EXPD_LO)), _mm256_set1_pd(EXPD_HI));
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(LOG2E_D)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(LN2_HI_D), x);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(LN2_LO_D), r);
  __m256d p = _mm256_set1_pd(INV_FACT[13]);
  for (int k = 12; k >= 0; k--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(INV_FACT[k]));
  // n (an integer, |n| ≤ 1024) → int64 lanes through the 1.5·2^52 magic number (AVX2 has no cvtpd_epi64).
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);
  const __m256i ni = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
  // Halves n1 = ⌊n/2⌋, n2 = n − n1 (n ≥ −58 after the clamp, so a logical shift of n + 64 does it).
  const __m256i n1 = _mm256_sub_epi64(_mm256_srli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(64)), 1), _mm256_set1_epi64x(32));
  const __m256i n2 = _mm256_sub_epi64(ni, n1);
  const __m256i bias = _mm256_set1_epi64x(1023);
  const __m256d s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n1, bias), 52));
  const __m256d s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n2, bias), 52));
  __m256d y = _mm256_mul_pd(_mm256_mul_pd(p, s1), s2);
  y = _mm256_blendv_pd(y, _mm256_set1_pd(INFINITY), big);
  return _mm256_blendv_pd(y, _mm256_setzero_pd(), small);
}
void swiglu_rows(const float* gu, float* out, int rows, int inter) {
  for (int r = 0; r < rows; r++) {
    const float* g = gu + (int64_t)r * 2 * inter;
    const float* u = g + inter;
    float* o = out + (int64_t)r * inter;
    int i = 0;
    for (; i + 4 <= inter; i += 4) {
      const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(g + i)), up = _mm256_cvtps_pd(_mm_loadu_ps(u + i));
      const __m256d e = vexp_pd(_mm256_sub_pd(_mm256_setzero_pd(), a));
      _mm_storeu_ps(o + i, _mm256_cvtpd_ps(_mm256_mul_pd(up, _mm256_div_pd(a, _mm256_add_pd(_mm256_set1_pd(1.0), e)))));
    }
    for (; i < inter; i++) { const double a = g[i]; o[i] = (float)((double)u[i] * (a / (1.0 + std::exp(-a)))); }
  }
}
#else
void swiglu_rows(const float* gu, float* out, int rows, int inter) {
  for (int r = 0; r < rows; r++) {
    const float* g = gu + (int64_t)r * 2 * inter;
    for (int i = 0; i < inter; i++) {
      const double a = g[i];
      out[(int64_t)r * inter + i] = (float)((double)g[inter + i] * (a / (1.0 + std::exp(-a))));
    }
  }
}
#endif

// The products of two f32 are exact in f64, so x1·c − x2·s rounds once in f64 and once to f32: the same two
// roundings as the TypeScript expression on Float32Arrays, hence bit-identical.
void rope(float* x, int rows, int64_t ld, int off, int nh, int hd, int rd, const float* cos, const float* sin) {
  const int half = rd / 2;
  for (int r = 0; r < rows; r++) {
    const float* c = cos + (int64_t)r * rd;
    const float* s = sin + (int64_t)r * rd;
    for (int h = 0; h < nh; h++) {
      float* o = x + (int64_t)r * ld + off + (int64_t)h * hd;
      for (int k = 0; k < half; k++) {
        const double x1 = o[k], x2 = o[k + half];
        o[k] = (float)(x1 * (double)c[k] - x2 * (double)s[k]);
        o[k + half] = (float)(x2 * (double)c[k + half] + x1 * (double)s[k + half]);
      }
    }
  }
}

void to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__)
  for (; i + VL <= n; i += VL) vstore_f16(y + i, vload(x + i));
#endif
  for (; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

void from_f16(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + VL <= n; i += VL) vstore(y + i, vload_f16(x + i));
  for (; i < n; i++) y[i] = fp16_to_fp32(x[i]);
}

#include "device_paged_attention.h"

#include "device_gemm_cols.h"

// Math.exp elementwise, 8 lanes at a time with AVX-512 and 4 with AVX2 (expv_fdlibm: the same bits).
void exp_f64(const double* x, double* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 8 <= n; i += 8) _mm512_storeu_pd(y + i, exp8_fdlibm(_mm512_loadu_pd(x + i)));
#endif
#if defined(__AVX2__)
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, exp4_fdlibm(_mm256_loadu_pd(x + i)));
#endif
  for (; i < n; i++) y[i] = exp_fdlibm(x[i]);
}

extern const DeviceKernels device_kernels = {
#if defined(__AVX512F__)
    "avx512",
#elif defined(__AVX2__)
    "avx2",
#else
    "scalar",
#endif
    rms_norm, rope, swiglu_rows, to_f16, from_f16, paged_attention, gemm_cols, exp_f64,
};

}  // namespace PHI_NS
}  // namespace phi4mm
