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

namespace {
// One output row of a 3×3 / stride 2 / padding 1 conv from its three input rows (null: outside the image, i.e.
// zero padding), each [w, cin]: bias, then the taps in (ky, kx) order, then ReLU when asked.
void conv_row(const float* const rows[3], int w, int c, int cin, const float* weight, const float* bias, bool relu, float* dst_row) {
  const int wo = conv3x3s2_out(w);
  for (int q = 0; q < wo; q++) {
    float* dst = dst_row + (int64_t)q * c;
    for (int ch = 0; ch < c; ch++) dst[ch] = bias[ch];
    for (int ky = 0; ky < 3; ky++) {
      if (!rows[ky]) continue;
      for (int kx = 0; kx < 3; kx++) {
        const int ix = 2 * q - 1 + kx;
        if (ix < 0 || ix >= w) continue;
        tap_fma(dst, rows[ky] + (int64_t)ix * cin, cin == 1 ? 0 : 1, weight + (ky * 3 + kx) * c, c);
      }
    }
    if (relu) relu_run(dst, c);
  }
}
}  // namespace

void conv3x3s2(const float* x, int h, int w, int c, int cin, const float* weight, const float* bias, bool relu, float* out, int y0, int y1) {
  const int wo = conv3x3s2_out(w);
  for (int y = y0; y < y1; y++) {
    const float* rows[3];
    for (int ky = 0; ky < 3; ky++) {
      const int iy = 2 * y - 1 + ky;
      rows[ky] = iy < 0 || iy >= h ? nullptr : x + (int64_t)iy * w * cin;
    }
    conv_row(rows, w, c, cin, weight, bias, relu, out + (int64_t)y * wo * c);
  }
}

void conv3x3s2_pair(const float* x, int h, int w, int c, const float* w0, const float* b0, const float* w1, const float* b1, float* out,
                    int y0, int y1, float* ring) {
  const int h1 = conv3x3s2_out(h), wd1 = conv3x3s2_out(w), wd2 = conv3x3s2_out(wd1);
  int held[3] = {-1, -1, -1};  // the first conv's row in each ring slot
  auto first = [&](int r) -> const float* {
    float* slot = ring + (int64_t)(r % 3) * wd1 * c;
    if (held[r % 3] != r) {
      const float* rows[3];
      for (int ky = 0; ky < 3; ky++) {
        const int iy = 2 * r - 1 + ky;
        rows[ky] = iy < 0 || iy >= h ? nullptr : x + (int64_t)iy * w;
      }
      conv_row(rows, w, c, 1, w0, b0, true, slot);
      held[r % 3] = r;
    }
    return slot;
  };
  for (int y = y0; y < y1; y++) {
    const float* rows[3];
    for (int ky = 0; ky < 3; ky++) {
      const int iy = 2 * y - 1 + ky;
      rows[ky] = iy < 0 || iy >= h1 ? nullptr : first(iy);
    }
    conv_row(rows, wd1, c, c, w1, b1, false, out + (int64_t)y * wd2 * c);
  }
}

void swish_gate(const float* x, int w, const float* b1, const float* b2, float* out, int r0, int r1, ExpF64 exp) {
  alignas(64) double g[CHUNK], e[CHUNK];
  for (int r = r0; r < r1; r++) {
    const float* a = x + (int64_t)r * 2 * w;
    float* o = out + (int64_t)r * w;
    for (int j0 = 0; j0 < w; j0 += CHUNK) {
      const int n = std::min(CHUNK, w - j0);
      for (int j = 0; j < n; j++) {
        g[j] = b2 ? (double)(a[w + j0 + j] + b2[j0 + j]) : (double)a[w + j0 + j];
        e[j] = -g[j];
      }
      exp(e, e, n);
      for (int j = 0; j < n; j++) {
        const double up = b1 ? (double)(a[j0 + j] + b1[j0 + j]) : (double)a[j0 + j];
        o[j0 + j] = (float)(up * (g[j] / (1 + e[j])));
      }
    }
  }
}

void silu(const float* x, float* out, int64_t i0, int64_t i1, ExpF64 exp) {
  alignas(64) double e[CHUNK];
  for (int64_t c0 = i0; c0 < i1; c0 += CHUNK) {
    const int n = (int)std::min<int64_t>(CHUNK, i1 - c0);
    for (int j = 0; j < n; j++) e[j] = -(double)x[c0 + j];
    exp(e, e, n);
    for (int j = 0; j < n; j++) out[c0 + j] = (float)((double)x[c0 + j] / (1 + e[j]));
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
