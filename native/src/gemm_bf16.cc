// bf16 GEMM on AVX512-BF16 (vdpbf16ps) for the encoders: C[m, n] = Σ_k bf16(A[m, k]) · B[n, k] (+ bias[n]),
// B bf16 as stored, A rounded to bf16 (round to nearest even) once per call, products exact in f32 (8-bit ×
// 8-bit mantissas) and summed in f32. Twice the multiply-adds per instruction of the f32 FMA kernel; the price
// is A's rounding (relative 2^-9 per element), which is what a bf16 run of the reference does too.
//
// Built only into the AVX512-BF16 library; supported() says whether the CPU runs it. The accumulation order of
// C[i, j] (16 lanes over k in steps of 32, then a fixed lane reduction) does not depend on m or on the tile a
// row falls in, so a row's result is the same whatever else is in the batch.
#include "gemm_bf16.h"

#include "immintrin_quiet.h"

#include <algorithm>

namespace phi4mm {
namespace bf16 {

namespace {

constexpr int KSTEP = 32;  // bf16 pairs per vdpbf16ps: 32 values of A and B → 16 f32 lanes
constexpr int MR = 4, NR = 6;  // 24 accumulators + 4 A + 1 B of 32 zmm
constexpr int MC = 64;  // rows of A per pass (64 × K bf16 stays in L2 while the B rows stream past)

template <int mr, int nr>
inline void tile(const Args& g, int i0, int j0) {
  __m512 acc[mr][nr];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc[i][j] = _mm512_setzero_ps();
  const uint16_t* a = g.a + (int64_t)i0 * g.lda;
  const uint16_t* b = g.b + (int64_t)j0 * g.ldb;
  const int kfull = g.k / KSTEP * KSTEP;
  for (int kk = 0; kk < kfull; kk += KSTEP) {
    __m512bh av[mr];
    for (int i = 0; i < mr; i++) av[i] = (__m512bh)_mm512_loadu_si512(a + i * g.lda + kk);
    for (int j = 0; j < nr; j++) {
      const __m512bh bv = (__m512bh)_mm512_loadu_si512(b + j * g.ldb + kk);
      for (int i = 0; i < mr; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av[i], bv);
    }
  }
  if (kfull < g.k) {
    // A rows are zero-padded to lda ≥ round_up(k, 32); B rows are read only up to k.
    const __mmask32 mask = (__mmask32)((1ull << (g.k - kfull)) - 1);
    __m512bh av[mr];
    for (int i = 0; i < mr; i++) av[i] = (__m512bh)_mm512_loadu_si512(a + i * g.lda + kfull);
    for (int j = 0; j < nr; j++) {
      const __m512bh bv = (__m512bh)_mm512_maskz_loadu_epi16(mask, b + j * g.ldb + kfull);
      for (int i = 0; i < mr; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av[i], bv);
    }
  }
  for (int i = 0; i < mr; i++) {
    float* c = g.c + (int64_t)(i0 + i) * g.ldc + j0;
    for (int j = 0; j < nr; j++) c[j] = _mm512_reduce_add_ps(acc[i][j]) + (g.bias ? g.bias[j0 + j] : 0.f);
  }
}

template <int nr>
inline void tile_m(int mr, const Args& g, int i0, int j0) {
  switch (mr) {
    case 1: tile<1, nr>(g, i0, j0); break;
    case 2: tile<2, nr>(g, i0, j0); break;
    case 3: tile<3, nr>(g, i0, j0); break;
    default: tile<4, nr>(g, i0, j0); break;
  }
}

}  // namespace

void round_rows(const float* x, int m, int k, int64_t ldx, uint16_t* dst, int64_t ldd) {
  for (int i = 0; i < m; i++) {
    const float* s = x + (int64_t)i * ldx;
    uint16_t* d = dst + (int64_t)i * ldd;
    int kk = 0;
    for (; kk + KSTEP <= k; kk += KSTEP) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + kk + 16), _mm512_loadu_ps(s + kk));
      _mm512_storeu_si512(d + kk, (__m512i)v);
    }
    if (kk < k) {
      const int rem = k - kk;
      const __mmask16 lo = (__mmask16)((1u << std::min(rem, 16)) - 1), hi = (__mmask16)(rem > 16 ? (1u << (rem - 16)) - 1 : 0);
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + kk + 16), _mm512_maskz_loadu_ps(lo, s + kk));
      _mm512_storeu_si512(d + kk, (__m512i)v);  // zero pad up to the next multiple of 32 (ldd ≥ that)
    }
  }
}

void gemm_nt(const Args& g, int n0, int n1) {
  for (int mc0 = 0; mc0 < g.m; mc0 += MC) {
    const int mc1 = std::min(g.m, mc0 + MC);
    for (int j0 = n0; j0 < n1; j0 += NR) {
      const int nr = std::min(NR, n1 - j0);
      for (int i0 = mc0; i0 < mc1; i0 += MR) {
        const int mr = std::min(MR, mc1 - i0);
        if (nr == NR) tile_m<NR>(mr, g, i0, j0);
        else for (int j = 0; j < nr; j++) tile_m<1>(mr, g, i0, j0 + j);
      }
    }
  }
}

}  // namespace bf16
}  // namespace phi4mm
