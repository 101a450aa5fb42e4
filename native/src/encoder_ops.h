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
// Output size of a 3×3 / stride 2 / padding 1 conv along a side of n.
inline int conv3x3s2_out(int n) { return (n + 2 - 3) / 2 + 1; }
// 3×3 / stride 2 / padding 1 conv on a channel-last image x [h, w, cin] (cin = c: depthwise; cin = 1: the one
// input channel broadcast to c outputs), weight tap-major [9, c], bias [c] → output rows [y0, y1) of
// out [h', w', c], each value bias + Σ taps in (ky, kx) order, then max(·, 0) when relu.
void conv3x3s2(const float* x, int h, int w, int c, int cin, const float* weight, const float* bias, bool relu, float* out, int y0, int y1);
// conv3x3s2(x [h, w, 1] → c channels, ReLU) then conv3x3s2(depthwise, no ReLU): output rows [y0, y1) of the
// second, [h'', w'', c], without the first's [h', w', c] image (245 MB for 30 s of audio). Its rows are computed
// into `ring` (3 × w' × c floats) as the second needs them, by the same operations, so the values are the two
// calls' bits.
void conv3x3s2_pair(const float* x, int h, int w, int c, const float* w0, const float* b0, const float* w1, const float* b1, float* out,
                    int y0, int y1, float* ring);
// Rows [r0, r1) of out [rows, w] = (x[:, :w] (+ b1)) · s(x[:, w:] (+ b2)), s(g) = g / (1 + e^−g), x [rows, 2w]:
// the conformer's FFN (no biases) and GLU gates. The TypeScript expression's operations: bias adds rounded to f32,
// the rest in f64 with `exp` = Math.exp bit for bit (exp_f64, exp_fdlibm.h), rounded once; so the same bits.
using ExpF64 = void (*)(const double* x, double* y, int64_t n);
void swish_gate(const float* x, int w, const float* b1, const float* b2, float* out, int r0, int r1, ExpF64 exp);
// out[i] = x[i] / (1 + e^−x[i]) for i in [i0, i1), in f64 as the TypeScript silu, rounded once (out may be x).
void silu(const float* x, float* out, int64_t i0, int64_t i1, ExpF64 exp);
// x[i] = max(x[i], 0) for i in [i0, i1).
void relu(float* x, int64_t i0, int64_t i1);
// Rows [r0, r1) of x [rows, dim]: (x − mean) / sqrt(var + eps) · w (+ b), mean and variance in double.
void layer_norm(const float* x, float* y, int dim, const float* w, const float* b, float eps, int r0, int r1);

}  // namespace encoder_ops
}  // namespace phi4mm
