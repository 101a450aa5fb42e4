// Element-wise and row ops of the encoders (SigLIP, conformer) that were TypeScript loops: GELU (tanh form),
// LayerNorm and adds. Each works on a range so the caller can split it over the pool.
#pragma once
#include <cstdint>

namespace phi4mm {
namespace encoder_ops {

using ExpFn = void (*)(const float* x, float* y, int n);

// y[i] = x[i] · sigmoid(2·√(2/π)·(x[i] + 0.044715·x[i]³)) = gelu_pytorch_tanh(x[i]), for i in [i0, i1).
// `exp` is the kernels' vectorized e^x (≤ 1 ulp).
void gelu_tanh(const float* x, float* y, int64_t i0, int64_t i1, ExpFn exp);
// Rows [r0, r1) of x [rows, dim]: (x − mean) / sqrt(var + eps) · w (+ b), mean and variance in double.
void layer_norm(const float* x, float* y, int dim, const float* w, const float* b, float eps, int r0, int r1);

}  // namespace encoder_ops
}  // namespace phi4mm
