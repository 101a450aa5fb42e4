// Quantized GEMM/GEMV (Q4_K × Q8_K, Q8_0 × Q8_0), included by kernels_impl.h inside phi4mm::PHI_NS.
//
// Batch invariance: every output y[m, n] is the same float sequence whatever M, the path (row kernel or tile
// GEMM), the thread split or the ISA. Per block the integer dot products are exact int32 (sumi = Σ_j sc_j·Σ q·a
// and summ = Σ_j mn_j·bsum_j for Q4_K; Σ w·a for Q8_0), and the float combination is, in block order,
//   Q4_K: acc = fma(d·d8, (float)sumi, acc); acc = fma(−(dmin·d8), (float)summ, acc)
//   Q8_0: acc = fma(dw·da, (float)sumi, acc)
// then y = acc + bias. qgemm_ref.cc is the plain reference with exactly this sequence; the tests require
// bit equality with it for every ISA, thread count and M.
//
// Paths:
//  - row kernels (M < TILE_MIN_M): one weight row × up to QR activation rows, reading the ggml blocks in place;
//  - tile GEMM (AVX-512, M ≥ TILE_MIN_M): 16 weight rows are packed per call into a panel in the order the
//    micro-kernel reads (dword-transposed nibbles: zmm lane r = 4 consecutive weights of row r), and each
//    vpdpbusd multiplies 16 rows × 4 weights by 4 activation bytes broadcast from one of TM activation rows.
//    The panel is packed once per call and reused by all M/TM tiles, so the ggml layout stays the one layout
//    in memory and on disk (GEMV, embedding lookup and the reference backend read it unchanged).

constexpr int QR = 4;   // activation rows per row-kernel call
constexpr int NW = 8;   // weight rows per row-kernel pass (their blocks stay in L1 across the QR rows)

// get_scale_min_k4 for all 8 sub-blocks: 12 packed bytes → sc[8], mn[8].
static inline void unpack_scales_mins(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; j++) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 0xf) | ((s[j] >> 6) << 4);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

// The per-block float combination shared by every path (see the top of this file).
static inline float q4k_combine(float acc, float d, float dmin, float d8, int32_t sumi, int32_t summ) {
  acc = std::fma(d * d8, (float)sumi, acc);
  return std::fma(-(dmin * d8), (float)summ, acc);
}

// aux[sb*4 + q] = (bsum32[2q] as i16) | (bsum32[2q+1] << 16), bsum32[j] = Σ of sub-block j's 32 activations.
static void q8k_pair_sums(const uint8_t* y, int nb, int32_t* aux) {
  for (int sb = 0; sb < nb; sb++, y += BLOCK_Q8_K_BYTES)
    for (int q = 0; q < 4; q++) {
      const int16_t* bs = reinterpret_cast<const int16_t*>(y + 4 + QK_K) + 4 * q;
      int16_t lo, hi;
      { int16_t a, b; std::memcpy(&a, bs, 2); std::memcpy(&b, bs + 1, 2); lo = (int16_t)(a + b); }
      { int16_t a, b; std::memcpy(&a, bs + 2, 2); std::memcpy(&b, bs + 3, 2); hi = (int16_t)(a + b); }
      aux[sb * 4 + q] = (int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo);
    }
}

#if defined(__AVX2__)
static inline int32_t hsum_epi32_256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
static inline int32_t hsum_epi32_128(__m128i s) {
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// get_scale_min_k4 for all 8 sub-blocks in 32-bit lanes (ggml's kmask trick): bytes 0..7 = scales,
// 8..15 = mins. Register-only, so no store-forwarding stall on the block's hot path.
static inline __m128i scales_mins_k4(const uint8_t* s) {
  constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  uint32_t u[3];
  std::memcpy(u, s, 12);
  const uint32_t sc_lo = u[0] & kmask1;
  const uint32_t sc_hi = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
  const uint32_t mn_lo = u[1] & kmask1;
  const uint32_t mn_hi = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
  return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

static inline __m256i madd_scale(__m256i acc, __m256i scale16, __m256i p16) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(acc, scale16, p16);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(scale16, p16));
#endif
}

// Software prefetch distance for the streamed weight rows (bytes ahead of the block being read).
constexpr int PREFETCH_BYTES = 1024;

// One Q4_K weight row against R Q8_K rows; the nibbles and scales are unpacked once per block for all R.
template <int R>
static void q4k_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  float acc[R];
  for (int r = 0; r < R; r++) acc[r] = 0.f;
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q4_K_BYTES;
    _mm_prefetch((const char*)blk + PREFETCH_BYTES, _MM_HINT_T0);
    _mm_prefetch((const char*)blk + PREFETCH_BYTES + 64, _MM_HINT_T0);
    const float d = fp16_to_fp32(load_u16(blk)), dmin = fp16_to_fp32(load_u16(blk + 2));
    const __m256i mins_scales = _mm256_cvtepu8_epi16(scales_mins_k4(blk + 4));  // 8 scales, 8 mins
    const __m128i sc128 = _mm256_castsi256_si128(mins_scales);
    const __m128i mins = _mm256_extracti128_si256(mins_scales, 1);
    const __m256i scales = _mm256_inserti128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
    __m256i q4l[4], q4h[4], sl[4], sh[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      const __m256i bits = _mm256_loadu_si256((const __m256i*)(blk + 16 + 32 * j));
      q4l[j] = _mm256_and_si256(bits, m4);
      q4h[j] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      sl[j] = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((int16_t)(((4 * j + 1) << 8) | (4 * j))));
      sh[j] = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((int16_t)(((4 * j + 3) << 8) | (4 * j + 2))));
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_K_BYTES;
      const __m256i bsums = _mm256_loadu_si256((const __m256i*)(y + 4 + QK_K));
      const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
      const int32_t summ = hsum_epi32_128(_mm_madd_epi16(mins, q8s));
      __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        const __m256i q8l = _mm256_loadu_si256((const __m256i*)(y + 4 + 64 * j));
        const __m256i q8h = _mm256_loadu_si256((const __m256i*)(y + 4 + 64 * j + 32));
        sumi = madd_scale(sumi, sl[j], _mm256_maddubs_epi16(q4l[j], q8l));
        sumi = madd_scale(sumi, sh[j], _mm256_maddubs_epi16(q4h[j], q8h));
      }
      acc[r] = q4k_combine(acc[r], d, dmin, load_f32(y), hsum_epi32_256(sumi), summ);
    }
  }
  for (int r = 0; r < R; r++) out[r] = acc[r];
}

