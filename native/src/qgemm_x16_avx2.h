// AVX2 GEMM/GEMV over x16 weights (interleave.h): decode, batched decode and prefill read the weights in the
// order this kernel consumes them, as on AVX-512 (qgemm_x16.h), with no per-call packing. Included by
// qgemm_impl.h for the avx2 build; the exactness contract is qgemm_impl.h's (bit-identical to qgemm_ref.cc
// on the de-interleaved rows).
//
// A 64-byte chunk of an x16 group is 16 rows × 4 weights; a ymm takes one half of it (8 rows, the `h` loop).
// AVX2 has no vpdpbusd: vpmaddubsw multiplies the 4 weights of each row by 4 activation bytes broadcast from
// one of MT activation rows into two int16 pair sums, and vpmaddwd later widens and scales them.
//  - Q4_K: a pair sum is at most 2·15·127 = 3810 in magnitude, so the 8 chunks of a sub-block add up in
//    int16 (≤ 30480) before one vpmaddwd by the sub-block's 6-bit scale (set in both halves of the lane).
//  - Q8_0: |w| as u8 against the activation with w's sign (ggml's trick; Q8_0 has no −128), then vpmaddwd by
//    ones per chunk, since two pair sums of up to 2·127·127 could exceed int16.
// Integer sums are exact in any order; the float combination per block is the reference's.

constexpr int X16_TM = 4;            // activation rows per micro-tile: 2·MT int accumulators + 4 fit in 16 ymm
constexpr int X16_PANEL_GROUPS = 4;  // groups per pass: an MT-row activation tile is reused by 64 weight rows
// The tiles prefetch the weights X16_PREFETCH_BYTES ahead into L2, one 64-byte line per chunk step, spread
// through the loop. Measured on this Zen 4 EPYC (AVX-512 hidden by the hypervisor), streamed weights, settings
// alternated in one process:
//  - a burst of all of a super-block's 36 lines at its top (the tiles of M ≥ 2 before) left them 30–40% slower
//    than on cached weights; spread, they stream as fast as from cache (M = 2, 4: +54%);
//  - M = 1 (decode) with no software prefetch depends on the hardware prefetcher, which streamed at 10–21 GB/s
//    from run to run; spread into L2, 18–23. 1-thread decode went from 5.2 to 8.5 tok/s (medians of 8
//    alternating rounds), 2-thread from 8.6 to 12.1. Into L1 (T0) or non-temporal, it was no better than none;
//  - 16 and 32 KiB ahead gave the same speed, 64 and 128 KiB less;
//  - the Q8_0 decode tile (the LM head) is the exception: with half the work per byte, the hardware prefetcher
//    keeps up, and the same prefetch made it 8–11% slower (medians of 20 alternating rounds, 1 and 2 threads).
constexpr int X16_PREFETCH_BYTES = 16384;

