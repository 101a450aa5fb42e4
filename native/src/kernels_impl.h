// The kernels, written once and compiled three times (kernels_{generic,avx2,avx512}.cc) with different -m
// flags into namespaces phi4mm::{generic,avx2,avx512}. PHI_NS names the namespace; the __AVX512F__ /
// __AVX2__ / __AVX512VNNI__ macros set by those flags select the SIMD paths below.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.h"

#if defined(__AVX2__)
#include <immintrin.h>
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

template <WType T> static inline vf loadw(const void* b, int64_t i);
template <> inline vf loadw<WType::F32>(const void* b, int64_t i) { return vload((const float*)b + i); }
template <> inline vf loadw<WType::BF16>(const void* b, int64_t i) { return vload_bf16((const uint16_t*)b + i); }
template <> inline vf loadw<WType::F16>(const void* b, int64_t i) { return vload_f16((const uint16_t*)b + i); }

// A partial vector (n < VL elements) through a zero-padded stack copy.
template <WType T> static inline vf loadw_tail(const void* b, int64_t i, int n) {
  alignas(64) uint16_t h[VL] = {};
  alignas(64) float f[VL] = {};
  if (T == WType::F32) {
    std::memcpy(f, (const float*)b + i, n * sizeof(float));
    return vload(f);
  }
  std::memcpy(h, (const uint16_t*)b + i, n * sizeof(uint16_t));
  return T == WType::BF16 ? vload_bf16(h) : vload_f16(h);
}
static inline vf vload_tail(const float* p, int n) { return loadw_tail<WType::F32>(p, 0, n); }

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
  // Few rows of A (decode): one pass over full K so each B row streams from DRAM start to end.
  const int kcb = g.m <= 2 * MR ? std::max(g.k, 1) : KC;
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
// One weight row against QR activation rows at a time: the weight block is loaded and unpacked once and
// used QR times (prefill reuse); NW weight rows × QR activation rows (~28 KB) stay in L1 meanwhile.
constexpr int QR = 4;
constexpr int NW = 8;

// get_scale_min_k4 for all 8 sub-blocks: 12 packed bytes → sc[8], mn[8].
static inline void unpack_scales_mins(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; j++) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 0xf) | ((s[j] >> 6) << 4);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

#if defined(__AVX2__)
// get_scale_min_k4 for all 8 sub-blocks in 32-bit lanes (ggml's kmask trick): bytes 0..7 = scales,
// 8..15 = mins. Register-only, so no store-forwarding stall on the block's hot path.
static inline __m128i scales_mins_k4(const uint8_t* s) {
  constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  uint32_t u[3];
  std::memcpy(u, s, 12);
  const uint32_t sc_lo = u[0] & kmask1;                                           // scales 0..3
  const uint32_t sc_hi = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);        // scales 4..7
  const uint32_t mn_lo = u[1] & kmask1;                                           // mins 0..3
  const uint32_t mn_hi = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4); // mins 4..7
  return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

