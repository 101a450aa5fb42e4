// The kernels, written once and compiled three times (kernels_{generic,avx2,avx512}.cc) with different -m
// flags into namespaces phi4mm::{generic,avx2,avx512}. PHI_NS names the namespace; the __AVX512F__ /
// __AVX2__ / __AVX512VNNI__ macros set by those flags select the SIMD paths below.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>

#include <vector>

#include "interleave.h"
#include "kernels.h"

#if defined(__AVX2__)
#include "immintrin_quiet.h"
#endif

namespace phi4mm {
namespace PHI_NS {

#if defined(__AVX2__)
static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

// ---- f32 vectors: one register of VL floats --------------------------------------------------------------
#if defined(__AVX512F__)
using vf = __m512;
constexpr int VL = 16;
static inline vf vzero() { return _mm512_setzero_ps(); }
static inline vf vset1(float x) { return _mm512_set1_ps(x); }
static inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline float vhsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline vf vload_bf16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
static inline vf vload_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
static inline float fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
#elif defined(__AVX2__)
using vf = __m256;
constexpr int VL = 8;
static inline vf vzero() { return _mm256_setzero_ps(); }
static inline vf vset1(float x) { return _mm256_set1_ps(x); }
static inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline float vhsum(vf v) { return hsum8(v); }
static inline vf vload_bf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}
static inline vf vload_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
static inline float fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
#else
typedef float vf __attribute__((vector_size(16)));
constexpr int VL = 4;
static inline vf vzero() { return vf{0, 0, 0, 0}; }
static inline vf vset1(float x) { return vf{x, x, x, x}; }
static inline vf vload(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline float vhsum(vf v) { return (v[0] + v[1]) + (v[2] + v[3]); }
static inline vf vload_bf16(const uint16_t* p) {
  vf v;
  for (int i = 0; i < 4; i++) { uint32_t u = (uint32_t)p[i] << 16; std::memcpy(&v[i], &u, 4); }
  return v;
}
static inline vf vload_f16(const uint16_t* p) {
  return vf{fp16_to_fp32_soft(p[0]), fp16_to_fp32_soft(p[1]), fp16_to_fp32_soft(p[2]), fp16_to_fp32_soft(p[3])};
}
static inline float fp16_to_fp32(uint16_t h) { return fp16_to_fp32_soft(h); }
#endif

// ---- more f32 vector ops: max, masked partial loads/stores (n < VL lanes), exp ---------------------------
#if defined(__AVX512F__)
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline float vhmax(vf v) { return _mm512_reduce_max_ps(v); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vload_n(const float* p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
static inline void vstore_n(float* p, vf v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
#elif defined(__AVX2__)
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline float vhmax(vf v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline __m256i lane_mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
static inline vf vload_n(const float* p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
static inline void vstore_n(float* p, vf v, int n) { _mm256_maskstore_ps(p, lane_mask(n), v); }
#else
static inline vf vmax(vf a, vf b) { return vf{std::max(a[0], b[0]), std::max(a[1], b[1]), std::max(a[2], b[2]), std::max(a[3], b[3])}; }
static inline float vhmax(vf v) { return std::max(std::max(v[0], v[1]), std::max(v[2], v[3])); }
static inline vf vmul(vf a, vf b) { return a * b; }
static inline vf vadd(vf a, vf b) { return a + b; }
static inline vf vload_n(const float* p, int n) { vf v = vzero(); std::memcpy(&v, p, n * sizeof(float)); return v; }
static inline void vstore_n(float* p, vf v, int n) { std::memcpy(p, &v, n * sizeof(float)); }
#endif

// e^x over the whole float range, ≤ 2 ulp for normal results: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in
// two so n·ln2_hi is exact), e^r by Cephes' degree-7 polynomial, then 2^n applied in two halves so results
// down to the subnormal range round once and x < −104 gives +0 (softmax masks of −3.4e38 included).
// x > 88.72 gives +Inf; NaN propagates.
constexpr float EXP_LO = -104.f, EXP_HI = 88.7228394f;
constexpr float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
constexpr float EXP_P0 = 1.9875691500e-4f, EXP_P1 = 1.3981999507e-3f, EXP_P2 = 8.3334519073e-3f,
                EXP_P3 = 4.1665795894e-2f, EXP_P4 = 1.6666665459e-1f, EXP_P5 = 5.0000001201e-1f;
#if defined(__AVX512F__)
static inline vf vexp(vf x) {
  const __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_HI), _CMP_GT_OQ);
  x = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x);  // NaN stays NaN (max returns its second operand)
  const vf n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
  vf p = _mm512_set1_ps(EXP_P0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  const __m512i ni = _mm512_cvtps_epi32(n);  // −151 ≤ n ≤ 128
  const __m512i n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const vf s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, _mm512_set1_epi32(127)), 23));
  const vf s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, _mm512_set1_epi32(127)), 23));
  return _mm512_mask_blend_ps(big, _mm512_mul_ps(_mm512_mul_ps(p, s1), s2), _mm512_set1_ps(INFINITY));
}
#elif defined(__AVX2__)
static inline vf vexp(vf x) {
  const vf big = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_HI), _CMP_GT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
  const vf n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
  vf p = _mm256_set1_ps(EXP_P0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  const vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  return _mm256_blendv_ps(_mm256_mul_ps(_mm256_mul_ps(p, s1), s2), _mm256_set1_ps(INFINITY), big);
}
#else
static inline vf vexp(vf x) { return vf{std::exp(x[0]), std::exp(x[1]), std::exp(x[2]), std::exp(x[3])}; }
#endif

