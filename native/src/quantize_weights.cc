// Weight quantizers for ISQ at load time: C++ ports of ggml's quantize_row_q4_K_ref (with make_qkx2_quants)
// and quantize_row_q8_0_ref, bit-identical to src/quant (which was checked byte-for-byte against ggml).
// Exactness rests on the build flags of this target (binding.gyp): IEEE float32 on SSE, -ffp-contract=off
// (no fused a·b + c), no -ffast-math (no reassociation), so every operation rounds as in ggml's C.
#include <algorithm>
#include <cmath>

#include "kernels.h"
#include "quant_common.h"

namespace phi4mm {
namespace {

constexpr int SUB = 32;              // weights per Q4_K sub-block
constexpr int N_SUB = QK_K / SUB;    // sub-blocks per super-block
constexpr int NMAX_Q4 = 15;          // 4-bit quants 0..15

// make_qkx2_quants: fit x[0..n) ≈ scale·L − the_min over nstep + 1 trial inverse scales, minimizing the
// weighted squared (or absolute) error. Statement for statement ggml's; the two shortcuts below only skip
// work whose outcome is already known (see src/quant/q4_k.ts): a trial whose quants equal the previous
// trial's repeats its sums and error; an error sum (non-negative terms, never decreasing) that reaches the
// best error cannot win.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)std::max(0, std::min(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    bool changed = is == 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      if (Laux[i] != l) { Laux[i] = (uint8_t)l; changed = true; }
    }
    if (!changed) continue;
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const float l = Laux[i];
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float cur_error = 0;
    int i = 0;
    for (; i < n && cur_error < best_error; ++i) {
      float diff = this_scale * Laux[i] + this_min - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      cur_error += weights[i] * diff;
    }
    if (i == n && cur_error < best_error) {
      std::memcpy(L, Laux, n);
      best_error = cur_error;
      scale = this_scale;
      min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

}  // namespace

QuantStatus quantize_weights_q4_K(const float* x, uint8_t* dst, int k) {
  for (int e = 0; e < k; e++)
    if (!std::isfinite(x[e])) return {QuantStatus::NON_FINITE, e};
  uint8_t L[QK_K], Laux[SUB] = {};
  float weights[SUB], mins[N_SUB], scales[N_SUB];
  for (int i = 0; i < k / QK_K; i++, x += QK_K, dst += BLOCK_Q4_K_BYTES) {
    for (int j = 0; j < N_SUB; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < SUB; ++l) sum_x2 += x[SUB * j + l] * x[SUB * j + l];
      const float av_x = std::sqrt(sum_x2 / SUB);
      for (int l = 0; l < SUB; ++l) weights[l] = av_x + std::fabs(x[SUB * j + l]);
      scales[j] = make_qkx2_quants(SUB, NMAX_Q4, x + SUB * j, weights, L + SUB * j, &mins[j], Laux, -1.f, 0.1f, 20, false);
    }
    uint8_t ls[N_SUB], lm[N_SUB];
    float d_all, dmin_all;
    if (!q4k_pack_scales(scales, mins, dst, ls, lm, &d_all, &dmin_all)) return {QuantStatus::SCALE_OVERFLOW, i};
    // Re-quantize against the stored scales; a sub-block whose effective scale is 0 keeps its fitted L.
    for (int j = 0; j < N_SUB; ++j) {
      const float d = d_all * ls[j];
      if (!d) continue;
      const float dm = dmin_all * lm[j];
      for (int ii = 0; ii < SUB; ++ii) {
        const int l = nearest_int((x[SUB * j + ii] + dm) / d);
        L[SUB * j + ii] = (uint8_t)std::max(0, std::min(NMAX_Q4, l));
      }
    }
    q4k_pack_nibbles(L, dst + 16);
  }
  return {QuantStatus::OK, 0};
}

QuantStatus quantize_weights_q8_0(const float* x, uint8_t* dst, int k) {
  for (int e = 0; e < k; e++)
    if (!std::isfinite(x[e])) return {QuantStatus::NON_FINITE, e};
  for (int i = 0; i < k / QK8_0; i++, x += QK8_0, dst += BLOCK_Q8_0_BYTES) {
    float amax = 0;
    for (int j = 0; j < QK8_0; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d ? 1.f / d : 0.f;  // from the f32 d, not the stored f16 one (as ggml)
    float stored;
    if (!store_f16_scale(dst, d, &stored)) return {QuantStatus::SCALE_OVERFLOW, i};
    int8_t* qs = reinterpret_cast<int8_t*>(dst + 2);
    for (int j = 0; j < QK8_0; j++) qs[j] = (int8_t)std::round(x[j] * id);
  }
  return {QuantStatus::OK, 0};
}

}  // namespace phi4mm
