// AVX-512 VNNI GEMM/GEMV over x16 weights (interleave.h), for every M: decode (M = 1), batched decode and
// prefill read the weights in the order the micro-kernel consumes them, with no per-call packing. Included
// by qgemm_tile512.h after its helpers; the exactness contract is qgemm_impl.h's (bit-identical to
// qgemm_ref.cc on the de-interleaved rows).
//
// One vpdpbusd multiplies 16 weight rows × 4 weights (zmm lane r = 4 consecutive weights of row r) by 4
// activation bytes broadcast from one of MT activation rows. With few activation rows the 8 dpbusd of a
// sub-block would form one dependent chain, so they are split over PARTS accumulators (integer sums:
// exact in any order).

// Every cache line of the block group this far ahead is requested into L1 while the current one is computed:
// the hardware prefetcher alone leaves a single weight stream short of DRAM bandwidth (Q4_K tiles from DRAM at
// 8–16 GB/s without it, bench/stream/x16_tiles.cc). Only the first row tile over a panel streams it (`PF`); the
// later ones find it in L2, where the prefetches only cost: skipping them there made prefill 2–3% faster (medians
// of 6 alternating rounds in one process on a Zen 5 EPYC: 69.5 → 71.5 tok/s at 1 thread, 127.4 → 130.2 at 2).
// Tried there and dropped: one line per chunk step spread through the loop into L2 (the AVX2 tiles' scheme)
// streamed the decode tile faster in the harness (33–37 against 31–32 GB/s), yet made real decode 8–12% slower
// (1 thread 12.0 → 10.6 tok/s, 2 threads 19.5 → 17.9, same rounds). The Q8_0 tile does without (see there).
constexpr int X16_PREFETCH_BYTES = 4096;
static inline void prefetch_span(const uint8_t* p, int bytes) {
  for (int o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + o, _MM_HINT_T0);
}

static inline __m512i ld512(const uint8_t* p) { return _mm512_loadu_si512(reinterpret_cast<const void*>(p)); }
static inline __m512 f16x16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// get_scale_min_k4 for the 16 rows of an x16 Q4_K super-block P at once (ggml's kmask trick on each row's 3 scale
// words). The scales of sub-blocks 0–3 / 4–7 as the 4 bytes of each lane of sc_lo / sc_hi:
static inline void q4x_scales(const uint8_t* P, __m512i& sc_lo, __m512i& sc_hi) {
  const __m512i u0 = ld512(P + X16_Q4_SCALES), u2 = ld512(P + X16_Q4_SCALES + 128);
  sc_lo = _mm512_and_si512(u0, _mm512_set1_epi32(0x3f3f3f3f));
  sc_hi = _mm512_or_si512(_mm512_and_si512(u2, _mm512_set1_epi32(0x0f0f0f0f)),
                          _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, 6), _mm512_set1_epi32(0x03030303)), 4));
}
// ...and the mins: mnp[q] = (min[2q] | min[2q+1] << 16) per row, against the activation's (bsum32[2q], bsum32[2q+1]).
static inline void q4x_mins(const uint8_t* P, __m512i mnp[4]) {
  const __m512i u1 = ld512(P + X16_Q4_SCALES + 64), u2 = ld512(P + X16_Q4_SCALES + 128), lo8 = _mm512_set1_epi32(0xff);
  const __m512i mn_lo = _mm512_and_si512(u1, _mm512_set1_epi32(0x3f3f3f3f));
  const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), _mm512_set1_epi32(0x0f0f0f0f)),
                                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, 6), _mm512_set1_epi32(0x03030303)), 4));
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) {
    const __m512i x = _mm512_srli_epi32(q < 2 ? mn_lo : mn_hi, 16 * (q & 1));
    mnp[q] = _mm512_or_si512(_mm512_and_si512(x, lo8), _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0xff00)), 8));
  }
}
// Σ min·bsum of one activation row over the super-block (ax: its 4 bsum32 pairs), exact in int32.
static inline __m512i q4x_min_sum(const __m512i mnp[4], const int32_t* ax) {
  __m512i summ = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mnp[0], _mm512_set1_epi32(ax[0]));
  summ = _mm512_dpwssd_epi32(summ, mnp[1], _mm512_set1_epi32(ax[1]));
  summ = _mm512_dpwssd_epi32(summ, mnp[2], _mm512_set1_epi32(ax[2]));
  return _mm512_dpwssd_epi32(summ, mnp[3], _mm512_set1_epi32(ax[3]));
}

// A super-block's part of 16 outputs of one activation row: acc + (d·d8)·sumi − (dmin·d8)·summ, as two fused
// multiply-adds (the second is fma(−(dmin·d8), summ, ·)).
static inline __m512 q4x_combine(__m512 acc, __m512 d, __m512 dmin, __m512 d8, __m512i sumi, __m512i summ) {
  acc = _mm512_fmadd_ps(_mm512_mul_ps(d, d8), _mm512_cvtepi32_ps(sumi), acc);
  return _mm512_fnmadd_ps(_mm512_mul_ps(dmin, d8), _mm512_cvtepi32_ps(summ), acc);
}