// y[i] = e^x[i] with the kernels' vexp (exposed for the accuracy test).
static void exp_rows(const float* x, float* y, int n) {
  int i = 0;
  for (; i + VL <= n; i += VL) vstore(y + i, vexp(vload(x + i)));
  if (i < n) vstore_n(y + i, vexp(vload_n(x + i, n - i)), n - i);
}

template <WType T> static inline vf loadw(const void* b, int64_t i);
template <> inline vf loadw<WType::F32>(const void* b, int64_t i) { return vload((const float*)b + i); }
template <> inline vf loadw<WType::BF16>(const void* b, int64_t i) { return vload_bf16((const uint16_t*)b + i); }
template <> inline vf loadw<WType::F16>(const void* b, int64_t i) { return vload_f16((const uint16_t*)b + i); }

// A partial vector (n < VL elements) through a zero-padded stack copy.
template <WType T> static inline vf loadw_tail(const void* b, int64_t i, int n) {
  alignas(64) uint16_t h[VL] = {};
  if (T == WType::F32) return vload_n((const float*)b + i, n);
  std::memcpy(h, (const uint16_t*)b + i, n * sizeof(uint16_t));
  return T == WType::BF16 ? vload_bf16(h) : vload_f16(h);
}
static inline vf vload_tail(const float* p, int n) { return vload_n(p, n); }

// ---- f32 GEMM, C = A·Bᵀ --------------------------------------------------------------------------------
// Dot-product form: a tile of MR rows of A and NR rows of B, both contiguous along K, keeps MR·NR vector
// accumulators in registers and needs no packing (B is the weight, read in place). Loads per FMA are
// (MR + NR) / (MR·NR) < 1, so the FMA ports are the limit, not the load ports.
#if defined(__AVX512F__)
constexpr int MR = 4, NR = 6;  // 24 accumulators + 4 A + 1 B of 32 zmm
#elif defined(__AVX2__)
constexpr int MR = 3, NR = 4;  // 12 accumulators + 3 A + 1 B of 16 ymm
#else
constexpr int MR = 2, NR = 2;
#endif
constexpr int KC = 512;  // K slice: an MR×KC A tile and an NR×KC B tile stay in L1 (KC multiple of VL)
constexpr int MC = 128;  // rows of A per pass: MC×KC floats (256 KB) stay in L2 while B streams past

