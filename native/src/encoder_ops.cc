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

// One output pixel's channel run: dst[ch] += v[ch] · w[ch] (vstride 0: one value broadcast). Cloned per ISA
// (GCC picks the clone at load time), so the addon's generic flags don't leave it scalar.
__attribute__((target_clones("avx512f", "avx2", "default")))
void tap_fma(float* __restrict dst, const float* __restrict v, int vstride, const float* __restrict w, int c) {
  if (vstride == 0) {
    const float s = v[0];
    for (int ch = 0; ch < c; ch++) dst[ch] += s * w[ch];
  } else {
    for (int ch = 0; ch < c; ch++) dst[ch] += v[ch] * w[ch];
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void relu_run(float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.f ? x[i] : 0.f;
}
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

void conv3x3s2(const float* x, int h, int w, int c, int cin, const float* weight, const float* bias, bool relu, float* out, int y0, int y1) {
  const int wo = (w + 2 - 3) / 2 + 1;
  for (int y = y0; y < y1; y++)
    for (int q = 0; q < wo; q++) {
      float* dst = out + ((int64_t)y * wo + q) * c;
      for (int ch = 0; ch < c; ch++) dst[ch] = bias[ch];
      for (int ky = 0; ky < 3; ky++) {
        const int iy = 2 * y - 1 + ky;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < 3; kx++) {
          const int ix = 2 * q - 1 + kx;
          if (ix < 0 || ix >= w) continue;
          const float* src = x + ((int64_t)iy * w + ix) * cin;
          const float* wt = weight + (ky * 3 + kx) * c;
          tap_fma(dst, src, cin == 1 ? 0 : 1, wt, c);
        }
      }
      if (relu) relu_run(dst, c);
    }
}

void relu(float* x, int64_t i0, int64_t i1) { relu_run(x + i0, i1 - i0); }

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