static inline void prefetch_l2(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1); }
static inline __m256i ld256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
static inline __m256i bcast32(const uint8_t* p) { int32_t v; std::memcpy(&v, p, 4); return _mm256_set1_epi32(v); }
// An empty asm that makes v opaque: GCC would otherwise reassociate a chain of integer adds into a tree, issue
// every vpmaddubsw of it first and spill the products (seen in the M = 1 loop: 192 stack moves per super-block).
static inline void serial(__m256i& v) { asm("" : "+x"(v)); }
static inline __m256 f16x8(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// get_scale_min_k4 of 8 rows at once (ggml's kmask trick on each row's 3 little-endian words u0, u1, u2):
// byte i of a lane of sc_lo / sc_hi is the 6-bit scale of sub-block i / 4 + i; mn_lo / mn_hi likewise the mins.
struct ScalesMins8 {
  __m256i sc_lo, sc_hi, mn_lo, mn_hi;
  explicit ScalesMins8(const uint8_t* words, int ho) {  // words: the group's 3 × 64 scale bytes; ho: 0 or 32
    const __m256i k1 = _mm256_set1_epi32(0x3f3f3f3f), k2 = _mm256_set1_epi32(0x0f0f0f0f), k3 = _mm256_set1_epi32(0x03030303);
    const __m256i u0 = ld256(words + ho), u1 = ld256(words + 64 + ho), u2 = ld256(words + 128 + ho);
    sc_lo = _mm256_and_si256(u0, k1);
    sc_hi = _mm256_or_si256(_mm256_and_si256(u2, k2), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), k3), 4));
    mn_lo = _mm256_and_si256(u1, k1);
    mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), k2), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), k3), 4));
  }
};
// vpshufb masks that pick bytes b0 and b1 of every 32-bit lane into its two int16 halves (high bytes zeroed:
// a mask byte with bit 7 set writes 0). One shuffle replaces the shift/mask/shift/or of each pair below.
struct alignas(32) PairMask { int8_t b[32]; };
static constexpr PairMask pair_mask(int b0, int b1) {
  PairMask m{};
  for (int k = 0; k < 8; k++) {
    const int base = 4 * (k & 3);  // vpshufb indexes within each 128-bit half
    m.b[4 * k] = (int8_t)(base + b0), m.b[4 * k + 1] = -128, m.b[4 * k + 2] = (int8_t)(base + b1), m.b[4 * k + 3] = -128;
  }
  return m;
}
static constexpr PairMask SCALE_PAIR[4] = {pair_mask(0, 0), pair_mask(1, 1), pair_mask(2, 2), pair_mask(3, 3)};
static constexpr PairMask MIN_PAIR[2] = {pair_mask(0, 1), pair_mask(2, 3)};
static inline __m256i pick_pairs(__m256i bytes, const PairMask& m) {
  return _mm256_shuffle_epi8(bytes, _mm256_load_si256(reinterpret_cast<const __m256i*>(m.b)));
}
// Byte i (0..3) of each lane, as the int16 pair (s, s): vpmaddwd by it scales both pair sums of a lane.
static inline __m256i scale_pair(__m256i bytes, int i) { return pick_pairs(bytes, SCALE_PAIR[i]); }
// The min term of one super-block for 8 rows: Σ_q (mn[2q], mn[2q+1]) · (bsum32[2q], bsum32[2q+1]) (ax: q8k_pair_sums).
static inline __m256i min_sums(const ScalesMins8& s, const int32_t* ax) {
  __m256i summ = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) summ = _mm256_add_epi32(summ, _mm256_madd_epi16(pick_pairs(q < 2 ? s.mn_lo : s.mn_hi, MIN_PAIR[q & 1]), _mm256_set1_epi32(ax[q])));
  return summ;
}
// The reference's per-block combination for 8 rows: fma(d·d8, sumi, acc), then fma(−(dmin·d8), summ, acc).
static inline __m256 q4k_combine8(__m256 acc, __m256 d, __m256 dmin, float d8, __m256i sumi, __m256i summ) {
  const __m256 v8 = _mm256_set1_ps(d8);
  acc = _mm256_fmadd_ps(_mm256_mul_ps(d, v8), _mm256_cvtepi32_ps(sumi), acc);
  return _mm256_fnmadd_ps(_mm256_mul_ps(dmin, v8), _mm256_cvtepi32_ps(summ), acc);
}

// y[row][n0, n0 + 16) = [lo | hi] + bias: one output row of a group (rows 8h..8h+7 of it in each half).
static inline void store_row16(const QGemmArgs& g, int row, int n0, __m256 lo, __m256 hi) {
  // + 0 without a bias, as the reference's acc + b (it turns −0 into +0)
  const __m256 b0 = g.bias ? _mm256_loadu_ps(g.bias + n0) : _mm256_setzero_ps(), b1 = g.bias ? _mm256_loadu_ps(g.bias + n0 + 8) : _mm256_setzero_ps();
  float* y = g.y + (int64_t)row * g.ldy + n0;
  _mm256_storeu_ps(y, _mm256_add_ps(lo, b0));
  _mm256_storeu_ps(y + 8, _mm256_add_ps(hi, b1));
}