template <int mr, int nr, WType T>
static inline void gemm_tile(const GemmArgs& g, int i0, int j0, int k0, int kc, bool first) {
  vf acc[mr][nr];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) acc[i][j] = vzero();
  const float* a = g.a + (int64_t)i0 * g.lda + k0;
  const int64_t b0 = (int64_t)j0 * g.ldb + k0;
  int kk = 0;
  for (; kk + VL <= kc; kk += VL) {
    vf av[mr];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) av[i] = vload(a + i * g.lda + kk);
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) {
      const vf bv = loadw<T>(g.b, b0 + j * g.ldb + kk);
#pragma GCC unroll 8
      for (int i = 0; i < mr; i++) acc[i][j] = vfma(av[i], bv, acc[i][j]);
    }
  }
  if (kk < kc) {
    const int rem = kc - kk;
    vf av[mr];
    for (int i = 0; i < mr; i++) av[i] = vload_tail(a + i * g.lda + kk, rem);
    for (int j = 0; j < nr; j++) {
      const vf bv = loadw_tail<T>(g.b, b0 + j * g.ldb + kk, rem);
      for (int i = 0; i < mr; i++) acc[i][j] = vfma(av[i], bv, acc[i][j]);
    }
  }
  for (int i = 0; i < mr; i++) {
    float* c = g.c + (int64_t)(i0 + i) * g.ldc + j0;
    for (int j = 0; j < nr; j++) c[j] = first ? vhsum(acc[i][j]) : c[j] + vhsum(acc[i][j]);
  }
}

template <int nr, WType T>
static inline void gemm_tile_m(int mr, const GemmArgs& g, int i0, int j0, int k0, int kc, bool first) {
  switch (mr) {
    case 1: gemm_tile<1, nr, T>(g, i0, j0, k0, kc, first); break;
    case 2: if constexpr (MR >= 2) gemm_tile<2, nr, T>(g, i0, j0, k0, kc, first); break;
    case 3: if constexpr (MR >= 3) gemm_tile<3, nr, T>(g, i0, j0, k0, kc, first); break;
    case 4: if constexpr (MR >= 4) gemm_tile<4, nr, T>(g, i0, j0, k0, kc, first); break;
  }
}

template <WType T>
static void gemm_nt_t(const GemmArgs& g, int n0, int n1) {
  // Always K slices of KC, whatever M: a row's sum (slice partial sums added in order) is then the same whether
  // the row runs alone (decode) or in a batch (prefill, batched decode) — the engine's batch invariance.
  const int kcb = KC;
  for (int mc0 = 0; mc0 < g.m; mc0 += MC) {
    const int mc1 = std::min(g.m, mc0 + MC);
    for (int k0 = 0; k0 < g.k; k0 += kcb) {
      const int kc = std::min(kcb, g.k - k0);
      const bool first = k0 == 0;
      for (int j0 = n0; j0 < n1; j0 += NR) {
        const int nr = std::min(NR, n1 - j0);
        for (int i0 = mc0; i0 < mc1; i0 += MR) {
          const int mr = std::min(MR, mc1 - i0);
          if (nr == NR) {
            gemm_tile_m<NR, T>(mr, g, i0, j0, k0, kc, first);
          } else {
            for (int j = 0; j < nr; j++) gemm_tile_m<1, T>(mr, g, i0, j0 + j, k0, kc, first);
          }
        }
      }
    }
  }
  for (int i = 0; i < g.m; i++) {
    float* c = g.c + (int64_t)i * g.ldc;
    if (g.k == 0) std::fill(c + n0, c + n1, 0.f);
    if (g.bias) for (int j = n0; j < n1; j++) c[j] += g.bias[j];
  }
}

static void gemm_nt(const GemmArgs& g, int n0, int n1) {
  switch (g.bt) {
    case WType::F32: gemm_nt_t<WType::F32>(g, n0, n1); break;
    case WType::BF16: gemm_nt_t<WType::BF16>(g, n0, n1); break;
    case WType::F16: gemm_nt_t<WType::F16>(g, n0, n1); break;
  }
}

