// Fast ISQ, written once and compiled per ISA (quantize_fast_{avx2,avx512}.cc) into namespace phi4mm::PHI_NS,
// with the lane width of the target's registers: LANES = 16 (zmm, mask registers) or 8 (ymm, compare masks
// and blends).
//
// quantize_q4_K is quantize_weights_q4_K (the bit-exact ggml port) evaluated for LANES sub-blocks at once,
// one per lane. Each lane performs the reference's float operations in the reference's order (separate
// multiplies and adds: these targets are built with -ffp-contract=off, like the reference), the reference's
// branches become per-lane selects, and its two shortcuts (skip a trial whose quants did not change, stop an
// error sum that already reached the best) are dropped: neither can change the outcome (see
// quantize_weights.cc). So the output is byte-identical to the reference, and with it its quantization error
// (test/native/isq.test.ts checks the bytes on ggml's test signal and on real-shaped random weights, per ISA).
// quantize_q8_K / quantize_q8_0 are quantize_row_q8_K / quantize_row_q8_0 (quantize.cc), LANES values per
// instruction, byte-identical.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "immintrin_quiet.h"
#include "kernels.h"
#include "quant_common.h"

#ifndef PHI_NS
#error "define PHI_NS (the namespace of this build) before including quantize_fast_impl.h"
#endif