// y rows [m0, m0+MT) × the 16 rows of the group at gp (output columns n0..n0+15). aux: q8k_pair_sums per row.
// Both halves of a chunk in one pass, so each activation broadcast feeds two vpmaddubsw: the 2·MT int16 chains,
// the two weight vectors, the broadcast and the mask take 13 ymm; the int32 sums, touched once per sub-block,
// live in L1.
template <int MT>
static void q4x_tile(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  alignas(32) float acc[MT][X16] = {};  // in L1, touched once per super-block
  alignas(32) int32_t sumi[2][MT][8];
  const uint8_t* y[MT];
  for (int m = 0; m < MT; m++) y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes;
  for (int sb = 0; sb < g.nb; sb++) {
    const uint8_t* P = gp + (int64_t)sb * X16_Q4_SB;
    const int64_t yo = (int64_t)sb * BLOCK_Q8_K_BYTES + 4;  // the qs of this block
    const ScalesMins8 sm[2] = {ScalesMins8(P + X16_Q4_SCALES, 0), ScalesMins8(P + X16_Q4_SCALES, 32)};
#pragma GCC unroll 1
    for (int j = 0; j < 8; j++) {  // sub-block j = 2p + hi: nibbles of chunks 8p..8p+7
      const int p = j >> 1, hi = j & 1;
      __m256i s16[2][MT];
#pragma GCC unroll 2
      for (int h = 0; h < 2; h++)
#pragma GCC unroll 4
        for (int m = 0; m < MT; m++) s16[h][m] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) {
        if (8 * j + t < X16_Q4_SB / 64) prefetch_l2(P + X16_PREFETCH_BYTES + (8 * j + t) * 64);  // the 36 lines of a super-block
        const uint8_t* c = P + X16_Q4_QS + (8 * p + t) * 64;
        const __m256i b0 = ld256(c), b1 = ld256(c + 32);
        const __m256i w0 = _mm256_and_si256(hi ? _mm256_srli_epi16(b0, 4) : b0, m4), w1 = _mm256_and_si256(hi ? _mm256_srli_epi16(b1, 4) : b1, m4);
        const int64_t off = yo + 64 * p + 32 * hi + 4 * t;
#pragma GCC unroll 4
        for (int m = 0; m < MT; m++) {
          const __m256i a = bcast32(y[m] + off);
          s16[0][m] = _mm256_add_epi16(s16[0][m], _mm256_maddubs_epi16(w0, a));
          s16[1][m] = _mm256_add_epi16(s16[1][m], _mm256_maddubs_epi16(w1, a));
          serial(s16[0][m]), serial(s16[1][m]);
        }
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; h++) {
        const __m256i sc2 = scale_pair(j < 4 ? sm[h].sc_lo : sm[h].sc_hi, j & 3);
#pragma GCC unroll 4
        for (int m = 0; m < MT; m++) {
          const __m256i v = _mm256_madd_epi16(s16[h][m], sc2);
          __m256i* dst = reinterpret_cast<__m256i*>(sumi[h][m]);
          _mm256_store_si256(dst, j == 0 ? v : _mm256_add_epi32(_mm256_load_si256(dst), v));
        }
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      const __m256 d = f16x8(P + X16_Q4_D + 16 * h), dmin = f16x8(P + X16_Q4_DMIN + 16 * h);
#pragma GCC unroll 4
      for (int m = 0; m < MT; m++) {
        const __m256i summ = min_sums(sm[h], aux + (int64_t)(m0 + m) * g.nb * 4 + sb * 4);
        const __m256i si = _mm256_load_si256(reinterpret_cast<const __m256i*>(sumi[h][m]));
        _mm256_store_ps(acc[m] + 8 * h, q4k_combine8(_mm256_load_ps(acc[m] + 8 * h), d, dmin, load_f32(y[m] + yo - 4), si, summ));
      }
    }
  }
  for (int m = 0; m < MT; m++) store_row16(g, m0 + m, n0, _mm256_load_ps(acc[m]), _mm256_load_ps(acc[m] + 8));
}