// ---- quantized GEMM ------------------------------------------------------------------------------------
#include "qgemm_impl.h"

// ---- attention -----------------------------------------------------------------------------------------
// Per (head, block of queries): scores S = Q·Kᵀ into scratch, softmax per row in f32 with max subtraction
// (vectorized exp), then O = P·V / Σp. Long query blocks take the scores from K packed once per kv head into
// key panels (no horizontal sums: keys lie along the vector lanes); decode (few queries) reads K in place
// through the dot-product GEMM tile.
#if defined(__AVX512F__)
constexpr int SQ = 6, SV = 4;  // score tile: 6 queries × 4 vectors of keys (24 accumulators)
constexpr int PQ = 4, PV = 5;  // P·V tile: 4 queries × up to 5 vectors of head dims (20 accumulators)
#elif defined(__AVX2__)
constexpr int SQ = 4, SV = 3;
constexpr int PQ = 2, PV = 4;
#else
constexpr int SQ = 2, SV = 2;
constexpr int PQ = 2, PV = 2;
#endif
constexpr int KP = SV * VL;  // keys per packed panel

#if defined(__AVX512F__)
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
#elif defined(__AVX2__)
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
#else
static inline vf vsub(vf a, vf b) { return a - b; }
#endif

// K of kv head kh → panels [⌈tk / KP⌉][d][KP], zero-padded past tk.
static void attn_pack_k(const AttnArgs& p, int kh, float* dst) {
  const int np = (p.tk + KP - 1) / KP;
  const int64_t kstride = (int64_t)p.hkv * p.d;
  for (int pi = 0; pi < np; pi++) {
    float* panel = dst + (int64_t)pi * p.d * KP;
    const int j0 = pi * KP, nj = std::min(KP, p.tk - j0);
    for (int jj = 0; jj < KP; jj++) {
      const float* krow = p.k + (int64_t)(j0 + jj) * kstride + (int64_t)kh * p.d;
      for (int c = 0; c < p.d; c++) panel[c * KP + jj] = jj < nj ? krow[c] : 0.f;
    }
  }
}

// s[i][0..KP) = q_i · k_{panel keys} for mr query rows q + i·ldq.
template <int mr>
static inline void score_tile(const float* q, int64_t ldq, const float* panel, int d, float* s, int64_t lds) {
  vf acc[mr][SV];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int v = 0; v < SV; v++) acc[i][v] = vzero();
  for (int c = 0; c < d; c++) {
    vf kv[SV];
#pragma GCC unroll 8
    for (int v = 0; v < SV; v++) kv[v] = vload(panel + c * KP + v * VL);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      const vf qi = vset1(q[i * ldq + c]);
#pragma GCC unroll 8
      for (int v = 0; v < SV; v++) acc[i][v] = vfma(qi, kv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < SV; v++) vstore(s + i * lds + v * VL, acc[i][v]);
}

static void scores_packed(const float* q, int64_t ldq, int nq, const float* kp, int d, int ncols, float* s, int64_t lds) {
  const int np = (ncols + KP - 1) / KP;
  for (int pi = 0; pi < np; pi++) {
    const float* panel = kp + (int64_t)pi * d * KP;
    for (int i = 0; i < nq; i += SQ) {
      const float* qi = q + i * ldq;
      float* si = s + i * lds + pi * KP;
      switch (std::min(SQ, nq - i)) {
        case 1: score_tile<1>(qi, ldq, panel, d, si, lds); break;
        case 2: if constexpr (SQ >= 2) score_tile<2>(qi, ldq, panel, d, si, lds); break;
        case 3: if constexpr (SQ >= 3) score_tile<3>(qi, ldq, panel, d, si, lds); break;
        case 4: if constexpr (SQ >= 4) score_tile<4>(qi, ldq, panel, d, si, lds); break;
        case 5: if constexpr (SQ >= 5) score_tile<5>(qi, ldq, panel, d, si, lds); break;
        case 6: if constexpr (SQ >= 6) score_tile<6>(qi, ldq, panel, d, si, lds); break;
      }
    }
  }
}

