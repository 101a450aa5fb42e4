// The device ops' SIMD layer for one ISA build (included by device_impl.h inside its ISA namespace): f32 vectors
// of VL lanes with masked partial loads, bf16/f16/int8 widening, f16 rounding. The same shapes as
// kernels_impl.h's (which keeps its own static copy).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "device.h"
#include "quant_common.h"  // fp32_to_fp16: the scalar f16 encoder for tails and the generic build

#if defined(__AVX2__)
#include "immintrin_quiet.h"
#endif

namespace phi4mm {
namespace PHI_NS {
namespace {

#if defined(__AVX512F__)
using vf = __m512;
constexpr int VL = 16;
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vset1(float x) { return _mm512_set1_ps(x); }
inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
inline float vhsum(vf v) { return _mm512_reduce_add_ps(v); }
inline float vhmax(vf v) { return _mm512_reduce_max_ps(v); }
// vhsum of 16 vectors at once: lane 4·(k mod 4) + k / 4 = vhsum(a[k]). The same tree as _mm512_reduce_add_ps
// (lane i + lane i+8, then + i+4, then (0+2) and (1+3), then their sum), so the same bits, in 15 adds and 30
// shuffles instead of 16 × 7 instructions.
inline vf vhsum16(const vf* a) {
  vf c[8], e[4], x[2];
  for (int j = 0; j < 8; j++)  // lanes 0–7: a[2j]_i + a[2j]_{i+8}; lanes 8–15: the same for a[2j+1]
    c[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * j], a[2 * j + 1], 0x44), _mm512_shuffle_f32x4(a[2 * j], a[2 * j + 1], 0xEE));
  for (int j = 0; j < 4; j++)  // 128-bit lane m: a[4j+m]'s four sums of i and i+4
    e[j] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * j], c[2 * j + 1], 0x88), _mm512_shuffle_f32x4(c[2 * j], c[2 * j + 1], 0xDD));
  for (int j = 0; j < 2; j++)  // lane m: (0+2, 1+3) of a[8j+m] and of a[8j+4+m]
    x[j] = _mm512_add_ps(_mm512_shuffle_ps(e[2 * j], e[2 * j + 1], 0x44), _mm512_shuffle_ps(e[2 * j], e[2 * j + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(x[0], x[1], 0x88), _mm512_shuffle_ps(x[0], x[1], 0xDD));
}
// out[k] = vhsum(a[k]) for k < 16, in order.
inline void vhsum_each16(const vf* a, float* out) {
  alignas(64) float r[16];
  vstore(r, vhsum16(a));
  for (int k = 0; k < 16; k++) out[k] = r[4 * (k % 4) + k / 4];
}
inline vf vload_n(const float* p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
inline void vstore_n(float* p, vf v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
inline vf vload_bf16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
inline vf vload_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
inline void vstore_f16(uint16_t* p, vf v) {
  _mm256_storeu_si256((__m256i*)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline vf vload_i8(const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p))); }
inline float fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
#elif defined(__AVX2__)
using vf = __m256;
constexpr int VL = 8;
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vset1(float x) { return _mm256_set1_ps(x); }
inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
inline float vhsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
// vhsum of 8 vectors at once: lane 4·(k mod 2) + k / 2 = vhsum(a[k]), with vhsum's tree (lane i + lane i+4,
// then (0+2) and (1+3), then their sum), so the same bits.
inline vf vhsum8(const vf* a) {
  vf c[4], e[2];
  for (int j = 0; j < 4; j++)  // lanes 0–3: a[2j]_i + a[2j]_{i+4}; lanes 4–7: the same for a[2j+1]
    c[j] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * j], a[2 * j + 1], 0x20), _mm256_permute2f128_ps(a[2 * j], a[2 * j + 1], 0x31));
  for (int j = 0; j < 2; j++)  // (0+2, 1+3) of two vectors per 128-bit lane
    e[j] = _mm256_add_ps(_mm256_shuffle_ps(c[2 * j], c[2 * j + 1], 0x44), _mm256_shuffle_ps(c[2 * j], c[2 * j + 1], 0xEE));
  return _mm256_add_ps(_mm256_shuffle_ps(e[0], e[1], 0x88), _mm256_shuffle_ps(e[0], e[1], 0xDD));
}
// out[k] = vhsum(a[k]) for k < 16, in order.
inline void vhsum_each16(const vf* a, float* out) {
  alignas(32) float r[8];
  for (int h = 0; h < 2; h++) {
    vstore(r, vhsum8(a + 8 * h));
    for (int k = 0; k < 8; k++) out[8 * h + k] = r[4 * (k % 2) + k / 2];
  }
}
inline float vhmax(vf v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
inline __m256i lane_mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
inline vf vload_n(const float* p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
inline void vstore_n(float* p, vf v, int n) { _mm256_maskstore_ps(p, lane_mask(n), v); }
inline vf vload_bf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}
inline vf vload_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
inline void vstore_f16(uint16_t* p, vf v) { _mm_storeu_si128((__m128i*)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
inline vf vload_i8(const int8_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p))); }
inline float fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
#else
typedef float vf __attribute__((vector_size(16)));
constexpr int VL = 4;
inline vf vzero() { return vf{0, 0, 0, 0}; }
inline vf vset1(float x) { return vf{x, x, x, x}; }
inline vf vload(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf vfma(vf a, vf b, vf c) { return a * b + c; }  // two roundings: no FMA in the generic build
inline vf vmul(vf a, vf b) { return a * b; }
inline vf vadd(vf a, vf b) { return a + b; }
inline vf vsub(vf a, vf b) { return a - b; }
inline vf vmax(vf a, vf b) { return vf{std::max(a[0], b[0]), std::max(a[1], b[1]), std::max(a[2], b[2]), std::max(a[3], b[3])}; }
inline float vhsum(vf v) { return (v[0] + v[1]) + (v[2] + v[3]); }
inline void vhsum_each16(const vf* a, float* out) {
  for (int k = 0; k < 16; k++) out[k] = vhsum(a[k]);
}
inline float vhmax(vf v) { return std::max(std::max(v[0], v[1]), std::max(v[2], v[3])); }
inline vf vload_n(const float* p, int n) { vf v = vzero(); std::memcpy(&v, p, n * sizeof(float)); return v; }
inline void vstore_n(float* p, vf v, int n) { std::memcpy(p, &v, n * sizeof(float)); }
inline vf vload_bf16(const uint16_t* p) {
  vf v;
  for (int i = 0; i < 4; i++) { uint32_t u = (uint32_t)p[i] << 16; std::memcpy(&v[i], &u, 4); }
  return v;
}
inline vf vload_f16(const uint16_t* p) {
  return vf{fp16_to_fp32_soft(p[0]), fp16_to_fp32_soft(p[1]), fp16_to_fp32_soft(p[2]), fp16_to_fp32_soft(p[3])};
}
inline vf vload_i8(const int8_t* p) { return vf{(float)p[0], (float)p[1], (float)p[2], (float)p[3]}; }
inline float fp16_to_fp32(uint16_t h) { return fp16_to_fp32_soft(h); }
#endif


}  // namespace
}  // namespace PHI_NS
}  // namespace phi4mm