static inline __m256i madd_scale(__m256i acc, __m256i scale16, __m256i p16) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(acc, scale16, p16);  // fused madd + add
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(scale16, p16));
#endif
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
// One zmm holds a 64-weight chunk as [32 low nibbles | 32 high nibbles], which is exactly the order of the
// 64 matching Q8_K values, so each chunk is one load + maddubs + dpwssd per activation row; the unpacked
// weights and per-half scales are computed once per block and reused by all R rows.
template <int R>
static void q4k_row512(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  const __m512i m4 = _mm512_set1_epi8(0xF);
  const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);  // 0 | 4
  __m512i pick[4];  // lanes 0..255 broadcast scale 2j, lanes 256..511 scale 2j+1
  for (int j = 0; j < 4; j++)
    pick[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((int16_t)(((4 * j + 1) << 8) | (4 * j)))),
                                 _mm256_set1_epi16((int16_t)(((4 * j + 3) << 8) | (4 * j + 2))), 1);
  __m512 acc[R];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q4_K_BYTES;
    const float d = fp16_to_fp32(load_u16(blk)), dmin = fp16_to_fp32(load_u16(blk + 2));
    const __m256i mins_scales = _mm256_cvtepu8_epi16(scales_mins_k4(blk + 4));  // 8 scales, 8 mins
    const __m128i mins = _mm256_extracti128_si256(mins_scales, 1);
    const __m512i scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(mins_scales));
    __m512i q4[4], sc[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(blk + 16 + 32 * j)));
      q4[j] = _mm512_and_si512(_mm512_srlv_epi16(bits, shift), m4);
      sc[j] = _mm512_shuffle_epi8(scales, pick[j]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_K_BYTES;
      const float d8 = load_f32(y);
      const __m256i bsums = _mm256_loadu_si256((const __m256i*)(y + 4 + QK_K));
      const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
      const __m128i prod = _mm_madd_epi16(mins, q8s);  // Σ m·bsums, 4 lanes
      __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++)
        sumi = _mm512_dpwssd_epi32(sumi, sc[j], _mm512_maddubs_epi16(q4[j], _mm512_loadu_si512(y + 4 + 64 * j)));
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d * d8), _mm512_cvtepi32_ps(sumi), acc[r]);
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(-dmin * d8), _mm512_cvtepi32_ps(_mm512_zextsi128_si512(prod)), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}
#endif

template <int R>
static void q4k_row256(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc[R];
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q4_K_BYTES;
    const float d = fp16_to_fp32(load_u16(blk)), dmin = fp16_to_fp32(load_u16(blk + 2));
    const __m256i mins_scales = _mm256_cvtepu8_epi16(scales_mins_k4(blk + 4));  // 8 scales, 8 mins
    const __m128i sc128 = _mm256_castsi256_si128(mins_scales);
    const __m128i mins = _mm256_extracti128_si256(mins_scales, 1);
    const __m256i scales = _mm256_inserti128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
    __m256i q4l[4], q4h[4];
    for (int j = 0; j < 4; j++) {
      const __m256i bits = _mm256_loadu_si256((const __m256i*)(blk + 16 + 32 * j));
      q4l[j] = _mm256_and_si256(bits, m4);
      q4h[j] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_K_BYTES;
      const float d8 = load_f32(y);
      const __m256i bsums = _mm256_loadu_si256((const __m256i*)(y + 4 + QK_K));
      const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
      const __m128i prod = _mm_madd_epi16(mins, q8s);  // Σ m·bsums, 4 lanes
      __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        const __m256i sl = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((int16_t)(((4 * j + 1) << 8) | (4 * j))));
        const __m256i sh = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((int16_t)(((4 * j + 3) << 8) | (4 * j + 2))));
        const __m256i q8l = _mm256_loadu_si256((const __m256i*)(y + 4 + 64 * j));
        const __m256i q8h = _mm256_loadu_si256((const __m256i*)(y + 4 + 64 * j + 32));
        sumi = madd_scale(sumi, sl, _mm256_maddubs_epi16(q4l[j], q8l));
        sumi = madd_scale(sumi, sh, _mm256_maddubs_epi16(q4h[j], q8h));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * d8), _mm256_cvtepi32_ps(sumi), acc[r]);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * d8), _mm256_cvtepi32_ps(_mm256_zextsi128_si256(prod)), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}

// Decode (one activation row) is bound by unpacking, where the ymm kernel measured faster on Zen 4;
// with several rows the zmm kernel's once-per-block unpack pays off.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
template <int R>
static void q4k_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  if constexpr (R == 1) q4k_row256<1>(w, xq, nb, out);
  else q4k_row512<R>(w, xq, nb, out);
}
#else
template <int R>
static void q4k_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) { q4k_row256<R>(w, xq, nb, out); }
#endif

