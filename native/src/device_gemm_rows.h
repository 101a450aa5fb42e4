// The row-invariant GEMM of the LoRA deltas, included by device_impl.h inside its ISA namespace.
// ---- row-invariant GEMM for LoRA ------------------------------------------------------------------------------
#if defined(__AVX512F__)
constexpr int GM = 4, GN = 4;
#elif defined(__AVX2__)
constexpr int GM = 3, GN = 4;
#else
constexpr int GM = 2, GN = 2;
#endif

template <WType T>
inline vf loadw(const void* b, int64_t i) {
  if constexpr (T == WType::F32) return vload((const float*)b + i);
  else if constexpr (T == WType::BF16) return vload_bf16((const uint16_t*)b + i);
  else return vload_f16((const uint16_t*)b + i);
}
template <WType T>
inline vf loadw_tail(const void* b, int64_t i, int n) {
  if constexpr (T == WType::F32) return vload_n((const float*)b + i, n);
  alignas(64) uint16_t h[VL] = {};
  std::memcpy(h, (const uint16_t*)b + i, n * sizeof(uint16_t));
  return T == WType::BF16 ? vload_bf16(h) : vload_f16(h);
}

#if defined(__AVX512F__)
// The 16 horizontal sums of a 4×4 tile at once, quarter i of the result = row i's 4 columns: a tree of 15 lane-wise
// adds over shuffles (45 instructions) instead of 16 reductions (about 8 each). Every sum is added in the order of
// _mm512_reduce_add_ps (vhsum): halves of 256 bits, then of 128, then (l0 + l2) + (l1 + l3); so a row's result is
// the same bits in a full tile as in an edge tile or alone (batch invariance).
inline __m512 hsum16(const vf (&acc)[4][4]) {
  __m512 w[8], u[4], t[2];
  // v[4j + i] = acc[i][j]: pairs (v[2p], v[2p + 1]) → [a.q0 + a.q2, a.q1 + a.q3, b.q0 + b.q2, b.q1 + b.q3]
  for (int p = 0; p < 8; p++) {
    const __m512 a = acc[(2 * p) % 4][(2 * p) / 4], b = acc[(2 * p + 1) % 4][(2 * p + 1) / 4];
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  // (w[2p], w[2p + 1]) → quarter q = the 4-lane partial of v[4p + q]
  for (int p = 0; p < 4; p++) u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * p], w[2 * p + 1], 0x88), _mm512_shuffle_f32x4(w[2 * p], w[2 * p + 1], 0xDD));
  // within each quarter q: [l0 + l2, l1 + l3] of v[8p + q], then of v[8p + 4 + q]
  for (int p = 0; p < 2; p++) t[p] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * p], u[2 * p + 1], 0x44), _mm512_shuffle_ps(u[2 * p], u[2 * p + 1], 0xEE));
  // quarter q = [v[q], v[4 + q], v[8 + q], v[12 + q]] = acc[q][0..3]
  return _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], 0x88), _mm512_shuffle_ps(t[0], t[1], 0xDD));
}
#endif

// pf: prefetch the rows of the tile at least LORA_PREFETCH_BYTES ahead, at the same columns, into L2, one line
// per step through this one. Set for the first row tile of each weight tile only (the others find the weights in
// L1). A decode step reads each adapter matrix once, and a row of A is only a few KiB, too short a stream for
// the hardware prefetcher to train on. 32 layers of vision-LoRA shapes at M = 1, bf16, streamed (medians of 10
// alternating rounds): 1 thread 9.7 GB/s without, 15.1 one tile ahead, 24.0 16 KiB ahead (in-cache speed: 31–38).
constexpr int64_t LORA_PREFETCH_BYTES = 16384;  // at least this far ahead: a tile of B is only nr rows of r values
template <int mr, int nr, WType T>
inline void gemm_tile(const float* x, int64_t ldx, const void* w, int64_t ldw, float* y, int64_t ldy, int k, int i0, int j0,
                      float alpha, bool accumulate, bool pf) {
  constexpr int ELEM_BYTES = wtype_bytes(T), ELEMS_PER_LINE = 64 / ELEM_BYTES;
  const int64_t ahead = std::max<int64_t>(1, LORA_PREFETCH_BYTES / ((int64_t)nr * ldw * ELEM_BYTES));  // tiles
  // an address, not a pointer: near the end of the matrix it lies past it (prefetches never fault)
  const uintptr_t next = reinterpret_cast<uintptr_t>(w) + (uintptr_t)((int64_t)(j0 + ahead * nr) * ldw * ELEM_BYTES);
  vf acc[mr][nr];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc[i][j] = vzero();
  int kk = 0;
  for (; kk + VL <= k; kk += VL) {
    if (pf && kk % ELEMS_PER_LINE == 0)
      for (int j = 0; j < nr; j++) __builtin_prefetch(reinterpret_cast<const void*>(next + ((int64_t)j * ldw + kk) * ELEM_BYTES), 0, 2);  // into L2
    vf xv[mr];
    for (int i = 0; i < mr; i++) xv[i] = vload(x + (int64_t)(i0 + i) * ldx + kk);
    for (int j = 0; j < nr; j++) {
      const vf wv = loadw<T>(w, (int64_t)(j0 + j) * ldw + kk);
      for (int i = 0; i < mr; i++) acc[i][j] = vfma(xv[i], wv, acc[i][j]);
    }
  }
  if (kk < k) {
    vf xv[mr];
    for (int i = 0; i < mr; i++) xv[i] = vload_n(x + (int64_t)(i0 + i) * ldx + kk, k - kk);
    for (int j = 0; j < nr; j++) {
      const vf wv = loadw_tail<T>(w, (int64_t)(j0 + j) * ldw + kk, k - kk);
      for (int i = 0; i < mr; i++) acc[i][j] = vfma(xv[i], wv, acc[i][j]);
    }
  }
#if defined(__AVX512F__)
  if constexpr (mr == 4 && nr == 4) {
    const __m512 r = hsum16(acc);
    for (int i = 0; i < 4; i++) {
      float* yr = y + (int64_t)(i0 + i) * ldy + j0;
      const __m128 dot = _mm512_extractf32x4_ps(r, i);  // hsum16 keeps the row in a quarter: immediate index
      _mm_storeu_ps(yr, accumulate ? _mm_add_ps(_mm_loadu_ps(yr), _mm_mul_ps(_mm_set1_ps(alpha), dot)) : dot);
    }
    return;
  }
#endif
  for (int i = 0; i < mr; i++) {
    float* yr = y + (int64_t)(i0 + i) * ldy + j0;
    for (int j = 0; j < nr; j++) {
      const float dot = vhsum(acc[i][j]);
      yr[j] = accumulate ? yr[j] + alpha * dot : dot;
    }
  }
}