// y rows [m0, m0+MT) × the 16 rows of the group at gp (output columns n0..n0+15); PF: prefetch the weights.
template <int MT, bool PF = true>
static void q4x_tile(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
  constexpr int PARTS = MT == 1 ? 4 : MT == 2 ? 2 : 1;
  const __m512i m4 = _mm512_set1_epi8(0xF), lo8 = _mm512_set1_epi32(0xff);
  // The float accumulators live in L1 (touched once per super-block), leaving the registers to the
  // 2·MT integer accumulators of the inner loop: at MT = 8 they would otherwise spill.
  alignas(64) float acc[MT][X16];
  const uint8_t* y[MT];
  for (int m = 0; m < MT; m++) { _mm512_store_ps(acc[m], _mm512_setzero_ps()); y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes; }
  for (int sb = 0; sb < g.nb; sb++) {
    const uint8_t* P = gp + (int64_t)sb * X16_Q4_SB;
    if (PF) prefetch_span(P + X16_PREFETCH_BYTES, X16_Q4_SB);
    const int64_t yo = (int64_t)sb * BLOCK_Q8_K_BYTES + 4;  // the qs of this block
    __m512i sc_lo, sc_hi;  // the scales here, the mins after the sums (fewer registers live in the inner loop)
    q4x_scales(P, sc_lo, sc_hi);
    __m512i sumi[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) sumi[m] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int j = 0; j < 8; j++) {  // sub-block j = 2p + hi: nibbles of chunks 8p..8p+7
      const int p = j >> 1, hi = j & 1;
      __m512i sub[PARTS][MT];
#pragma GCC unroll 4
      for (int q = 0; q < PARTS; q++)
#pragma GCC unroll 8
        for (int m = 0; m < MT; m++) sub[q][m] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) {
        const __m512i bits = ld512(P + X16_Q4_QS + (8 * p + t) * 64);
        const __m512i wv = _mm512_and_si512(hi ? _mm512_srli_epi16(bits, 4) : bits, m4);
        const int64_t off = yo + 64 * p + 32 * hi + 4 * t;
#pragma GCC unroll 8
        for (int m = 0; m < MT; m++) sub[t % PARTS][m] = _mm512_dpbusd_epi32(sub[t % PARTS][m], wv, bcast32(y[m] + off));
      }
      const __m512i sc = _mm512_and_si512(_mm512_srli_epi32(j < 4 ? sc_lo : sc_hi, 8 * (j & 3)), lo8);
#pragma GCC unroll 8
      for (int m = 0; m < MT; m++) {
        __m512i s = sub[0][m];
#pragma GCC unroll 4
        for (int q = 1; q < PARTS; q++) s = _mm512_add_epi32(s, sub[q][m]);
        sumi[m] = _mm512_add_epi32(sumi[m], _mm512_mullo_epi32(s, sc));
      }
    }
    __m512i mnp[4];
    q4x_mins(P, mnp);
    const __m512 d = f16x16(P + X16_Q4_D), dmin = f16x16(P + X16_Q4_DMIN);
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) {
      const __m512i summ = q4x_min_sum(mnp, aux + (int64_t)(m0 + m) * g.nb * 4 + sb * 4);
      _mm512_store_ps(acc[m], q4x_combine(_mm512_load_ps(acc[m]), d, dmin, _mm512_set1_ps(load_f32(y[m] + yo - 4)), sumi[m], summ));
    }
  }
  const __m512 b = g.bias ? _mm512_loadu_ps(g.bias + n0) : _mm512_setzero_ps();
  for (int m = 0; m < MT; m++) _mm512_storeu_ps(g.y + (int64_t)(m0 + m) * g.ldy + n0, _mm512_add_ps(_mm512_load_ps(acc[m]), b));
}

