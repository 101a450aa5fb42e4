// See encoder_ops.h. Built with the addon's generic x86-64 flags; the heavy part of GELU (e^x) goes through
// the selected ISA's vectorized exp.
#include "encoder_ops.h"

#include <algorithm>
#include <cmath>

namespace phi4mm {
namespace encoder_ops {

namespace {
constexpr int CHUNK = 1024;  // values per exp call (stays in L1 with its scratch)
constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float GELU_CUBIC = 0.044715f;
}  // namespace

void gelu_tanh(const float* x, float* y, int64_t i0, int64_t i1, ExpFn exp) {
  alignas(64) float t[CHUNK];
  for (int64_t c0 = i0; c0 < i1; c0 += CHUNK) {
    const int n = (int)std::min<int64_t>(CHUNK, i1 - c0);
    // 0.5·(1 + tanh(u)) = 1 / (1 + e^(−2u)): one exp instead of a tanh.
    for (int i = 0; i < n; i++) {
      const float v = x[c0 + i];
      t[i] = -2.f * SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v);
    }
    exp(t, t, n);
    for (int i = 0; i < n; i++) y[c0 + i] = x[c0 + i] / (1.f + t[i]);
  }
}

void layer_norm(const float* x, float* y, int dim, const float* w, const float* b, float eps, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const float* xr = x + (int64_t)r * dim;
    float* yr = y + (int64_t)r * dim;
    double mean = 0;
    for (int i = 0; i < dim; i++) mean += xr[i];
    mean /= dim;
    double var = 0;
    for (int i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1 / std::sqrt(var / dim + eps);
    for (int i = 0; i < dim; i++) yr[i] = (float)((xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0));
  }
}

}  // namespace encoder_ops
}  // namespace phi4mm