// In place on s[0..n): s = e^(s·scale + mask + bias − max); returns Σ s.
static float softmax_numerators(float* s, int n, float scale, const float* mrow, const float* brow) {
  const vf vs = vset1(scale);
  vf mxv = vset1(-std::numeric_limits<float>::infinity());
  int j = 0;
  for (; j + VL <= n; j += VL) {
    vf x = vmul(vload(s + j), vs);
    if (mrow) x = vadd(x, vload(mrow + j));
    if (brow) x = vadd(x, vload(brow + j));
    vstore(s + j, x);
    mxv = vmax(mxv, x);
  }
  float mx = vhmax(mxv);
  for (int t = j; t < n; t++) {
    float x = s[t] * scale;
    if (mrow) x += mrow[t];
    if (brow) x += brow[t];
    s[t] = x;
    mx = std::max(mx, x);
  }
  const vf vm = vset1(mx);  // max subtraction: no overflow, the largest term is 1
  vf sumv = vzero();
  for (j = 0; j + VL <= n; j += VL) {
    const vf e = vexp(vsub(vload(s + j), vm));
    vstore(s + j, e);
    sumv = vadd(sumv, e);
  }
  float sum = vhsum(sumv);
  if (j < n) {
    const int r = n - j;
    vstore_n(s + j, vexp(vsub(vload_n(s + j, r), vm)), r);
    for (int t = j; t < n; t++) sum += s[t];
  }
  return sum;
}

