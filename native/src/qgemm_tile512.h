// AVX-512 VNNI tile GEMM for M ≥ TILE_MIN_M (included by qgemm_impl.h; see there for the exactness contract).
//
// Panel of one group of TN = 16 weight rows, per Q4_K super-block (Q4_PANEL_SB bytes):
//   qs   [32 chunks][16 rows] u32  chunk 8p+t = row bytes 16+4(8p+t)..: low nibbles = weights 64p+4t..+3
//                                  (sub-block 2p), high nibbles = weights 64p+32+4t..+3 (sub-block 2p+1)
//   d    [16] f32, dmin [16] f32
//   sc   [8 sub-blocks][16] i32
//   mn   [4 pairs][16] (i16 mn[2q], i16 mn[2q+1])   for vpdpwssd against (bsum32[2q], bsum32[2q+1])
// Q8_0, per block (Q8_PANEL_BLK bytes): qs [8 chunks][16 rows] u32 of (w + 128) as u8, d [16] f32; the +128
// is taken back exactly through 128·Σa per activation block.
constexpr int TN = 16;            // weight rows per panel group: the 16 int32 lanes of a zmm
constexpr int TM = 8;             // activation rows per micro-tile
constexpr int PANEL_GROUPS = 4;   // groups packed together: one TM-row activation tile is reused by 64 weight rows
constexpr int TILE_MIN_M = 8;     // from here the panel packing pays for itself (bench/kernels.ts)
constexpr int Q4_PANEL_QS = 32 * 64, Q4_PANEL_D = Q4_PANEL_QS, Q4_PANEL_DMIN = Q4_PANEL_D + 64,
              Q4_PANEL_SC = Q4_PANEL_DMIN + 64, Q4_PANEL_MN = Q4_PANEL_SC + 8 * 64, Q4_PANEL_SB = Q4_PANEL_MN + 4 * 64;
constexpr int Q8_PANEL_D = 8 * 64, Q8_PANEL_BLK = Q8_PANEL_D + 64;

static void pack_q4k_group(const QGemmArgs& g, int n0, int n1, uint8_t* dst) {
  for (int sb = 0; sb < g.nb; sb++) {
    uint8_t* P = dst + (int64_t)sb * Q4_PANEL_SB;
    uint32_t* qs = reinterpret_cast<uint32_t*>(P);
    float* d = reinterpret_cast<float*>(P + Q4_PANEL_D);
    float* dmin = reinterpret_cast<float*>(P + Q4_PANEL_DMIN);
    int32_t* sc = reinterpret_cast<int32_t*>(P + Q4_PANEL_SC);
    int16_t* mn = reinterpret_cast<int16_t*>(P + Q4_PANEL_MN);
    for (int r = 0; r < TN; r++) {
      if (n0 + r >= n1) {  // padding rows: zero weights and scales, outputs never stored
        for (int c = 0; c < 32; c++) qs[c * TN + r] = 0;
        d[r] = dmin[r] = 0.f;
        for (int j = 0; j < 8; j++) sc[j * TN + r] = 0;
        for (int q = 0; q < 4; q++) mn[(q * TN + r) * 2] = mn[(q * TN + r) * 2 + 1] = 0;
        continue;
      }
      const uint8_t* blk = g.w + (int64_t)(n0 + r) * g.w_row_bytes + (int64_t)sb * BLOCK_Q4_K_BYTES;
      for (int c = 0; c < 32; c++) std::memcpy(&qs[c * TN + r], blk + 16 + 4 * c, 4);
      d[r] = fp16_to_fp32(load_u16(blk));
      dmin[r] = fp16_to_fp32(load_u16(blk + 2));
      uint8_t s8[8], m8[8];
      unpack_scales_mins(blk + 4, s8, m8);
      for (int j = 0; j < 8; j++) sc[j * TN + r] = s8[j];
      for (int q = 0; q < 4; q++) { mn[(q * TN + r) * 2] = m8[2 * q]; mn[(q * TN + r) * 2 + 1] = m8[2 * q + 1]; }
    }
  }
}

static inline __m512i bcast32(const uint8_t* p) { int32_t v; std::memcpy(&v, p, 4); return _mm512_set1_epi32(v); }