template <int R>
static void q80_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  __m256 acc[R];
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
#if !(defined(__AVX512VNNI__) && defined(__AVX512VL__))
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q8_0_BYTES;
    const float dw = fp16_to_fp32(load_u16(blk));
    const __m256i wq = _mm256_loadu_si256((const __m256i*)(blk + 2));
    const __m256i aw = _mm256_sign_epi8(wq, wq);  // |w| as u8; the sign moves onto x
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_0_BYTES;
      const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)(y + 2)), wq);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sy);
#else
      const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sy), ones);
#endif
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * fp16_to_fp32(load_u16(y))), _mm256_cvtepi32_ps(dot), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
#else
template <int R>
static void q4k_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  float acc[R] = {};
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q4_K_BYTES;
    const float d = fp16_to_fp32(load_u16(blk)), dmin = fp16_to_fp32(load_u16(blk + 2));
    uint8_t sc[8], mn[8], q[QK_K];
    unpack_scales_mins(blk + 4, sc, mn);
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) {
        const uint8_t b = blk[16 + 32 * c + l];
        q[64 * c + l] = b & 0xf;
        q[64 * c + 32 + l] = b >> 4;
      }
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_K_BYTES;
      const int8_t* q8 = reinterpret_cast<const int8_t*>(y + 4);
      int32_t sumi = 0, summ = 0;
      for (int j = 0; j < 8; j++) {
        int32_t s = 0;
        for (int l = 0; l < 32; l++) s += q[32 * j + l] * q8[32 * j + l];
        sumi += sc[j] * s;
      }
      for (int j = 0; j < 16; j++) summ += mn[j / 2] * (int16_t)load_u16(y + 4 + QK_K + 2 * j);
      const float d8 = load_f32(y);
      acc[r] += d * d8 * (float)sumi - dmin * d8 * (float)summ;
    }
  }
  for (int r = 0; r < R; r++) out[r] = acc[r];
}

template <int R>
static void q80_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  float acc[R] = {};
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q8_0_BYTES;
    const float dw = fp16_to_fp32(load_u16(blk));
    const int8_t* wq = reinterpret_cast<const int8_t*>(blk + 2);
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_0_BYTES;
      const int8_t* yq = reinterpret_cast<const int8_t*>(y + 2);
      int32_t s = 0;
      for (int l = 0; l < QK8_0; l++) s += wq[l] * yq[l];
      acc[r] += (float)s * (dw * fp16_to_fp32(load_u16(y)));
    }
  }
  for (int r = 0; r < R; r++) out[r] = acc[r];
}
#endif

template <void (*K1)(const uint8_t*, const uint8_t* const*, int, float*),
          void (*K2)(const uint8_t*, const uint8_t* const*, int, float*),
          void (*K3)(const uint8_t*, const uint8_t* const*, int, float*),
          void (*K4)(const uint8_t*, const uint8_t* const*, int, float*)>
static void qgemm(const QGemmArgs& g, int n0, int n1) {
  for (int nw0 = n0; nw0 < n1; nw0 += NW) {
    const int nw1 = std::min(n1, nw0 + NW);
    for (int i0 = 0; i0 < g.m; i0 += QR) {
      const int r = std::min(QR, g.m - i0);
      const uint8_t* xq[QR];
      for (int t = 0; t < r; t++) xq[t] = g.xq + (int64_t)(i0 + t) * g.xq_row_bytes;
      for (int n = nw0; n < nw1; n++) {
        const uint8_t* w = g.w + (int64_t)n * g.w_row_bytes;
        float out[QR];
        switch (r) {
          case 1: K1(w, xq, g.nb, out); break;
          case 2: K2(w, xq, g.nb, out); break;
          case 3: K3(w, xq, g.nb, out); break;
          default: K4(w, xq, g.nb, out); break;
        }
        const float b = g.bias ? g.bias[n] : 0.f;
        for (int t = 0; t < r; t++) g.y[(int64_t)(i0 + t) * g.ldy + n] = out[t] + b;
      }
    }
  }
}

