// The LoRA GEMM over column-major factors, included by device_impl.h inside its ISA namespace.
// y[i, j] (+)= alpha · Σ_k x[i, k]·wt[k, j], wt = Wᵀ [K, ldw] as the LoRA factors are placed at load (A [r, K]
// stored as Aᵀ, B [N, r] as Bᵀ). Each output is one f32 accumulator taking one fma per k in k order, so its bits
// depend on its row of x and its column of wt only: the same whichever rows share the call (batch invariance),
// however the rows, columns and K are blocked.
//
// Outer-product tiles: GC_M rows × GC_V vectors of columns in registers; per k, GC_V weight vectors are loaded
// and each x value is broadcast into GC_V fmas. The former inner-product kernel (dot products over Wᵀ's rows)
// re-read both operands from L2 per 16 fmas and reached half the fma peak; here a k step of the AVX-512 tile is
// 24 fmas for 4 weight loads and 6 broadcasts, from a panel that stays in L1.
// ---- column-major GEMM for LoRA --------------------------------------------------------------------------------
#if defined(__AVX512F__)
constexpr int GC_M = 6, GC_V = 4;  // 24 accumulators of 32 zmm registers
#elif defined(__AVX2__)
constexpr int GC_M = 4, GC_V = 3;  // 12 accumulators, 3 weight vectors and a broadcast: the 16 ymm registers
#else
constexpr int GC_M = 2, GC_V = 2;
#endif
// K per pass: a packed panel of GC_V·VL columns × GC_KC rows in f32 (AVX-512: 64 × 128 × 4 B = 32 KiB) stays in
// L1 while every row tile of the item passes over it; the partial sums go out to memory and back between passes.
constexpr int GC_KC = 128;
constexpr int GC_PACK_PF_ROWS = 16;  // packing prefetches this many weight rows ahead
constexpr int64_t GC_GROUP_BYTES = 256 * 1024;  // running sums of a column group (below)

template <WType T>
inline vf loadw(const void* b, int64_t i) {
  if constexpr (T == WType::F32) return vload((const float*)b + i);
  else if constexpr (T == WType::BF16) return vload_bf16((const uint16_t*)b + i);
  else return vload_f16((const uint16_t*)b + i);
}
template <WType T>
inline vf loadw_n(const void* b, int64_t i, int n) {
  if constexpr (T == WType::F32) return vload_n((const float*)b + i, n);
  alignas(64) uint16_t h[VL] = {};
  std::memcpy(h, (const uint16_t*)b + i, n * sizeof(uint16_t));
  return T == WType::BF16 ? vload_bf16(h) : vload_f16(h);
}

// How a pass ends: keep the sums in p (more of K follows, or y is the sums), or y += alpha · sums.
enum class GcOut { Partial, Accumulate };

// One tile: mr rows × nv vectors, the last vector `last` lanes wide (all VL when full), over kn values of k.
// x: row 0's first k (row stride ldx); w: the packed f32 panel at the tile's first column (stride ldw); p and y:
// the tile's corner (strides ldp, ldy). The sums start from p unless first.
template <int mr, int nv, bool full>
inline void gc_tile(const float* x, int64_t ldx, const float* w, int64_t ldw, float* p, int64_t ldp, float* y, int64_t ldy, int kn,
                    bool first, int last, float alpha, GcOut out) {
  vf acc[mr][nv];
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < nv; v++) acc[i][v] = first ? vzero() : !full && v == nv - 1 ? vload_n(p + i * ldp + v * VL, last) : vload(p + i * ldp + v * VL);
  for (int kk = 0; kk < kn; kk++) {
    vf wv[nv];
    for (int v = 0; v < nv; v++) wv[v] = !full && v == nv - 1 ? vload_n(w + kk * ldw + v * VL, last) : vload(w + kk * ldw + v * VL);
    for (int i = 0; i < mr; i++) {
      const vf xb = vset1(x[i * ldx + kk]);
      for (int v = 0; v < nv; v++) acc[i][v] = vfma(xb, wv[v], acc[i][v]);
    }
  }
  const vf va = vset1(alpha);
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < nv; v++) {
      const bool part = !full && v == nv - 1;
      if (out == GcOut::Partial) {
        float* pr = p + i * ldp + v * VL;
        part ? vstore_n(pr, acc[i][v], last) : vstore(pr, acc[i][v]);
      } else {
        float* yr = y + i * ldy + v * VL;
        const vf sum = vadd(part ? vload_n(yr, last) : vload(yr), vmul(va, acc[i][v]));
        part ? vstore_n(yr, sum, last) : vstore(yr, sum);
      }
    }
}

template <int nv, bool full>
inline void gc_tile_m(int mr, const float* x, int64_t ldx, const float* w, int64_t ldw, float* p, int64_t ldp, float* y, int64_t ldy,
                      int kn, bool first, int last, float alpha, GcOut out) {
  switch (mr) {
#define GC_CASE(M) case M: if constexpr (GC_M >= M) gc_tile<M, nv, full>(x, ldx, w, ldw, p, ldp, y, ldy, kn, first, last, alpha, out); break;
    GC_CASE(1) GC_CASE(2) GC_CASE(3) GC_CASE(4) GC_CASE(5) GC_CASE(6)
#undef GC_CASE
  }
}