// M = 1 (decode), the weight-streaming case: each 64-byte chunk is loaded once for both halves and both nibbles,
// and each activation group once for both halves, since at one activation row the loads, not the ALUs, bound
// the tile above (it reloads them per half and per nibble). Same integer sums, same combination.
template <>
void q4x_tile<1>(const QGemmArgs& g, const uint8_t* gp, const int32_t* aux, int m0, int n0) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  const uint8_t* y = g.xq + (int64_t)m0 * g.xq_row_bytes;
  for (int sb = 0; sb < g.nb; sb++) {
    const uint8_t* P = gp + (int64_t)sb * X16_Q4_SB;
    const int64_t yo = (int64_t)sb * BLOCK_Q8_K_BYTES + 4;
    const ScalesMins8 sm[2] = {ScalesMins8(P + X16_Q4_SCALES, 0), ScalesMins8(P + X16_Q4_SCALES, 32)};
    __m256i sumi[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 1
    for (int p = 0; p < 4; p++) {  // sub-blocks 2p (low nibbles) and 2p+1 (high nibbles)
      __m256i s[2][2] = {{_mm256_setzero_si256(), _mm256_setzero_si256()}, {_mm256_setzero_si256(), _mm256_setzero_si256()}};  // [half][nibble]
      const uint8_t* c = P + X16_Q4_QS + 8 * p * 64;
      const uint8_t* a = y + yo + 64 * p;
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) {
        prefetch_l2(P + X16_PREFETCH_BYTES + (8 * p + t) * 64);  // the 36 lines of a super-block: 32 here, 4 below
        if (p == 0 && t < 4) prefetch_l2(P + X16_PREFETCH_BYTES + (32 + t) * 64);
        const __m256i alo = bcast32(a + 4 * t), ahi = bcast32(a + 32 + 4 * t);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
          const __m256i bits = ld256(c + 64 * t + 32 * h);
          s[h][0] = _mm256_add_epi16(s[h][0], _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), alo));
          s[h][1] = _mm256_add_epi16(s[h][1], _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), ahi));
          serial(s[h][0]), serial(s[h][1]);
        }
      }
      const int i = (2 * p) & 3;
#pragma GCC unroll 2
      for (int h = 0; h < 2; h++) {
        const __m256i sc = p < 2 ? sm[h].sc_lo : sm[h].sc_hi;
        sumi[h] = _mm256_add_epi32(sumi[h], _mm256_add_epi32(_mm256_madd_epi16(s[h][0], scale_pair(sc, i)), _mm256_madd_epi16(s[h][1], scale_pair(sc, i + 1))));
      }
    }
    const float d8 = load_f32(y + yo - 4);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
      acc[h] = q4k_combine8(acc[h], f16x8(P + X16_Q4_D + 16 * h), f16x8(P + X16_Q4_DMIN + 16 * h), d8, sumi[h], min_sums(sm[h], aux + (int64_t)m0 * g.nb * 4 + sb * 4));
  }
  store_row16(g, m0, n0, acc[0], acc[1]);
}