// The tile for few activation rows (decode, batched decode): each 64-byte chunk is loaded once and feeds both of
// its sub-blocks, the low nibbles (2p) and the high ones (2p + 1); q4x_tile loads it once per nibble. At one row,
// in a harness streaming 1.2 GB from DRAM (Zen 5 EPYC, rounds alternating with a stream read of the same bytes),
// this tile read at 99–113% of the stream read's GB/s at 1 thread and 101–112% at 2; q4x_tile<1> at 82–85% and
// 70–92%: fewer instructions per byte leave the out-of-order window more bytes ahead. Beyond X16_FEW_ROWS rows the
// two nibbles' accumulators would not fit the registers. Sums as q4x_tile (integers, exact in any order; the same
// float steps), so the two are bit-identical.
constexpr int X16_FEW_ROWS = 4;
template <int MT, bool PF>
static void q4x_tile_few(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
  constexpr int PARTS = MT == 1 ? 2 : 1;  // independent dpbusd chains per nibble and row
  const __m512i m4 = _mm512_set1_epi8(0xF), lo8 = _mm512_set1_epi32(0xff);
  __m512 acc[MT];
  const uint8_t* y[MT];
#pragma GCC unroll 4
  for (int m = 0; m < MT; m++) { acc[m] = _mm512_setzero_ps(); y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes + 4; }
  for (int sb = 0; sb < g.nb; sb++) {
    const uint8_t* P = gp + (int64_t)sb * X16_Q4_SB;
    if (PF) prefetch_span(P + X16_PREFETCH_BYTES, X16_Q4_SB);
    const int64_t yo = (int64_t)sb * BLOCK_Q8_K_BYTES;  // the qs of this block, from y[m]
    __m512i sc_lo, sc_hi;
    q4x_scales(P, sc_lo, sc_hi);
    __m512i sumi[MT];
#pragma GCC unroll 4
    for (int m = 0; m < MT; m++) sumi[m] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int p = 0; p < 4; p++) {  // chunks 8p..8p+7: sub-blocks 2p (low nibbles) and 2p + 1 (high)
      __m512i lo[PARTS][MT], hi[PARTS][MT];
#pragma GCC unroll 2
      for (int q = 0; q < PARTS; q++)
#pragma GCC unroll 4
        for (int m = 0; m < MT; m++) lo[q][m] = hi[q][m] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) {
        const __m512i bits = ld512(P + X16_Q4_QS + (8 * p + t) * 64);
        const __m512i wl = _mm512_and_si512(bits, m4), wh = _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4);
        const int64_t off = yo + 64 * p + 4 * t;
#pragma GCC unroll 4
        for (int m = 0; m < MT; m++) {
          lo[t % PARTS][m] = _mm512_dpbusd_epi32(lo[t % PARTS][m], wl, bcast32(y[m] + off));
          hi[t % PARTS][m] = _mm512_dpbusd_epi32(hi[t % PARTS][m], wh, bcast32(y[m] + off + 32));
        }
      }
      const __m512i sc = _mm512_srli_epi32(p < 2 ? sc_lo : sc_hi, 16 * (p & 1));  // bytes: scale 2p, scale 2p + 1
      const __m512i s_lo = _mm512_and_si512(sc, lo8), s_hi = _mm512_and_si512(_mm512_srli_epi32(sc, 8), lo8);
#pragma GCC unroll 4
      for (int m = 0; m < MT; m++) {
        __m512i l = lo[0][m], h = hi[0][m];
        if (PARTS == 2) l = _mm512_add_epi32(l, lo[PARTS - 1][m]), h = _mm512_add_epi32(h, hi[PARTS - 1][m]);
        sumi[m] = _mm512_add_epi32(sumi[m], _mm512_mullo_epi32(l, s_lo));
        sumi[m] = _mm512_add_epi32(sumi[m], _mm512_mullo_epi32(h, s_hi));
      }
    }
    __m512i mnp[4];
    q4x_mins(P, mnp);
    const __m512 d = f16x16(P + X16_Q4_D), dmin = f16x16(P + X16_Q4_DMIN);
#pragma GCC unroll 4
    for (int m = 0; m < MT; m++) {
      const __m512i summ = q4x_min_sum(mnp, aux + (int64_t)(m0 + m) * g.nb * 4 + sb * 4);
      acc[m] = q4x_combine(acc[m], d, dmin, _mm512_set1_ps(load_f32(y[m] + yo - 4)), sumi[m], summ);
    }
  }
  const __m512 b = g.bias ? _mm512_loadu_ps(g.bias + n0) : _mm512_setzero_ps();  // + 0 turns −0 into +0, as q4x_tile
#pragma GCC unroll 4
  for (int m = 0; m < MT; m++) _mm512_storeu_ps(g.y + (int64_t)(m0 + m) * g.ldy + n0, _mm512_add_ps(acc[m], b));
}