// y rows [m0, m0+mt) × the 16 rows of one group; acc: mt × 16 floats (L1), combined per super-block.
template <int MT>
static void q4k_tile(const QGemmArgs& g, const uint8_t* panel, const int32_t* aux, int m0, int n0, int n1) {
  const __m512i m4 = _mm512_set1_epi8(0xF);
  alignas(64) float acc[MT][TN];
  for (int m = 0; m < MT; m++) _mm512_store_ps(acc[m], _mm512_setzero_ps());
  const uint8_t* y[MT];
  for (int m = 0; m < MT; m++) y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes + 4;  // the qs of block 0
  for (int sb = 0; sb < g.nb; sb++) {
    const uint8_t* P = panel + (int64_t)sb * Q4_PANEL_SB;
    const int64_t yo = (int64_t)sb * BLOCK_Q8_K_BYTES;
    __m512i sumi[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) sumi[m] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int j = 0; j < 8; j++) {  // sub-block j = 2p + hi
      const int p = j >> 1, hi = j & 1;
      __m512i sub[MT];
#pragma GCC unroll 8
      for (int m = 0; m < MT; m++) sub[m] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) {
        const __m512i bits = _mm512_load_si512(P + (8 * p + t) * 64);
        const __m512i wv = _mm512_and_si512(hi ? _mm512_srli_epi16(bits, 4) : bits, m4);
        const int64_t off = yo + 64 * p + 32 * hi + 4 * t;
#pragma GCC unroll 8
        for (int m = 0; m < MT; m++) sub[m] = _mm512_dpbusd_epi32(sub[m], wv, bcast32(y[m] + off));
      }
      const __m512i sc = _mm512_load_si512(P + Q4_PANEL_SC + 64 * j);
#pragma GCC unroll 8
      for (int m = 0; m < MT; m++) sumi[m] = _mm512_add_epi32(sumi[m], _mm512_mullo_epi32(sub[m], sc));
    }
    const __m512 d = _mm512_load_ps(reinterpret_cast<const float*>(P + Q4_PANEL_D));
    const __m512 dmin = _mm512_load_ps(reinterpret_cast<const float*>(P + Q4_PANEL_DMIN));
    const __m512i mn0 = _mm512_load_si512(P + Q4_PANEL_MN), mn1 = _mm512_load_si512(P + Q4_PANEL_MN + 64),
                  mn2 = _mm512_load_si512(P + Q4_PANEL_MN + 128), mn3 = _mm512_load_si512(P + Q4_PANEL_MN + 192);
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) {
      const int32_t* ax = aux + (int64_t)(m0 + m) * g.nb * 4 + sb * 4;
      __m512i summ = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mn0, _mm512_set1_epi32(ax[0]));
      summ = _mm512_dpwssd_epi32(summ, mn1, _mm512_set1_epi32(ax[1]));
      summ = _mm512_dpwssd_epi32(summ, mn2, _mm512_set1_epi32(ax[2]));
      summ = _mm512_dpwssd_epi32(summ, mn3, _mm512_set1_epi32(ax[3]));
      const __m512 d8 = _mm512_set1_ps(load_f32(y[m] - 4 + yo));
      __m512 a = _mm512_load_ps(acc[m]);
      a = _mm512_fmadd_ps(_mm512_mul_ps(d, d8), _mm512_cvtepi32_ps(sumi[m]), a);
      a = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, d8), _mm512_cvtepi32_ps(summ), a);  // fma(−(dmin·d8), summ, a)
      _mm512_store_ps(acc[m], a);
    }
  }
  const int nr = n1 - n0;
  for (int m = 0; m < MT; m++) {
    float* out = g.y + (int64_t)(m0 + m) * g.ldy + n0;
    for (int r = 0; r < nr; r++) out[r] = acc[m][r] + (g.bias ? g.bias[n0 + r] : 0.f);
  }
}

static void pack_q80_group(const QGemmArgs& g, int n0, int n1, uint8_t* dst) {
  for (int b = 0; b < g.nb; b++) {
    uint8_t* P = dst + (int64_t)b * Q8_PANEL_BLK;
    uint32_t* qs = reinterpret_cast<uint32_t*>(P);
    float* d = reinterpret_cast<float*>(P + Q8_PANEL_D);
    for (int r = 0; r < TN; r++) {
      if (n0 + r >= n1) {
        for (int c = 0; c < 8; c++) qs[c * TN + r] = 0x80808080u;  // w = 0
        d[r] = 0.f;
        continue;
      }
      const uint8_t* blk = g.w + (int64_t)(n0 + r) * g.w_row_bytes + (int64_t)b * BLOCK_Q8_0_BYTES;
      for (int c = 0; c < 8; c++) {
        uint32_t v;
        std::memcpy(&v, blk + 2 + 4 * c, 4);
        qs[c * TN + r] = v ^ 0x80808080u;  // s8 → u8 = w + 128
      }
      d[r] = fp16_to_fp32(load_u16(blk));
    }
  }
}

// aux[b] = −128·Σ of activation block b (the exact correction for the +128 of the packed weights).
static void q80_neg_sums(const uint8_t* y, int nb, int32_t* aux) {
  for (int b = 0; b < nb; b++, y += BLOCK_Q8_0_BYTES) {
    int32_t s = 0;
    for (int l = 0; l < QK8_0; l++) s += (int8_t)y[2 + l];
    aux[b] = -128 * s;
  }
}

