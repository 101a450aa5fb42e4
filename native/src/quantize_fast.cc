// Fast ISQ for Q4_K: quantize_weights_q4_K (the bit-exact ggml port) evaluated for 16 sub-blocks at once, one
// per zmm lane. Each lane performs the reference's float operations in the reference's order (separate
// multiplies and adds: this target is built with -ffp-contract=off, like the reference), the reference's
// branches become per-lane selects, and its two shortcuts (skip a trial whose quants did not change, stop an
// error sum that already reached the best) are dropped: neither can change the outcome (see
// quantize_weights.cc). So the output is byte-identical to the reference, and with it its quantization error
// (test/native/isq.test.ts checks the bytes on ggml's test signal and on real-shaped random weights).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "quant_common.h"

#if defined(__AVX512F__)
#include <immintrin.h>

namespace phi4mm {
namespace {

constexpr int SUB = 32, N_SUB = QK_K / SUB, LANES = 16;
constexpr int NMAX_Q4 = 15, NSTEP = 20;
constexpr float RMIN = -1.f, RDELTA = 0.1f;

// ggml's nearest_int per lane: the float sum with 1.5·2^23 puts the rounded integer in the low mantissa bits.
inline __m512i nearest_int_v(__m512 f) {
  const __m512i bits = _mm512_castps_si512(_mm512_add_ps(f, _mm512_set1_ps(12582912.f)));
  return _mm512_sub_epi32(_mm512_and_si512(bits, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x00400000));
}
inline __m512i clamp_q(__m512i l) { return _mm512_max_epi32(_mm512_setzero_si512(), _mm512_min_epi32(_mm512_set1_epi32(NMAX_Q4), l)); }

// make_qkx2_quants(32, 15, x, w, L, &the_min, ..., −1, 0.1, 20, false) for 16 sub-blocks: xt[l] / wt[l] hold
// element l of every lane's sub-block. Returns the scales; the_min and L[l] (quants as i32) per lane.
__m512 make_qkx2_quants_x16(const __m512* xt, const __m512* wt, __m512i* L, __m512* the_min) {
  __m512 mn = xt[0], mx = xt[0];
  __m512 sum_w = wt[0];
  __m512 sum_x = _mm512_mul_ps(sum_w, xt[0]);
  for (int i = 1; i < SUB; ++i) {
    mn = _mm512_min_ps(xt[i], mn);  // x < min ? x : min
    mx = _mm512_max_ps(xt[i], mx);  // x > max ? x : max
    sum_w = _mm512_add_ps(sum_w, wt[i]);
    sum_x = _mm512_add_ps(sum_x, _mm512_mul_ps(wt[i], xt[i]));
  }
  const __m512 zero = _mm512_setzero_ps();
  mn = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mn, zero, _CMP_GT_OQ), mn, zero);  // if (min > 0) min = 0
  const __mmask16 flat = _mm512_cmp_ps_mask(mx, mn, _CMP_EQ_OQ);
  const __m512 range = _mm512_sub_ps(mx, mn);
  __m512 iscale = _mm512_div_ps(_mm512_set1_ps((float)NMAX_Q4), range);
  __m512 scale = _mm512_div_ps(_mm512_set1_ps(1.f), iscale);
  __m512 best_error = zero;
  for (int i = 0; i < SUB; ++i) {
    L[i] = clamp_q(nearest_int_v(_mm512_mul_ps(iscale, _mm512_sub_ps(xt[i], mn))));
    const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale, _mm512_cvtepi32_ps(L[i])), mn), xt[i]);
    best_error = _mm512_add_ps(best_error, _mm512_mul_ps(wt[i], _mm512_mul_ps(diff, diff)));
  }
  __m512 min = mn;
  for (int is = 0; is <= NSTEP; ++is) {
    const float num = RMIN + RDELTA * (float)is + (float)NMAX_Q4;  // evaluated as the reference's expression
    // As the reference: (max − min) and (x − min) use the running min, which a taken trial replaces.
    iscale = _mm512_div_ps(_mm512_set1_ps(num), _mm512_sub_ps(mx, min));
    __m512 laux[SUB];
    __m512 sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < SUB; ++i) {
      laux[i] = _mm512_cvtepi32_ps(clamp_q(nearest_int_v(_mm512_mul_ps(iscale, _mm512_sub_ps(xt[i], min)))));
      const __m512 wl = _mm512_mul_ps(wt[i], laux[i]);
      sum_l = _mm512_add_ps(sum_l, wl);
      sum_l2 = _mm512_add_ps(sum_l2, _mm512_mul_ps(wl, laux[i]));
      sum_xl = _mm512_add_ps(sum_xl, _mm512_mul_ps(wl, xt[i]));
    }
    const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sum_w, sum_l2), _mm512_mul_ps(sum_l, sum_l));
    const __mmask16 ok = _mm512_cmp_ps_mask(D, zero, _CMP_GT_OQ);
    __m512 this_scale = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_w, sum_xl), _mm512_mul_ps(sum_x, sum_l)), D);
    __m512 this_min = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_l2, sum_x), _mm512_mul_ps(sum_l, sum_xl)), D);
    const __mmask16 pos = _mm512_cmp_ps_mask(this_min, zero, _CMP_GT_OQ);
    this_min = _mm512_mask_blend_ps(pos, this_min, zero);
    this_scale = _mm512_mask_blend_ps(pos, this_scale, _mm512_div_ps(sum_xl, sum_l2));
    __m512 cur_error = zero;
    for (int i = 0; i < SUB; ++i) {
      const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(this_scale, laux[i]), this_min), xt[i]);
      cur_error = _mm512_add_ps(cur_error, _mm512_mul_ps(wt[i], _mm512_mul_ps(diff, diff)));
    }
    const __mmask16 take = ok & _mm512_cmp_ps_mask(cur_error, best_error, _CMP_LT_OQ);
    if (!take) continue;
    for (int i = 0; i < SUB; ++i) L[i] = _mm512_mask_blend_epi32(take, L[i], _mm512_cvtps_epi32(laux[i]));
    best_error = _mm512_mask_blend_ps(take, best_error, cur_error);
    scale = _mm512_mask_blend_ps(take, scale, this_scale);
    min = _mm512_mask_blend_ps(take, min, this_min);
  }
  // Flat sub-blocks (max == min): L = 0, scale 0, the_min = −min, as the reference's early return.
  for (int i = 0; i < SUB; ++i) L[i] = _mm512_mask_blend_epi32(flat, L[i], _mm512_setzero_si512());
  const __m512i neg = _mm512_xor_si512(_mm512_castps_si512(_mm512_mask_blend_ps(flat, min, mn)), _mm512_set1_epi32(INT32_MIN));
  *the_min = _mm512_castsi512_ps(neg);  // −min (sign flip, as the reference's negation)
  return _mm512_mask_blend_ps(flat, scale, zero);
}