// The Q8_0 tile reads the x16 blocks in pairs (interleave.h): every quant load is one aligned 64-byte line, and
// it leaves the prefetching to the hardware. At one activation row, 1 GB streamed from DRAM (Zen 5 EPYC, medians
// of 9 rounds, each after a plain read of the same bytes), against the blocks one by one with 4 KiB prefetch:
// 1 thread 98–101% of the read (36.8–37.5 GB/s) against 71–78% (26–27); 2 threads 98% (66 GB/s) against 77% (51).
// Pairs with the prefetch kept read at 74–78%, single blocks without it at 77–78%: only the two together help.
// With 2 to 8 rows (batched decode, the first row tile of a prefill panel) the compute per byte is higher, and
// without the prefetch the tile streamed at 48–91% of the read (most of them 63–84%) against 73–89% for the old tile
// (bench/stream/x16_tiles.cc): those keep it, and read within the noise of the old tile (61–91% against 64–82%).
template <int MT, bool PF>
static void q8x_tile(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
  constexpr int PARTS = MT == 1 ? 4 : MT == 2 ? 2 : 1;
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  __m512 acc[MT];
  const uint8_t* y[MT];
#pragma GCC unroll 8
  for (int m = 0; m < MT; m++) { acc[m] = _mm512_setzero_ps(); y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes; }
  for (int b = 0; b < g.nb; b++) {
    const uint8_t* Q = gp + x16_q8_qs(b) + X16_Q8_QS;
    if (PF) prefetch_span(Q + X16_PREFETCH_BYTES, X16_Q8_BLK);
    const int64_t yo = (int64_t)b * BLOCK_Q8_0_BYTES;
    __m512i s[PARTS][MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) {
      s[0][m] = _mm512_set1_epi32(aux[(int64_t)(m0 + m) * g.nb + b]);  // −128·Σa takes back the +128 below
#pragma GCC unroll 4
      for (int q = 1; q < PARTS; q++) s[q][m] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
      const __m512i wv = _mm512_xor_si512(ld512(Q + 64 * t), flip);  // s8 → u8 = w + 128
#pragma GCC unroll 8
      for (int m = 0; m < MT; m++) s[t % PARTS][m] = _mm512_dpbusd_epi32(s[t % PARTS][m], wv, bcast32(y[m] + yo + 2 + 4 * t));
    }
    const __m512 d = f16x16(gp + x16_q8_d(b, g.nb));
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) {
      __m512i sumi = s[0][m];
#pragma GCC unroll 4
      for (int q = 1; q < PARTS; q++) sumi = _mm512_add_epi32(sumi, s[q][m]);
      acc[m] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(fp16_to_fp32(load_u16(y[m] + yo)))), _mm512_cvtepi32_ps(sumi), acc[m]);
    }
  }
  const __m512 bv = g.bias ? _mm512_loadu_ps(g.bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int m = 0; m < MT; m++) _mm512_storeu_ps(g.y + (int64_t)(m0 + m) * g.ldy + n0, _mm512_add_ps(acc[m], bv));
}

// The first Q4_K row tile over a panel (m0 = 0) streams it from memory and prefetches; the others read it from L2.
template <int MT> struct Q4X {
  static void run(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
    if constexpr (MT <= X16_FEW_ROWS) {
      m0 == 0 ? q4x_tile_few<MT, true>(g, gp, aux, m0, n0) : q4x_tile_few<MT, false>(g, gp, aux, m0, n0);
    } else {
      m0 == 0 ? q4x_tile<MT, true>(g, gp, aux, m0, n0) : q4x_tile<MT, false>(g, gp, aux, m0, n0);
    }
  }
};
template <int MT> struct Q8X {
  static void run(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
    if constexpr (MT == 1) {
      q8x_tile<MT, false>(g, gp, aux, m0, n0);  // no prefetch at one row (see q8x_tile)
    } else {
      m0 == 0 ? q8x_tile<MT, true>(g, gp, aux, m0, n0) : q8x_tile<MT, false>(g, gp, aux, m0, n0);
    }
  }
};

// Columns [n0, n1) (whole groups). PANEL_GROUPS groups at a time, so that with many activation rows their
// weights stay in L2 while every TM-row tile passes over them.
template <template <int> class F>
static void qgemm_x16_tiles(const QGemmArgs& g, int n0, int n1) {
  for (int b0 = n0; b0 < n1; b0 += PANEL_GROUPS * X16) {
    const int b1 = std::min(n1, b0 + PANEL_GROUPS * X16);
    for (int m0 = 0; m0 < g.m; m0 += TM) {
      const int mt = std::min(TM, g.m - m0);
      for (int r0 = b0; r0 < b1; r0 += X16) by_mt<F>(mt, g, g.w + (int64_t)r0 * g.w_row_bytes, g.aux, m0, r0);
    }
  }
}

static void qgemm_q4k_x16(const QGemmArgs& g, int n0, int n1) { qgemm_x16_tiles<Q4X>(g, n0, n1); }
static void qgemm_q80_x16(const QGemmArgs& g, int n0, int n1) { qgemm_x16_tiles<Q8X>(g, n0, n1); }

// Q4_K tiles read q8k_pair_sums, Q8_0 tiles q80_neg_sums.
static int x16_aux(int fmt, const uint8_t* xq_row, int nb, int32_t* aux_row) {
  if (xq_row) (fmt == 0 ? q8k_pair_sums : q80_neg_sums)(xq_row, nb, aux_row);
  return fmt == 0 ? nb * 4 : nb;
}