// One Q8_0 weight row against R Q8_0 rows.
template <int R>
static void q80_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  float acc[R];
  for (int r = 0; r < R; r++) acc[r] = 0.f;
#if !(defined(__AVX512VNNI__) && defined(__AVX512VL__))
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q8_0_BYTES;
    _mm_prefetch((const char*)blk + PREFETCH_BYTES, _MM_HINT_T0);
    const float dw = fp16_to_fp32(load_u16(blk));
    const __m256i wq = _mm256_loadu_si256((const __m256i*)(blk + 2));
    const __m256i aw = _mm256_sign_epi8(wq, wq);  // |w| as u8; the sign moves onto x (no −128 in Q8_0)
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_0_BYTES;
      const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)(y + 2)), wq);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sy);
#else
      const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sy), ones);
#endif
      acc[r] = std::fma(dw * fp16_to_fp32(load_u16(y)), (float)hsum_epi32_256(dot), acc[r]);
    }
  }
  for (int r = 0; r < R; r++) out[r] = acc[r];
}
#else
template <int R>
static void q4k_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  float acc[R];
  for (int r = 0; r < R; r++) acc[r] = 0.f;
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
      acc[r] = q4k_combine(acc[r], d, dmin, load_f32(y), sumi, summ);
    }
  }
  for (int r = 0; r < R; r++) out[r] = acc[r];
}

template <int R>
static void q80_row(const uint8_t* w, const uint8_t* const* xq, int nb, float* out) {
  float acc[R];
  for (int r = 0; r < R; r++) acc[r] = 0.f;
  for (int i = 0; i < nb; i++) {
    const uint8_t* blk = w + (int64_t)i * BLOCK_Q8_0_BYTES;
    const float dw = fp16_to_fp32(load_u16(blk));
    const int8_t* wq = reinterpret_cast<const int8_t*>(blk + 2);
    for (int r = 0; r < R; r++) {
      const uint8_t* y = xq[r] + (int64_t)i * BLOCK_Q8_0_BYTES;
      const int8_t* yq = reinterpret_cast<const int8_t*>(y + 2);
      int32_t s = 0;
      for (int l = 0; l < QK8_0; l++) s += wq[l] * yq[l];
      acc[r] = std::fma(dw * fp16_to_fp32(load_u16(y)), (float)s, acc[r]);
    }
  }
  for (int r = 0; r < R; r++) out[r] = acc[r];
}
#endif

template <void (*K1)(const uint8_t*, const uint8_t* const*, int, float*),
          void (*K2)(const uint8_t*, const uint8_t* const*, int, float*),
          void (*K3)(const uint8_t*, const uint8_t* const*, int, float*),
          void (*K4)(const uint8_t*, const uint8_t* const*, int, float*)>
static void qgemm_rows(const QGemmArgs& g, int n0, int n1) {
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

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include "qgemm_tile512.h"
#else
static void qgemm_q4k(const QGemmArgs& g, int n0, int n1) { qgemm_rows<q4k_row<1>, q4k_row<2>, q4k_row<3>, q4k_row<4>>(g, n0, n1); }
static void qgemm_q80(const QGemmArgs& g, int n0, int n1) { qgemm_rows<q80_row<1>, q80_row<2>, q80_row<3>, q80_row<4>>(g, n0, n1); }

#if defined(__AVX2__)
#include "qgemm_x16_avx2.h"
#else
// x16 weights on the scalar build: each group back to its 16 ggml rows in a scratch, then the row
// kernels (the same exact block dots and combination order).
template <int FMT>
static void qgemm_x16_rows(const QGemmArgs& g, int n0, int n1) {
  thread_local std::vector<uint8_t> rows;
  rows.resize((size_t)X16 * g.w_row_bytes);
  for (int r0 = n0; r0 < n1; r0 += X16) {
    const uint8_t* group = g.w + (int64_t)r0 * g.w_row_bytes;
    for (int r = 0; r < X16; r++) x16_unpack_row(FMT, group, g.nb, r, rows.data() + r * g.w_row_bytes);
    QGemmArgs h = g;
    h.w = rows.data();
    h.y = g.y + r0;
    h.bias = g.bias ? g.bias + r0 : nullptr;
    h.n = X16;
    if (FMT == 0) qgemm_q4k(h, 0, X16);
    else qgemm_q80(h, 0, X16);
  }
}
static void qgemm_q4k_x16(const QGemmArgs& g, int n0, int n1) { qgemm_x16_rows<0>(g, n0, n1); }
static void qgemm_q80_x16(const QGemmArgs& g, int n0, int n1) { qgemm_x16_rows<1>(g, n0, n1); }
static int x16_aux(int, const uint8_t*, int, int32_t*) { return 0; }  // the row kernels read none
#endif
#endif
