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
#include "immintrin_quiet.h"

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

// make_qkx2_quants(32, 15, x, w, L, &the_min, ..., −1, 0.1, 20, false) for G × 16 sub-blocks: xt[g][l] /
// wt[g][l] hold element l of every lane's sub-block in group g. Each trial depends on the previous one (a
// taken trial replaces min), so one group is a long latency chain; G independent groups interleave to fill
// the pipelines. Writes the scales, the_min and L[g][l] (quants as i32) per lane.
template <int G>
void make_qkx2_quants_x16(const __m512 (*xt)[SUB], const __m512 (*wt)[SUB], __m512i (*L)[SUB], __m512* scale_out, __m512* the_min) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 mn[G], mx[G], sum_w[G], sum_x[G], range[G], scale[G], best_error[G], min[G];
  __mmask16 flat[G];
  for (int g = 0; g < G; g++) {
    mn[g] = mx[g] = xt[g][0];
    sum_w[g] = wt[g][0];
    sum_x[g] = _mm512_mul_ps(sum_w[g], xt[g][0]);
    for (int i = 1; i < SUB; ++i) {
      mn[g] = _mm512_min_ps(xt[g][i], mn[g]);  // x < min ? x : min
      mx[g] = _mm512_max_ps(xt[g][i], mx[g]);  // x > max ? x : max
      sum_w[g] = _mm512_add_ps(sum_w[g], wt[g][i]);
      sum_x[g] = _mm512_add_ps(sum_x[g], _mm512_mul_ps(wt[g][i], xt[g][i]));
    }
    mn[g] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mn[g], zero, _CMP_GT_OQ), mn[g], zero);  // if (min > 0) min = 0
    flat[g] = _mm512_cmp_ps_mask(mx[g], mn[g], _CMP_EQ_OQ);
    range[g] = _mm512_sub_ps(mx[g], mn[g]);
    const __m512 iscale = _mm512_div_ps(_mm512_set1_ps((float)NMAX_Q4), range[g]);
    scale[g] = _mm512_div_ps(_mm512_set1_ps(1.f), iscale);
    best_error[g] = zero;
    for (int i = 0; i < SUB; ++i) {
      L[g][i] = clamp_q(nearest_int_v(_mm512_mul_ps(iscale, _mm512_sub_ps(xt[g][i], mn[g]))));
      const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale[g], _mm512_cvtepi32_ps(L[g][i])), mn[g]), xt[g][i]);
      best_error[g] = _mm512_add_ps(best_error[g], _mm512_mul_ps(wt[g][i], _mm512_mul_ps(diff, diff)));
    }
    min[g] = mn[g];
  }
  for (int is = 0; is <= NSTEP; ++is) {
    const float num = RMIN + RDELTA * (float)is + (float)NMAX_Q4;  // evaluated as the reference's expression
    __m512 laux[G][SUB];
    __m512 sum_l[G], sum_l2[G], sum_xl[G];
    for (int g = 0; g < G; g++) {
      // As the reference: (max − min) and (x − min) use the running min, which a taken trial replaces.
      const __m512 iscale = _mm512_div_ps(_mm512_set1_ps(num), _mm512_sub_ps(mx[g], min[g]));
      sum_l[g] = sum_l2[g] = sum_xl[g] = zero;
      for (int i = 0; i < SUB; ++i) {
        laux[g][i] = _mm512_cvtepi32_ps(clamp_q(nearest_int_v(_mm512_mul_ps(iscale, _mm512_sub_ps(xt[g][i], min[g])))));
        const __m512 wl = _mm512_mul_ps(wt[g][i], laux[g][i]);
        sum_l[g] = _mm512_add_ps(sum_l[g], wl);
        sum_l2[g] = _mm512_add_ps(sum_l2[g], _mm512_mul_ps(wl, laux[g][i]));
        sum_xl[g] = _mm512_add_ps(sum_xl[g], _mm512_mul_ps(wl, xt[g][i]));
      }
    }
    for (int g = 0; g < G; g++) {
      const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sum_w[g], sum_l2[g]), _mm512_mul_ps(sum_l[g], sum_l[g]));
      const __mmask16 ok = _mm512_cmp_ps_mask(D, zero, _CMP_GT_OQ);
      __m512 this_scale = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_w[g], sum_xl[g]), _mm512_mul_ps(sum_x[g], sum_l[g])), D);
      __m512 this_min = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_l2[g], sum_x[g]), _mm512_mul_ps(sum_l[g], sum_xl[g])), D);
      const __mmask16 pos = _mm512_cmp_ps_mask(this_min, zero, _CMP_GT_OQ);
      this_min = _mm512_mask_blend_ps(pos, this_min, zero);
      this_scale = _mm512_mask_blend_ps(pos, this_scale, _mm512_div_ps(sum_xl[g], sum_l2[g]));
      __m512 cur_error = zero;
      for (int i = 0; i < SUB; ++i) {
        const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(this_scale, laux[g][i]), this_min), xt[g][i]);
        cur_error = _mm512_add_ps(cur_error, _mm512_mul_ps(wt[g][i], _mm512_mul_ps(diff, diff)));
      }
      const __mmask16 take = ok & _mm512_cmp_ps_mask(cur_error, best_error[g], _CMP_LT_OQ);
      if (!take) continue;
      for (int i = 0; i < SUB; ++i) L[g][i] = _mm512_mask_blend_epi32(take, L[g][i], _mm512_cvtps_epi32(laux[g][i]));
      best_error[g] = _mm512_mask_blend_ps(take, best_error[g], cur_error);
      scale[g] = _mm512_mask_blend_ps(take, scale[g], this_scale);
      min[g] = _mm512_mask_blend_ps(take, min[g], this_min);
    }
  }
  for (int g = 0; g < G; g++) {
    // Flat sub-blocks (max == min): L = 0, scale 0, the_min = −min, as the reference's early return.
    for (int i = 0; i < SUB; ++i) L[g][i] = _mm512_mask_blend_epi32(flat[g], L[g][i], _mm512_setzero_si512());
    const __m512i neg = _mm512_xor_si512(_mm512_castps_si512(_mm512_mask_blend_ps(flat[g], min[g], mn[g])), _mm512_set1_epi32(INT32_MIN));
    the_min[g] = _mm512_castsi512_ps(neg);  // −min (sign flip, as the reference's negation)
    scale_out[g] = _mm512_mask_blend_ps(flat[g], scale[g], zero);
  }
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
  constexpr int G = 1;  // groups of 16 sub-blocks per call: G = 2 measured no faster (spills)
  alignas(64) float xbuf[G][SUB][LANES], wbuf[G][SUB][LANES], out_s[G][LANES], out_m[G][LANES];
  alignas(64) int32_t lbuf[G][SUB][LANES];
  for (int s0 = 0; s0 < nsub; s0 += G * LANES) {
    for (int g = 0; g < G; g++)
      for (int lane = 0; lane < LANES; lane++) {
        const int sb = s0 + g * LANES + lane;
        const float* xs = x + (int64_t)sb * SUB;
        if (sb >= nsub) {  // padding lanes: zeros (a flat sub-block), results dropped
          for (int l = 0; l < SUB; l++) xbuf[g][l][lane] = wbuf[g][l][lane] = 0.f;
          continue;
        }
        float sum_x2 = 0;
        for (int l = 0; l < SUB; ++l) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / SUB);
        for (int l = 0; l < SUB; ++l) { xbuf[g][l][lane] = xs[l]; wbuf[g][l][lane] = av_x + std::fabs(xs[l]); }
      }
    __m512 xt[G][SUB], wt[G][SUB], sc[G], the_min[G];
    __m512i L[G][SUB];
    for (int g = 0; g < G; g++)
      for (int l = 0; l < SUB; l++) { xt[g][l] = _mm512_load_ps(xbuf[g][l]); wt[g][l] = _mm512_load_ps(wbuf[g][l]); }
    make_qkx2_quants_x16<G>(xt, wt, L, sc, the_min);
    for (int g = 0; g < G; g++) {
      _mm512_store_ps(out_s[g], sc[g]);
      _mm512_store_ps(out_m[g], the_min[g]);
      for (int l = 0; l < SUB; l++) _mm512_store_si512(lbuf[g][l], L[g][l]);
      for (int lane = 0; lane < LANES; lane++) {
        const int sb = s0 + g * LANES + lane;
        if (sb >= nsub) break;
        scales[sb] = out_s[g][lane];
        mins[sb] = out_m[g][lane];
        for (int l = 0; l < SUB; l++) Lrow[(size_t)sb * SUB + l] = (uint8_t)lbuf[g][l][lane];
      }
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