inline bool store_f16_scale(uint8_t* p, float v, float* stored) {
  const uint16_t h = fp32_to_fp16(v);
  if ((h & 0x7c00) == 0x7c00) return false;
  std::memcpy(p, &h, 2);
  *stored = fp16_to_fp32_soft(h);
  return true;
}

}  // namespace

// k a multiple of QK_K. Sub-blocks go through make_qkx2_quants_x16 sixteen at a time (the last group padded
// with zeros, whose lanes are ignored); the per-super-block scale packing and the final re-quantization
// follow the reference statement for statement.
QuantStatus quantize_weights_q4_K_avx512(const float* x, uint8_t* dst, int k) {
  for (int e = 0; e < k; e++)
    if (!std::isfinite(x[e])) return {QuantStatus::NON_FINITE, e};
  const int nsub = k / SUB;
  // Per sub-block results for the whole row: scale, the_min and 32 quants.
  std::vector<float> scales(nsub), mins(nsub);
  std::vector<uint8_t> Lrow((size_t)k);
  alignas(64) float xbuf[SUB][LANES], wbuf[SUB][LANES], out_s[LANES], out_m[LANES];
  alignas(64) int32_t lbuf[SUB][LANES];
  for (int s0 = 0; s0 < nsub; s0 += LANES) {
    const int lanes = std::min(LANES, nsub - s0);
    for (int lane = 0; lane < LANES; lane++) {
      const float* xs = x + (int64_t)(s0 + lane) * SUB;
      if (lane >= lanes) {
        for (int l = 0; l < SUB; l++) xbuf[l][lane] = wbuf[l][lane] = 0.f;
        continue;
      }
      float sum_x2 = 0;
      for (int l = 0; l < SUB; ++l) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / SUB);
      for (int l = 0; l < SUB; ++l) { xbuf[l][lane] = xs[l]; wbuf[l][lane] = av_x + std::fabs(xs[l]); }
    }
    __m512 xt[SUB], wt[SUB], the_min;
    __m512i L[SUB];
    for (int l = 0; l < SUB; l++) { xt[l] = _mm512_load_ps(xbuf[l]); wt[l] = _mm512_load_ps(wbuf[l]); }
    _mm512_store_ps(out_s, make_qkx2_quants_x16(xt, wt, L, &the_min));
    _mm512_store_ps(out_m, the_min);
    for (int l = 0; l < SUB; l++) _mm512_store_si512(lbuf[l], L[l]);
    for (int lane = 0; lane < lanes; lane++) {
      scales[s0 + lane] = out_s[lane];
      mins[s0 + lane] = out_m[lane];
      for (int l = 0; l < SUB; l++) Lrow[(size_t)(s0 + lane) * SUB + l] = (uint8_t)lbuf[l][lane];
    }
  }
  for (int i = 0; i < k / QK_K; i++, x += QK_K, dst += BLOCK_Q4_K_BYTES) {
    const float* sj = scales.data() + i * N_SUB;
    const float* mj = mins.data() + i * N_SUB;
    uint8_t* L = Lrow.data() + (size_t)i * QK_K;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < N_SUB; ++j) {
      if (sj[j] > max_scale) max_scale = sj[j];
      if (mj[j] > max_min) max_min = mj[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t* sc = dst + 4;
    uint8_t ls_all[N_SUB], lm_all[N_SUB];
    for (int j = 0; j < N_SUB; ++j) {
      uint8_t ls = (uint8_t)nearest_int(inv_scale * sj[j]);
      uint8_t lm = (uint8_t)nearest_int(inv_min * mj[j]);
      ls = std::min<uint8_t>(63, ls);
      lm = std::min<uint8_t>(63, lm);
      ls_all[j] = ls;
      lm_all[j] = lm;
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
        sc[j - 4] |= (ls >> 4) << 6;
        sc[j] |= (lm >> 4) << 6;
      }
    }
    float d_all, dmin_all;
    if (!store_f16_scale(dst, max_scale / 63.f, &d_all) || !store_f16_scale(dst + 2, max_min / 63.f, &dmin_all))
      return {QuantStatus::SCALE_OVERFLOW, i};
    for (int j = 0; j < N_SUB; ++j) {
      const float d = d_all * ls_all[j];
      if (!d) continue;
      const float dm = dmin_all * lm_all[j];
      const __m512 vd = _mm512_set1_ps(d), vdm = _mm512_set1_ps(dm);
      for (int h = 0; h < SUB; h += LANES) {
        const __m512i l = clamp_q(nearest_int_v(_mm512_div_ps(_mm512_add_ps(_mm512_loadu_ps(x + SUB * j + h), vdm), vd)));
        _mm_storeu_si128((__m128i*)(L + SUB * j + h), _mm512_cvtepi32_epi8(l));
      }
    }
    uint8_t* q = dst + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = L[j + l] | (L[j + l + 32] << 4);
  }
  return {QuantStatus::OK, 0};
}

}  // namespace phi4mm
#endif