namespace phi4mm {
namespace PHI_NS {
namespace {

// ---- The lane-width wrapper: vf floats, vi int32s, vm a per-lane condition -------------------------------
// Every float operation is the IEEE one of the scalar reference: min/max keep its operand order
// (min(a, b) = a < b ? a : b), blend(m, a, b) = m ? b : a per lane.
#if defined(__AVX512F__)
using vf = __m512;
using vi = __m512i;
using vm = __mmask16;
constexpr int LANES = 16;
inline vf fzero() { return _mm512_setzero_ps(); }
inline vf fset1(float v) { return _mm512_set1_ps(v); }
inline vf fload(const float* p) { return _mm512_load_ps(p); }  // 64-byte aligned
inline vf floadu(const float* p) { return _mm512_loadu_ps(p); }
inline void fstore(float* p, vf v) { _mm512_store_ps(p, v); }
inline vf fadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf fsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
inline vf fmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf fdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
inline vf fsqrt(vf a) { return _mm512_sqrt_ps(a); }
inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
inline vf vabs(vf a) { return _mm512_abs_ps(a); }
inline vf fneg(vf a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
inline vm gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline vm lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline vm eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
inline vm mand(vm a, vm b) { return a & b; }
inline bool any(vm m) { return m != 0; }
inline bool all(vm m) { return m == 0xFFFF; }
inline int first_lane(vm m) { return __builtin_ctz((unsigned)m); }  // m != 0
inline vf blend(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, a, b); }
inline vi blend(vm m, vi a, vi b) { return _mm512_mask_blend_epi32(m, a, b); }
inline vi izero() { return _mm512_setzero_si512(); }
inline vi iset1(int v) { return _mm512_set1_epi32(v); }
inline void istore(int32_t* p, vi v) { _mm512_store_si512(p, v); }
inline vi iadd(vi a, vi b) { return _mm512_add_epi32(a, b); }
inline vi isub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
inline vi iand(vi a, vi b) { return _mm512_and_si512(a, b); }
inline vi imin(vi a, vi b) { return _mm512_min_epi32(a, b); }
inline vi imax(vi a, vi b) { return _mm512_max_epi32(a, b); }
inline vi as_int(vf a) { return _mm512_castps_si512(a); }
inline vf to_float(vi a) { return _mm512_cvtepi32_ps(a); }
inline vi to_int(vf a) { return _mm512_cvtps_epi32(a); }  // exact: only ever given integers
// The low byte of each lane, as the reference's (int8_t) / (uint8_t) casts.
inline void store_low_bytes(uint8_t* p, vi v) { _mm_storeu_si128((__m128i*)p, _mm512_cvtepi32_epi8(v)); }
// std::round: half away from zero. v − trunc(v) is exact, so the comparison sees the true fraction.
inline vf round_away(vf v) {
  const vf t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const vf one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)), _mm512_castps_si512(_mm512_set1_ps(1.f))));
  return _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(vabs(fsub(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, one);
}
// Round half to even (the MXCSR default mode, given explicitly), exceptions suppressed.
inline vf round_even(vf v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline float hmax(vf v) { return _mm512_reduce_max_ps(v); }
inline int hsum(vi v) { return _mm512_reduce_add_epi32(v); }
#elif defined(__AVX2__)
using vf = __m256;
using vi = __m256i;
using vm = __m256;  // all-ones / all-zero lanes
constexpr int LANES = 8;
inline vf fzero() { return _mm256_setzero_ps(); }
inline vf fset1(float v) { return _mm256_set1_ps(v); }
inline vf fload(const float* p) { return _mm256_load_ps(p); }  // 32-byte aligned
inline vf floadu(const float* p) { return _mm256_loadu_ps(p); }
inline void fstore(float* p, vf v) { _mm256_store_ps(p, v); }
inline vf fadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf fsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
inline vf fmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf fdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
inline vf fsqrt(vf a) { return _mm256_sqrt_ps(a); }
inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
inline vf vabs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
inline vf fneg(vf a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.f)); }
inline vm gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline vm lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline vm eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
inline vm mand(vm a, vm b) { return _mm256_and_ps(a, b); }
inline bool any(vm m) { return _mm256_movemask_ps(m) != 0; }
inline bool all(vm m) { return _mm256_movemask_ps(m) == 0xFF; }
inline int first_lane(vm m) { return __builtin_ctz((unsigned)_mm256_movemask_ps(m)); }  // m has a set lane
inline vf blend(vm m, vf a, vf b) { return _mm256_blendv_ps(a, b, m); }
inline vi blend(vm m, vi a, vi b) {
  return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), m));
}
inline vi izero() { return _mm256_setzero_si256(); }
inline vi iset1(int v) { return _mm256_set1_epi32(v); }
inline void istore(int32_t* p, vi v) { _mm256_store_si256((__m256i*)p, v); }
inline vi iadd(vi a, vi b) { return _mm256_add_epi32(a, b); }
inline vi isub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
inline vi iand(vi a, vi b) { return _mm256_and_si256(a, b); }
inline vi imin(vi a, vi b) { return _mm256_min_epi32(a, b); }
inline vi imax(vi a, vi b) { return _mm256_max_epi32(a, b); }
inline vi as_int(vf a) { return _mm256_castps_si256(a); }
inline vf to_float(vi a) { return _mm256_cvtepi32_ps(a); }
inline vi to_int(vf a) { return _mm256_cvtps_epi32(a); }  // exact: only ever given integers
// The low byte of each lane (a truncation, as the reference's casts): bytes 0, 4, 8, 12 of each 128-bit
// half gathered, then the halves' 4-byte groups joined.
inline void store_low_bytes(uint8_t* p, vi v) {
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8(v, pick);
  _mm_storel_epi64((__m128i*)p, _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
}
// std::round: half away from zero. v − trunc(v) is exact, so the comparison sees the true fraction.
inline vf round_away(vf v) {
  const vf t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const vf one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.f)), _mm256_set1_ps(1.f));
  const vm half = _mm256_cmp_ps(vabs(fsub(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  return fadd(t, _mm256_and_ps(half, one));
}
// Round half to even, exceptions suppressed.
inline vf round_even(vf v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline float hmax(vf v) {  // max is exact and order-free on the non-NaN magnitudes it is given
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
inline int hsum(vi v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 1)));
}
#else
#error "quantize_fast_impl.h needs AVX2 or AVX-512F"
#endif

constexpr int SUB = 32, N_SUB = QK_K / SUB;
constexpr int NMAX_Q4 = 15, NSTEP = 20;
constexpr float RMIN = -1.f, RDELTA = 0.1f;
constexpr int VEC_BYTES = LANES * 4;  // alignment of the lane-transposed buffers
constexpr int Q8K_SUM_SPAN = 16;      // values per Q8_K bsum
// nearest_int adds 1.5·2^23; for |f| < 2^22 − 1 the sum stays in [2^23, 2^24), where the float add itself rounds f
// half to even onto the integers. (Just under 2^22 the sum could round up to 2^24, whose mantissa reads 0.)
constexpr float RNE_EXACT_LIMIT = 4194303.f;
static_assert(Q8K_SUM_SPAN % LANES == 0 && SUB % LANES == 0, "a bsum span and a sub-block are whole vectors");

// ggml's nearest_int per lane: the float sum with 1.5·2^23 puts the rounded integer in the low mantissa bits.
inline vi nearest_int_v(vf f) {
  return isub(iand(as_int(fadd(f, fset1(12582912.f))), iset1(0x007fffff)), iset1(0x00400000));
}
inline vi clamp_q(vi l) { return imax(izero(), imin(iset1(NMAX_Q4), l)); }

// make_qkx2_quants(32, 15, x, w, L, &the_min, ..., −1, 0.1, 20, false) for G × LANES sub-blocks: xt[g][l] /
// wt[g][l] hold element l of every lane's sub-block in group g. Each trial depends on the previous one (a
// taken trial replaces min), so one group is a long latency chain; G independent groups interleave to fill
// the pipelines. Writes the scales, the_min and L[g][l] (quants as i32) per lane.
template <int G>
void make_qkx2_quants_v(const vf (*xt)[SUB], const vf (*wt)[SUB], vi (*L)[SUB], vf* scale_out, vf* the_min) {
  const vf zero = fzero();
  vf mn[G], mn_x[G], mx[G], sum_w[G], sum_x[G], range[G], scale[G], best_error[G], min[G];
  vm flat[G];
  for (int g = 0; g < G; g++) {
    mn[g] = mx[g] = xt[g][0];
    sum_w[g] = wt[g][0];
    sum_x[g] = fmul(sum_w[g], xt[g][0]);
    for (int i = 1; i < SUB; ++i) {
      mn[g] = vmin(xt[g][i], mn[g]);  // x < min ? x : min
      mx[g] = vmax(xt[g][i], mx[g]);  // x > max ? x : max
      sum_w[g] = fadd(sum_w[g], wt[g][i]);
      sum_x[g] = fadd(sum_x[g], fmul(wt[g][i], xt[g][i]));
    }
    mn_x[g] = mn[g];                              // the smallest element, for the trials' range check
    mn[g] = blend(gt(mn[g], zero), mn[g], zero);  // if (min > 0) min = 0
    flat[g] = eq(mx[g], mn[g]);
    range[g] = fsub(mx[g], mn[g]);
    const vf iscale = fdiv(fset1((float)NMAX_Q4), range[g]);
    scale[g] = fdiv(fset1(1.f), iscale);
    best_error[g] = zero;
    for (int i = 0; i < SUB; ++i) {
      L[g][i] = clamp_q(nearest_int_v(fmul(iscale, fsub(xt[g][i], mn[g]))));
      const vf diff = fsub(fadd(fmul(scale[g], to_float(L[g][i])), mn[g]), xt[g][i]);
      best_error[g] = fadd(best_error[g], fmul(wt[g][i], fmul(diff, diff)));
    }
    min[g] = mn[g];
  }
  for (int is = 0; is <= NSTEP; ++is) {
    const float num = RMIN + RDELTA * (float)is + (float)NMAX_Q4;  // evaluated as the reference's expression
    vf laux[G][SUB];
    vf sum_l[G], sum_l2[G], sum_xl[G];
    for (int g = 0; g < G; g++) {
      // As the reference: (max − min) and (x − min) use the running min, which a taken trial replaces.
      const vf span = fsub(mx[g], min[g]);
      const vf iscale = fdiv(fset1(num), span);
      sum_l[g] = sum_l2[g] = sum_xl[g] = zero;
      // Each quant is clamp(nearest_int(f)) with f = iscale·(x − min): f is monotone in x (one rounded subtract,
      // one rounded multiply), so f at the smallest and at the largest element bound every element's. Within
      // ±RNE_EXACT_LIMIT, nearest_int(f) is f rounded half to even, so the float round and a float clamp give
      // the same quants in 3 instructions instead of 6. Otherwise (a replaced min near max, NaN from a flat
      // sub-block) the reference's integer form runs.
      const vf f_hi = fmul(iscale, span), f_lo = fmul(iscale, fsub(mn_x[g], min[g]));
      const vf limit = fset1(RNE_EXACT_LIMIT);
      const bool float_round = all(mand(lt(vabs(f_hi), limit), lt(vabs(f_lo), limit)));
      auto sums = [&](auto quant) {
        for (int i = 0; i < SUB; ++i) {
          laux[g][i] = quant(fmul(iscale, fsub(xt[g][i], min[g])));
          const vf wl = fmul(wt[g][i], laux[g][i]);
          sum_l[g] = fadd(sum_l[g], wl);
          sum_l2[g] = fadd(sum_l2[g], fmul(wl, laux[g][i]));
          sum_xl[g] = fadd(sum_xl[g], fmul(wl, xt[g][i]));
        }
      };
      // vmax(·, zero) returns zero's +0 for a rounded −0, as the integer path's conversion of 0.
      if (float_round) sums([&](vf f) { return vmin(vmax(round_even(f), zero), fset1((float)NMAX_Q4)); });
      else sums([&](vf f) { return to_float(clamp_q(nearest_int_v(f))); });
    }
    for (int g = 0; g < G; g++) {
      const vf D = fsub(fmul(sum_w[g], sum_l2[g]), fmul(sum_l[g], sum_l[g]));
      const vm ok = gt(D, zero);
      vf this_scale = fdiv(fsub(fmul(sum_w[g], sum_xl[g]), fmul(sum_x[g], sum_l[g])), D);
      vf this_min = fdiv(fsub(fmul(sum_l2[g], sum_x[g]), fmul(sum_l[g], sum_xl[g])), D);
      const vm pos = gt(this_min, zero);
      this_min = blend(pos, this_min, zero);
      this_scale = blend(pos, this_scale, fdiv(sum_xl[g], sum_l2[g]));
      vf cur_error = zero;
      for (int i = 0; i < SUB; ++i) {
        const vf diff = fsub(fadd(fmul(this_scale, laux[g][i]), this_min), xt[g][i]);
        cur_error = fadd(cur_error, fmul(wt[g][i], fmul(diff, diff)));
      }
      const vm take = mand(ok, lt(cur_error, best_error[g]));
      if (!any(take)) continue;
      for (int i = 0; i < SUB; ++i) L[g][i] = blend(take, L[g][i], to_int(laux[g][i]));
      best_error[g] = blend(take, best_error[g], cur_error);
      scale[g] = blend(take, scale[g], this_scale);
      min[g] = blend(take, min[g], this_min);
    }
  }
  for (int g = 0; g < G; g++) {
    // Flat sub-blocks (max == min): L = 0, scale 0, the_min = −min, as the reference's early return.
    for (int i = 0; i < SUB; ++i) L[g][i] = blend(flat[g], L[g][i], izero());
    the_min[g] = fneg(blend(flat[g], min[g], mn[g]));  // a sign flip, as the reference's negation
    scale_out[g] = blend(flat[g], scale[g], zero);
  }
}

// k a multiple of QK_K. Sub-blocks go through make_qkx2_quants_v LANES at a time (the last group padded with
// zeros, whose lanes are ignored); the per-super-block scale packing and the final re-quantization follow
// the reference statement for statement.
QuantStatus quantize_q4_K(const float* x, uint8_t* dst, int k) {
  for (int e = 0; e < k; e++)
    if (!std::isfinite(x[e])) return {QuantStatus::NON_FINITE, e};
  const int nsub = k / SUB;
  // Per sub-block results for the whole row: scale, the_min and 32 quants.
  std::vector<float> scales(nsub), mins(nsub);
  std::vector<uint8_t> Lrow((size_t)k);
  constexpr int G = 1;  // groups of LANES sub-blocks per call: G = 2 measured no faster on AVX-512, 1.4× slower on AVX2 (spills)
  alignas(VEC_BYTES) float xbuf[G][SUB][LANES], out_s[G][LANES], out_m[G][LANES];
  alignas(VEC_BYTES) int32_t lbuf[G][SUB][LANES];
  for (int s0 = 0; s0 < nsub; s0 += G * LANES) {
    for (int g = 0; g < G; g++)
      for (int lane = 0; lane < LANES; lane++) {
        const int sb = s0 + g * LANES + lane;
        const float* xs = x + (int64_t)sb * SUB;
        if (sb >= nsub) {  // padding lanes: zeros (a flat sub-block, weights 0), results dropped
          for (int l = 0; l < SUB; l++) xbuf[g][l][lane] = 0.f;
          continue;
        }
        for (int l = 0; l < SUB; ++l) xbuf[g][l][lane] = xs[l];
      }
    vf xt[G][SUB], wt[G][SUB], sc[G], the_min[G];
    vi L[G][SUB];
    // The reference's weights av_x + |x| with av_x = sqrt(Σ x² / SUB), the sum in its order, per lane: one
    // latency chain for all lanes instead of one per sub-block.
    for (int g = 0; g < G; g++) {
      vf sum_x2 = fzero();
      for (int l = 0; l < SUB; l++) {
        xt[g][l] = fload(xbuf[g][l]);
        sum_x2 = fadd(sum_x2, fmul(xt[g][l], xt[g][l]));
      }
      const vf av_x = fsqrt(fdiv(sum_x2, fset1((float)SUB)));
      for (int l = 0; l < SUB; l++) wt[g][l] = fadd(av_x, vabs(xt[g][l]));
    }
    make_qkx2_quants_v<G>(xt, wt, L, sc, the_min);
    for (int g = 0; g < G; g++) {
      fstore(out_s[g], sc[g]);
      fstore(out_m[g], the_min[g]);
      for (int l = 0; l < SUB; l++) istore(lbuf[g][l], L[g][l]);
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
    uint8_t ls_all[N_SUB], lm_all[N_SUB];
    float d_all, dmin_all;
    if (!q4k_pack_scales(sj, mj, dst, ls_all, lm_all, &d_all, &dmin_all)) return {QuantStatus::SCALE_OVERFLOW, i};
    for (int j = 0; j < N_SUB; ++j) {
      const float d = d_all * ls_all[j];
      if (!d) continue;
      const float dm = dmin_all * lm_all[j];
      const vf vd = fset1(d), vdm = fset1(dm);
      for (int h = 0; h < SUB; h += LANES)
        store_low_bytes(L + SUB * j + h, clamp_q(nearest_int_v(fdiv(fadd(floadu(x + SUB * j + h), vdm), vd))));
    }
    q4k_pack_nibbles(L, dst + 16);
  }
  return {QuantStatus::OK, 0};
}

// The same max search as the reference (the first element of largest magnitude gives the signed max), the
// same products iscale·x rounded by the same nearest_int, the same 16-value sums (integer: any order).
void quantize_q8_K(const float* x, uint8_t* dst, int k) {
  for (int i = 0; i < k / QK_K; i++, x += QK_K, dst += BLOCK_Q8_K_BYTES) {
    vf am = fzero();
    for (int j = 0; j < QK_K; j += LANES) am = vmax(am, vabs(floadu(x + j)));
    const float amax = hmax(am);
    if (amax == 0) {
      std::memset(dst, 0, BLOCK_Q8_K_BYTES);
      continue;
    }
    float max = 0;
    const vf vam = fset1(amax);
    for (int j = 0; j < QK_K; j += LANES) {  // the first element of that magnitude gives the signed max
      const vm hit = eq(vabs(floadu(x + j)), vam);
      if (any(hit)) { max = x[j + first_lane(hit)]; break; }
    }
    const float iscale = -127.f / max;
    uint8_t* qs = dst + 4;
    const vf vs = fset1(iscale);
    for (int j = 0; j < QK_K; j += Q8K_SUM_SPAN) {
      vi acc = izero();
      for (int h = 0; h < Q8K_SUM_SPAN; h += LANES) {
        const vi q = imin(nearest_int_v(fmul(vs, floadu(x + j + h))), iset1(127));
        store_low_bytes(qs + j + h, q);
        acc = iadd(acc, q);
      }
      const int16_t sum = (int16_t)hsum(acc);  // |Σ| ≤ 16·127: exact in int16
      std::memcpy(dst + 4 + QK_K + 2 * (j / Q8K_SUM_SPAN), &sum, 2);
    }
    const float d = 1 / iscale;
    std::memcpy(dst, &d, 4);
  }
}

// quantize_row_q8_0 (quantize.cc): the same block maximum (max is exact in any order), the same scalar d and
// id, and the same products x·id rounded half away from zero (std::round).
void quantize_q8_0(const float* x, uint8_t* dst, int k) {
  static_assert(QK8_0 % LANES == 0, "a q8_0 block is whole vectors");
  for (int i = 0; i < k / QK8_0; i++, x += QK8_0, dst += BLOCK_Q8_0_BYTES) {
    vf am = fzero();
    for (int j = 0; j < QK8_0; j += LANES) am = vmax(am, vabs(floadu(x + j)));
    const float d = hmax(am) / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    const uint16_t h = fp32_to_fp16(d);
    std::memcpy(dst, &h, 2);
    const vf vid = fset1(id);
    for (int j = 0; j < QK8_0; j += LANES) store_low_bytes(dst + 2 + j, to_int(round_away(fmul(floadu(x + j), vid))));
  }
}

}  // namespace
}  // namespace PHI_NS
}  // namespace phi4mm