template <int MT>
static void q80_tile(const QGemmArgs& g, const uint8_t* panel, const int32_t* aux, int m0, int n0, int n1) {
  __m512 acc[MT];
  const uint8_t* y[MT];
#pragma GCC unroll 8
  for (int m = 0; m < MT; m++) { acc[m] = _mm512_setzero_ps(); y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes; }
  for (int b = 0; b < g.nb; b++) {
    const uint8_t* P = panel + (int64_t)b * Q8_PANEL_BLK;
    const int64_t yo = (int64_t)b * BLOCK_Q8_0_BYTES;
    __m512i s[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) s[m] = _mm512_set1_epi32(aux[(int64_t)(m0 + m) * g.nb + b]);
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
      const __m512i wv = _mm512_load_si512(P + 64 * t);
#pragma GCC unroll 8
      for (int m = 0; m < MT; m++) s[m] = _mm512_dpbusd_epi32(s[m], wv, bcast32(y[m] + yo + 2 + 4 * t));
    }
    const __m512 d = _mm512_load_ps(reinterpret_cast<const float*>(P + Q8_PANEL_D));
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++)
      acc[m] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(fp16_to_fp32(load_u16(y[m] + yo)))), _mm512_cvtepi32_ps(s[m]), acc[m]);
  }
  alignas(64) float o[TN];
  const int nr = n1 - n0;
  for (int m = 0; m < MT; m++) {
    _mm512_store_ps(o, acc[m]);
    float* out = g.y + (int64_t)(m0 + m) * g.ldy + n0;
    for (int r = 0; r < nr; r++) out[r] = o[r] + (g.bias ? g.bias[n0 + r] : 0.f);
  }
}

// Per-thread scratch of the tile path (panels, activation side sums); grows, never shrinks.
struct TileScratch {
  uint8_t* buf = nullptr;
  size_t bytes = 0;
  uint8_t* get(size_t n) {
    if (n > bytes) {
      std::free(buf);
      buf = static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64));
      if (!buf) throw std::bad_alloc();
      bytes = n;
    }
    return buf;
  }
};
static thread_local TileScratch t_tile_scratch;

template <typename Pack, typename Aux, typename Tile>
static void qgemm_tiles(const QGemmArgs& g, int n0, int n1, int panel_bytes, int aux_per_row, Pack pack, Aux aux_of, Tile tile) {
  const size_t panels = (size_t)PANEL_GROUPS * panel_bytes;
  uint8_t* mem = t_tile_scratch.get(panels + (size_t)g.m * aux_per_row * 4);
  int32_t* aux = reinterpret_cast<int32_t*>(mem + panels);
  for (int m = 0; m < g.m; m++) aux_of(g.xq + (int64_t)m * g.xq_row_bytes, g.nb, aux + (int64_t)m * aux_per_row);
  for (int b0 = n0; b0 < n1; b0 += PANEL_GROUPS * TN) {
    const int groups = std::min(PANEL_GROUPS, (n1 - b0 + TN - 1) / TN);
    for (int gi = 0; gi < groups; gi++) {
      const int r0 = b0 + gi * TN;
      pack(g, r0, std::min(n1, r0 + TN), mem + (size_t)gi * panel_bytes);
    }
    for (int m0 = 0; m0 < g.m; m0 += TM) {
      const int mt = std::min(TM, g.m - m0);
      for (int gi = 0; gi < groups; gi++) {
        const int r0 = b0 + gi * TN, r1 = std::min(n1, r0 + TN);
        tile(mt, mem + (size_t)gi * panel_bytes, aux, m0, r0, r1);
      }
    }
  }
}

template <template <int> class F, typename... A>
static void by_mt(int mt, A&&... a) {
  switch (mt) {
    case 1: F<1>::run(a...); break;
    case 2: F<2>::run(a...); break;
    case 3: F<3>::run(a...); break;
    case 4: F<4>::run(a...); break;
    case 5: F<5>::run(a...); break;
    case 6: F<6>::run(a...); break;
    case 7: F<7>::run(a...); break;
    default: F<8>::run(a...); break;
  }
}
template <int MT> struct Q4Tile { template <typename... A> static void run(A&&... a) { q4k_tile<MT>(a...); } };
template <int MT> struct Q8Tile { template <typename... A> static void run(A&&... a) { q80_tile<MT>(a...); } };

static void qgemm_q4k(const QGemmArgs& g, int n0, int n1) {
  if (g.m < TILE_MIN_M) return qgemm_rows<q4k_row<1>, q4k_row<2>, q4k_row<3>, q4k_row<4>>(g, n0, n1);
  qgemm_tiles(g, n0, n1, g.nb * Q4_PANEL_SB, g.nb * 4, pack_q4k_group, q8k_pair_sums,
              [&](int mt, const uint8_t* panel, const int32_t* aux, int m0, int r0, int r1) { by_mt<Q4Tile>(mt, g, panel, aux, m0, r0, r1); });
}

static void qgemm_q80(const QGemmArgs& g, int n0, int n1) {
  if (g.m < TILE_MIN_M) return qgemm_rows<q80_row<1>, q80_row<2>, q80_row<3>, q80_row<4>>(g, n0, n1);
  qgemm_tiles(g, n0, n1, g.nb * Q8_PANEL_BLK, g.nb, pack_q80_group, q80_neg_sums,
              [&](int mt, const uint8_t* panel, const int32_t* aux, int m0, int r0, int r1) { by_mt<Q8Tile>(mt, g, panel, aux, m0, r0, r1); });
}

#include "qgemm_x16.h"