// Both halves of a chunk per pass, as q4x_tile: one activation broadcast per row and chunk.
template <int MT>
static void q8x_tile(const QGemmArgs& g, const uint8_t* gp, const int32_t*, int m0, int n0) {
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float acc[MT][X16] = {};
  const uint8_t* y[MT];
  for (int m = 0; m < MT; m++) y[m] = g.xq + (int64_t)(m0 + m) * g.xq_row_bytes;
  for (int b = 0; b < g.nb; b++) {
    const uint8_t* Q = gp + x16_q8_qs(b) + X16_Q8_QS;  // the blocks' pairs: interleave.h
    if (MT > 1) prefetch_l2(Q + X16_PREFETCH_BYTES + 8 * 64);  // the 8.5 lines a block holds: 1 here, 8 below
    const int64_t yo = (int64_t)b * BLOCK_Q8_0_BYTES;
    __m256i s[2][MT];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 4
      for (int m = 0; m < MT; m++) s[h][m] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
      if (MT > 1) prefetch_l2(Q + X16_PREFETCH_BYTES + 64 * t);
      const __m256i wq0 = ld256(Q + 64 * t), wq1 = ld256(Q + 64 * t + 32);
      const __m256i aw0 = _mm256_sign_epi8(wq0, wq0), aw1 = _mm256_sign_epi8(wq1, wq1);
#pragma GCC unroll 4
      for (int m = 0; m < MT; m++) {
        const __m256i a = bcast32(y[m] + yo + 2 + 4 * t);
        s[0][m] = _mm256_add_epi32(s[0][m], _mm256_madd_epi16(_mm256_maddubs_epi16(aw0, _mm256_sign_epi8(a, wq0)), ones));
        s[1][m] = _mm256_add_epi32(s[1][m], _mm256_madd_epi16(_mm256_maddubs_epi16(aw1, _mm256_sign_epi8(a, wq1)), ones));
        serial(s[0][m]), serial(s[1][m]);
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      const __m256 d = f16x8(gp + x16_q8_d(b, g.nb) + 16 * h);
#pragma GCC unroll 4
      for (int m = 0; m < MT; m++) {
        const __m256 a = _mm256_load_ps(acc[m] + 8 * h);
        _mm256_store_ps(acc[m] + 8 * h, _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(fp16_to_fp32(load_u16(y[m] + yo)))), _mm256_cvtepi32_ps(s[h][m]), a));
      }
    }
  }
  for (int m = 0; m < MT; m++) store_row16(g, m0 + m, n0, _mm256_load_ps(acc[m]), _mm256_load_ps(acc[m] + 8));
}

using X16Tile = void (*)(const QGemmArgs&, const uint8_t*, const int32_t*, int, int);

template <X16Tile... T>  // T[mt − 1]: the tile for mt activation rows, mt = 1..X16_TM
static void qgemm_x16_tiles(const QGemmArgs& g, int n0, int n1) {
  static_assert(sizeof...(T) == X16_TM, "one tile per row count");
  static constexpr X16Tile tiles[] = {T...};
  for (int b0 = n0; b0 < n1; b0 += X16_PANEL_GROUPS * X16) {
    const int b1 = std::min(n1, b0 + X16_PANEL_GROUPS * X16);
    for (int m0 = 0; m0 < g.m; m0 += X16_TM) {
      const X16Tile tile = tiles[std::min(X16_TM, g.m - m0) - 1];
      for (int r0 = b0; r0 < b1; r0 += X16) tile(g, g.w + (int64_t)r0 * g.w_row_bytes, g.aux, m0, r0);
    }
  }
}

static void qgemm_q4k_x16(const QGemmArgs& g, int n0, int n1) {
  qgemm_x16_tiles<q4x_tile<1>, q4x_tile<2>, q4x_tile<3>, q4x_tile<4>>(g, n0, n1);
}
static void qgemm_q80_x16(const QGemmArgs& g, int n0, int n1) {
  qgemm_x16_tiles<q8x_tile<1>, q8x_tile<2>, q8x_tile<3>, q8x_tile<4>>(g, n0, n1);
}

// Q4_K tiles read q8k_pair_sums; the Q8_0 tiles (signed products) none.
static int x16_aux(int fmt, const uint8_t* xq_row, int nb, int32_t* aux_row) {
  if (fmt != 0) return 0;
  if (xq_row) q8k_pair_sums(xq_row, nb, aux_row);
  return nb * 4;
}