template <int nr, WType T>
inline void gemm_tile_m(int mr, const float* x, int64_t ldx, const void* w, int64_t ldw, float* y, int64_t ldy, int k, int i0,
                        int j0, float alpha, bool acc, bool pf) {
  switch (mr) {
    case 1: gemm_tile<1, nr, T>(x, ldx, w, ldw, y, ldy, k, i0, j0, alpha, acc, pf); break;
    case 2: if constexpr (GM >= 2) gemm_tile<2, nr, T>(x, ldx, w, ldw, y, ldy, k, i0, j0, alpha, acc, pf); break;
    case 3: if constexpr (GM >= 3) gemm_tile<3, nr, T>(x, ldx, w, ldw, y, ldy, k, i0, j0, alpha, acc, pf); break;
    case 4: if constexpr (GM >= 4) gemm_tile<4, nr, T>(x, ldx, w, ldw, y, ldy, k, i0, j0, alpha, acc, pf); break;
  }
}

// x rows per block: a block of x stays in L2 (X_BLOCK_BYTES) while every weight tile of [n0, n1) passes over it.
// Unblocked, a prefill's x (545 rows × 3072 f32 = 6.7 MB) was re-read from L3 once per 4 weight rows.
constexpr int64_t X_BLOCK_BYTES = 256 * 1024;
template <WType T>
void gemm_rows_t(const float* x, int64_t ldx, const void* w, int64_t ldw, float* y, int64_t ldy, int m, int k, int n0, int n1,
                 float alpha, bool acc) {
  const int ib = (int)std::max<int64_t>(GM, X_BLOCK_BYTES / ((int64_t)k * 4) / GM * GM);
  for (int b0 = 0; b0 < m; b0 += ib) {
    const int b1 = std::min(m, b0 + ib);
    for (int j0 = n0; j0 < n1; j0 += GN) {
      const int nr = std::min(GN, n1 - j0);
      for (int i0 = b0; i0 < b1; i0 += GM) {
        const int mr = std::min(GM, b1 - i0);
        if (nr == GN) gemm_tile_m<GN, T>(mr, x, ldx, w, ldw, y, ldy, k, i0, j0, alpha, acc, i0 == b0);
        else for (int j = 0; j < nr; j++) gemm_tile_m<1, T>(mr, x, ldx, w, ldw, y, ldy, k, i0, j0 + j, alpha, acc, i0 == b0);
      }
    }
  }
}

void gemm_rows(const float* x, int64_t ldx, const void* w, WType wt, int64_t ldw, float* y, int64_t ldy, int m, int k, int n0,
               int n1, float alpha, bool acc) {
  switch (wt) {
    case WType::F32: gemm_rows_t<WType::F32>(x, ldx, w, ldw, y, ldy, m, k, n0, n1, alpha, acc); break;
    case WType::BF16: gemm_rows_t<WType::BF16>(x, ldx, w, ldw, y, ldy, m, k, n0, n1, alpha, acc); break;
    case WType::F16: gemm_rows_t<WType::F16>(x, ldx, w, ldw, y, ldy, m, k, n0, n1, alpha, acc); break;
  }
}

}  // namespace