inline void gc_tile_mv(int mr, int nv, int last, const float* x, int64_t ldx, const float* w, int64_t ldw, float* p, int64_t ldp, float* y,
                       int64_t ldy, int kn, bool first, float alpha, GcOut out) {
  if (nv == GC_V && last == VL) return gc_tile_m<GC_V, true>(mr, x, ldx, w, ldw, p, ldp, y, ldy, kn, first, last, alpha, out);
  switch (nv) {  // the right edge: fewer vectors, the last one masked
    case 1: gc_tile_m<1, false>(mr, x, ldx, w, ldw, p, ldp, y, ldy, kn, first, last, alpha, out); break;
    case 2: if constexpr (GC_V >= 2) gc_tile_m<2, false>(mr, x, ldx, w, ldw, p, ldp, y, ldy, kn, first, last, alpha, out); break;
    case 3: if constexpr (GC_V >= 3) gc_tile_m<3, false>(mr, x, ldx, w, ldw, p, ldp, y, ldy, kn, first, last, alpha, out); break;
    case 4: if constexpr (GC_V >= 4) gc_tile_m<4, false>(mr, x, ldx, w, ldw, p, ldp, y, ldy, kn, first, last, alpha, out); break;
  }
}

thread_local std::vector<float> g_gc_partial;  // per pool thread: running sums of an accumulating item
thread_local std::vector<float> g_gc_panel;  // per pool thread: the packed panel, widened to f32

// A few rows (decode: one per sequence): one pass down K per block of GC_STREAM_COLS columns, each k row's
// segment read once for all rows, the block's running sums in a thread-local buffer (L1). The tile path read the
// panel in 64-column stripes (128 B of each weight row), which streamed from DRAM at 15 GB/s against 20 for
// whole segments. The same fma per k in k order per output as gc_tile, so the same bits.
constexpr int GC_STREAM_COLS = 512;     // a segment of 1 KiB of bf16 per weight row; sums 6 × 2 KiB
constexpr int GC_STREAM_PF_ROWS = 8;    // prefetch this many weight rows ahead: short segments do not train the prefetcher
thread_local std::vector<float> g_gc_sums;

template <int mr, WType T>
void gc_stream(const float* x, int64_t ldx, const void* w, int64_t ldw, float* y, int64_t ldy, int k, int cols, float alpha, bool accumulate) {
  constexpr int ELEM = wtype_bytes(T);
  if (g_gc_sums.size() < (size_t)GC_M * GC_STREAM_COLS) g_gc_sums.resize((size_t)GC_M * GC_STREAM_COLS);
  float* s = g_gc_sums.data();  // [mr][GC_STREAM_COLS]
  for (int c0 = 0; c0 < cols; c0 += GC_STREAM_COLS) {
    const int cw = std::min(GC_STREAM_COLS, cols - c0), nfull = cw / VL, tail = cw - nfull * VL;
    std::fill(s, s + (size_t)mr * GC_STREAM_COLS, 0.f);
    const char* wb = (const char*)w + (int64_t)c0 * ELEM;
    for (int kk = 0; kk < k; kk++) {
      const char* row = wb + (int64_t)kk * ldw * ELEM;
      if (kk + GC_STREAM_PF_ROWS < k)
        for (int b = 0; b < cw * ELEM; b += 64) __builtin_prefetch(row + GC_STREAM_PF_ROWS * ldw * ELEM + b, 0, 3);
      vf xb[mr];
      for (int i = 0; i < mr; i++) xb[i] = vset1(x[i * ldx + kk]);
      for (int v = 0; v < nfull; v++) {
        const vf wv = loadw<T>(row, v * VL);
        for (int i = 0; i < mr; i++) vstore(s + i * GC_STREAM_COLS + v * VL, vfma(xb[i], wv, vload(s + i * GC_STREAM_COLS + v * VL)));
      }
      if (tail) {
        const vf wv = loadw_n<T>(row, nfull * VL, tail);
        for (int i = 0; i < mr; i++) vstore(s + i * GC_STREAM_COLS + nfull * VL, vfma(xb[i], wv, vload(s + i * GC_STREAM_COLS + nfull * VL)));
      }
    }
    for (int i = 0; i < mr; i++) {
      float* yr = y + i * ldy + c0;
      const float* sr = s + i * GC_STREAM_COLS;
      if (!accumulate) { std::memcpy(yr, sr, (size_t)cw * 4); continue; }
      const vf va = vset1(alpha);
      int j = 0;
      for (; j + VL <= cw; j += VL) vstore(yr + j, vadd(vload(yr + j), vmul(va, vload(sr + j))));
      if (j < cw) vstore_n(yr + j, vadd(vload_n(yr + j, cw - j), vmul(va, vload_n(sr + j, cw - j))), cw - j);
    }
  }
}