// ---- attention -----------------------------------------------------------------------------------------
// o[0..d) = Σ_j p[j]·v_j[0..d) with v_j = v + j·stride; 4 vector accumulators live across the j loop so
// the output is stored once (no read-modify-write per key).
static inline void weighted_sum(float* o, const float* p, const float* v, int64_t stride, int n, int d) {
  int c = 0;
  for (; c + 4 * VL <= d; c += 4 * VL) {
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    for (int j = 0; j < n; j++) {
      const float* vj = v + j * stride + c;
      const vf pj = vset1(p[j]);
      a0 = vfma(pj, vload(vj), a0);
      a1 = vfma(pj, vload(vj + VL), a1);
      a2 = vfma(pj, vload(vj + 2 * VL), a2);
      a3 = vfma(pj, vload(vj + 3 * VL), a3);
    }
    vstore(o + c, a0); vstore(o + c + VL, a1); vstore(o + c + 2 * VL, a2); vstore(o + c + 3 * VL, a3);
  }
  for (; c + VL <= d; c += VL) {
    vf a = vzero();
    for (int j = 0; j < n; j++) a = vfma(vset1(p[j]), vload(v + j * stride + c), a);
    vstore(o + c, a);
  }
  for (; c < d; c++) {
    float a = 0;
    for (int j = 0; j < n; j++) a += p[j] * v[j * stride + c];
    o[c] = a;
  }
}

// Queries [i0, i1) of one head: scores S = Q·Kᵀ with the GEMM tile kernel (K read in place through its row
// stride), softmax per row in f32 with max subtraction, then P·V. scratch: (i1 − i0)·tk floats.
static void attention(const AttnArgs& p, int h, int i0, int i1, float* scratch) {
  const int d = p.d, kh = h / (p.h / p.hkv);
  const int64_t kstride = (int64_t)p.hkv * d;
  const float* kbase = p.k + (int64_t)kh * d;
  const float* vbase = p.v + (int64_t)kh * d;
  auto limit_of = [&](int i) {
    return p.causal_offset < 0 ? p.tk : (int)std::max<int64_t>(0, std::min<int64_t>(p.tk, p.causal_offset + i + 1));
  };
  const int ncols = limit_of(i1 - 1);  // the widest row of the block (limits grow with i)
  if (ncols > 0 && d > 0) {
    GemmArgs g{p.q + ((int64_t)i0 * p.h + h) * d, (int64_t)p.h * d, kbase, kstride, WType::F32, scratch, p.tk, nullptr, i1 - i0, ncols, d};
    gemm_nt_t<WType::F32>(g, 0, ncols);
  } else if (ncols > 0) {
    std::fill(scratch, scratch + (int64_t)(i1 - i0) * p.tk, 0.f);
  }
  for (int i = i0; i < i1; i++) {
    const int limit = limit_of(i);
    float* s = scratch + (int64_t)(i - i0) * p.tk;
    const float* mrow = p.mask ? p.mask + (int64_t)i * p.tk : nullptr;
    const float* brow = p.bias ? p.bias + ((int64_t)h * p.tq + i) * p.tk : nullptr;
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < limit; j++) {
      float sc = s[j] * p.scale;
      if (mrow) sc += mrow[j];
      if (brow) sc += brow[j];
      s[j] = sc;
      mx = std::max(mx, sc);
    }
    float sum = 0;
    for (int j = 0; j < limit; j++) {
      s[j] = std::exp(s[j] - mx);  // max subtraction: no overflow, the largest term is 1
      sum += s[j];
    }
    const float inv = 1.f / sum;
    for (int j = 0; j < limit; j++) s[j] *= inv;
    weighted_sum(p.out + ((int64_t)i * p.h + h) * d, s, vbase, kstride, limit, d);
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
    qgemm<q4k_row<1>, q4k_row<2>, q4k_row<3>, q4k_row<4>>,
    qgemm<q80_row<1>, q80_row<2>, q80_row<3>, q80_row<4>>,
    attention,
};

}  // namespace PHI_NS
}  // namespace phi4mm
