// bf16-compute GEMM for the encoders (see gemm_bf16.cc); AVX512-BF16 only: call only when the CPU has it
// (addon.cc checks __builtin_cpu_supports("avx512bf16")).
#pragma once
#include <cstdint>

namespace phi4mm {
namespace bf16 {

// C[m, n] = Σ_k A[m, k] · B[n, k] (+ bias[n]); A and B bf16 rows; A zero-padded to lda ≥ round_up(k, 32).
struct Args {
  const uint16_t* a; int64_t lda;
  const uint16_t* b; int64_t ldb;
  float* c; int64_t ldc;
  const float* bias;  // [N] or null
  int m, n, k;
};

// f32 rows [m, k] (row stride ldx) → bf16 rows (stride ldd ≥ round_up(k, 32)), round to nearest even, zero pad.
void round_rows(const float* x, int m, int k, int64_t ldx, uint16_t* dst, int64_t ldd);
// Output columns [n0, n1).
void gemm_nt(const Args& g, int n0, int n1);

}  // namespace bf16
}  // namespace phi4mm