template <WType T>
void gemm_cols_t(const float* x, int64_t ldx, const void* w, int64_t ldw, float* y, int64_t ldy, int m0, int m1, int k, int n0,
                 int n1, float alpha, bool accumulate) {
  if (m1 <= m0 || n1 <= n0) return;
  if (m1 - m0 <= GC_M) {
    const float* xs = x + (int64_t)m0 * ldx;
    const void* ws = (const char*)w + (int64_t)n0 * wtype_bytes(T);
    float* ys = y + (int64_t)m0 * ldy + n0;
    switch (m1 - m0) {
#define GC_CASE(M) case M: if constexpr (GC_M >= M) gc_stream<M, T>(xs, ldx, ws, ldw, ys, ldy, k, n1 - n0, alpha, accumulate); break;
      GC_CASE(1) GC_CASE(2) GC_CASE(3) GC_CASE(4) GC_CASE(5) GC_CASE(6)
#undef GC_CASE
    }
    return;
  }
  constexpr int TW = GC_V * VL;  // columns per tile
  // Without accumulate, y itself holds the running sums; with it, they need a buffer only when K takes several passes.
  float* p = y;
  int64_t ldp = ldy;
  if (accumulate && k > GC_KC) {
    ldp = n1 - n0;
    if ((int64_t)g_gc_partial.size() < (int64_t)(m1 - m0) * ldp) g_gc_partial.resize((size_t)(m1 - m0) * ldp);
    p = g_gc_partial.data() - (int64_t)m0 * ldp - n0;  // addressed by absolute (row, column)
  }
  // Several row tiles pass over each panel: it is first widened to f32 (exact) into contiguous rows of TW columns,
  // so the tiles' inner loop has no conversions, and rows of Bᵀ that lie N·2 bytes apart in place (32 KiB at
  // N = 16,384, a few cache sets) no longer evict each other.
  if (g_gc_panel.size() < (size_t)GC_KC * TW) g_gc_panel.resize((size_t)GC_KC * TW);
  // Columns in groups whose running sums stay in L2 across the passes over K (at N = 16,384 the item's whole width
  // of sums is 7.8 MB); within a group, each pass's block of x stays in L2 while its column tiles go by.
  const int group = std::max<int>(TW, (int)(GC_GROUP_BYTES / ((int64_t)(m1 - m0) * 4)) / TW * TW);
  for (int g0 = n0; g0 < n1; g0 += group)
  for (int k0 = 0; k0 < k; k0 += GC_KC) {
    const int k1 = std::min(k, k0 + GC_KC), kn = k1 - k0;
    const GcOut out = accumulate && k1 == k ? GcOut::Accumulate : GcOut::Partial;
    for (int j0 = g0; j0 < std::min(n1, g0 + group); j0 += TW) {
      const int cols = std::min(TW, n1 - j0), nv = (cols + VL - 1) / VL, last = cols - (nv - 1) * VL;
      const int64_t at = (int64_t)k0 * ldw + j0;
      float* panel = g_gc_panel.data();
      for (int kk = 0; kk < kn; kk++) {
        // The panel's rows lie ldw apart, one or two lines each: too short for the hardware prefetcher.
        if (kk + GC_PACK_PF_ROWS < kn)
          for (int b = 0; b < cols * wtype_bytes(T); b += 64)
            __builtin_prefetch((const char*)w + (at + (int64_t)(kk + GC_PACK_PF_ROWS) * ldw) * wtype_bytes(T) + b, 0, 3);
        for (int v = 0; v < nv; v++) {
          const int64_t src = at + (int64_t)kk * ldw + v * VL;
          vstore(panel + kk * TW + v * VL, v < nv - 1 || last == VL ? loadw<T>(w, src) : loadw_n<T>(w, src, last));
        }
      }
      for (int i0 = m0; i0 < m1; i0 += GC_M)
        gc_tile_mv(std::min(GC_M, m1 - i0), nv, last, x + (int64_t)i0 * ldx + k0, ldx, panel, TW, p + (int64_t)i0 * ldp + j0, ldp,
                   y + (int64_t)i0 * ldy + j0, ldy, kn, k0 == 0, alpha, out);
    }
  }
}

void gemm_cols(const float* x, int64_t ldx, const void* w, WType wt, int64_t ldw, float* y, int64_t ldy, int m0, int m1, int k,
               int n0, int n1, float alpha, bool acc) {
  switch (wt) {
    case WType::F32: gemm_cols_t<WType::F32>(x, ldx, w, ldw, y, ldy, m0, m1, k, n0, n1, alpha, acc); break;
    case WType::BF16: gemm_cols_t<WType::BF16>(x, ldx, w, ldw, y, ldy, m0, m1, k, n0, n1, alpha, acc); break;
    case WType::F16: gemm_cols_t<WType::F16>(x, ldx, w, ldw, y, ldy, m0, m1, k, n0, n1, alpha, acc); break;
  }
}

}  // namespace