// o_r[c0 .. c0 + w) = inv_r · Σ_j p_r[j]·v_j[c0 .. c0 + w) for nq query rows at once (each V vector loaded
// once for all of them); nv = ⌈w / VL⌉ vectors, the last one partial when w % VL ≠ 0.
template <int nq, int nv>
static inline void pv_tile(float* o, int64_t ldo, const float* p, int64_t ldp, const float* v, int64_t vstride, int n, int w,
                           const float* inv) {
  const int last = w - (nv - 1) * VL;  // lanes of the last vector, 1..VL
  vf acc[nq][nv];
#pragma GCC unroll 8
  for (int r = 0; r < nq; r++)
#pragma GCC unroll 8
    for (int t = 0; t < nv; t++) acc[r][t] = vzero();
  for (int j = 0; j < n; j++) {
    const float* vj = v + j * vstride;
    vf vv[nv];
#pragma GCC unroll 8
    for (int t = 0; t < nv - 1; t++) vv[t] = vload(vj + t * VL);
    vv[nv - 1] = last == VL ? vload(vj + (nv - 1) * VL) : vload_n(vj + (nv - 1) * VL, last);
#pragma GCC unroll 8
    for (int r = 0; r < nq; r++) {
      const vf pr = vset1(p[r * ldp + j]);
#pragma GCC unroll 8
      for (int t = 0; t < nv; t++) acc[r][t] = vfma(pr, vv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < nq; r++) {
    const vf sc = vset1(inv[r]);
    for (int t = 0; t < nv - 1; t++) vstore(o + r * ldo + t * VL, vmul(acc[r][t], sc));
    vstore_n(o + r * ldo + (nv - 1) * VL, vmul(acc[r][nv - 1], sc), last);
  }
}

template <int nq>
static inline void pv_rows(float* o, int64_t ldo, const float* p, int64_t ldp, const float* v, int64_t vstride, int n, int d,
                           const float* inv) {
  const int nvec = (d + VL - 1) / VL;
  const int chunks = (nvec + PV - 1) / PV;
  const int per = (nvec + chunks - 1) / chunks;  // vectors per chunk, as even as possible
  for (int c0 = 0; c0 < d; c0 += per * VL) {
    const int w = std::min(per * VL, d - c0);
    switch ((w + VL - 1) / VL) {
      case 1: pv_tile<nq, 1>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 2: pv_tile<nq, 2>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 3: if constexpr (PV >= 3) pv_tile<nq, 3>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 4: if constexpr (PV >= 4) pv_tile<nq, 4>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 5: if constexpr (PV >= 5) pv_tile<nq, 5>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
    }
  }
}

// One block of score rows (see AttnBlock): S = Q·Kᵀ, softmax, O = P·V / Σp. scratch: rows of lds floats.
static void attention(const AttnArgs& p, const float* kpacked, const AttnBlock& blk, float* scratch, int64_t lds) {
  const int d = p.d, group = p.h / p.hkv, kh = blk.head / group, nq = blk.rows;
  const bool by_head = blk.heads_as_rows;  // rows: heads blk.head.. of query i0, else queries i0.. of blk.head
  const int64_t kstride = (int64_t)p.hkv * d;
  const int64_t ldq = by_head ? d : (int64_t)p.h * d;           // q and out row stride
  const int64_t ldb = by_head ? (int64_t)p.tq * p.tk : p.tk;    // bias row stride
  const int di = by_head ? 0 : 1;                                // query index step per row
  const float* q = p.q + ((int64_t)blk.i0 * p.h + blk.head) * d;
  float* out = p.out + ((int64_t)blk.i0 * p.h + blk.head) * d;
  const float* vbase = p.v + (int64_t)kh * d;
  auto limit_of = [&](int i) {
    return p.causal_offset < 0 ? p.tk : (int)std::max<int64_t>(0, std::min<int64_t>(p.tk, p.causal_offset + i + 1));
  };
  const int ncols = limit_of(blk.i0 + (nq - 1) * di);  // the widest row of the block (limits grow with i)
  if (ncols == 0) {  // no visible key: as the reference, an empty sum
    for (int r = 0; r < nq; r++) std::fill(out + r * ldq, out + r * ldq + d, 0.f);
    return;
  }
  if (d == 0) return;
  if (kpacked) {
    scores_packed(q, ldq, nq, kpacked, d, ncols, scratch, lds);
  } else {
    GemmArgs g{q, ldq, p.k + (int64_t)kh * d, kstride, WType::F32, scratch, lds, nullptr, nq, ncols, d};
    gemm_nt_t<WType::F32>(g, 0, ncols);
  }
  float inv[PQ];
  for (int r0 = 0; r0 < nq; r0 += PQ) {
    const int nr = std::min(PQ, nq - r0);
    for (int r = 0; r < nr; r++) {
      const int row = r0 + r, i = blk.i0 + row * di, limit = limit_of(i);
      float* s = scratch + (int64_t)row * lds;
      const float* mrow = p.mask ? p.mask + (int64_t)i * p.tk : nullptr;
      const float* brow = p.bias ? p.bias + ((int64_t)blk.head * p.tq + blk.i0) * p.tk + row * ldb : nullptr;
      inv[r] = limit > 0 ? 1.f / softmax_numerators(s, limit, p.scale, mrow, brow) : 0.f;
      std::fill(s + limit, s + ncols, 0.f);  // causal rows of one block share the key range [0, ncols)
    }
    float* o = out + r0 * ldq;
    const float* pr = scratch + (int64_t)r0 * lds;
    switch (nr) {
      case 1: pv_rows<1>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
      case 2: pv_rows<2>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
      case 3: if constexpr (PQ >= 3) pv_rows<3>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
      case 4: if constexpr (PQ >= 4) pv_rows<4>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
    }
  }
}

extern const Kernels kernels = {
#if defined(__AVX512F__)
    "avx512",
#elif defined(__AVX2__)
    "avx2",
#else
    "scalar",
#endif
    gemm_nt,
    qgemm_q4k,
    qgemm_q80,
    qgemm_q4k_x16,
    qgemm_q80_x16,
    attention,
    attn_pack_k,
    KP,
    exp_rows,
};

}  // namespace PHI_NS
}  // namespace phi4mm