#if defined(__AVX512F__)
namespace phi4mm {

// quantize_row_q8_K (quantize.cc) sixteen values per instruction, byte-identical: the same max search (the
// first element of largest magnitude gives the signed max), the same products iscale·x rounded by the same
// nearest_int, the same 16-value sums.
void quantize_row_q8_K_avx512(const float* x, uint8_t* dst, int k) {
  for (int i = 0; i < k / QK_K; i++, x += QK_K, dst += BLOCK_Q8_K_BYTES) {
    __m512 am = _mm512_setzero_ps();
    for (int j = 0; j < QK_K; j += 16) am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    const float amax = _mm512_reduce_max_ps(am);
    if (amax == 0) {
      std::memset(dst, 0, BLOCK_Q8_K_BYTES);
      continue;
    }
    float max = 0;
    for (int j = 0; j < QK_K; j++)
      if (std::fabs(x[j]) == amax) { max = x[j]; break; }
    const float iscale = -127.f / max;
    int8_t* qs = reinterpret_cast<int8_t*>(dst + 4);
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int j = 0; j < QK_K; j += 16) {
      const __m512i v = nearest_int_v(_mm512_mul_ps(vs, _mm512_loadu_ps(x + j)));
      const __m512i q = _mm512_min_epi32(v, _mm512_set1_epi32(127));
      _mm_storeu_si128((__m128i*)(qs + j), _mm512_cvtepi32_epi8(q));
      const int16_t sum = (int16_t)_mm512_reduce_add_epi32(q);  // |Σ| ≤ 16·127: exact in int16
      std::memcpy(dst + 4 + QK_K + 2 * (j / 16), &sum, 2);
    }
    const float d = 1 / iscale;
    std::memcpy(dst, &d, 4);
  }
}

}  // namespace phi4mm
#endif
