// Paged attention over the KV pool (device.h KvPool): scores, softmax and P·V of one work item, included by
// device_impl.h inside its ISA namespace.
// ---- paged attention ----------------------------------------------------------------------------------------
// Stored K/V values [c, c + VL) as f32, read in place: f32 as is, f16 through F16C, q8_0 as f16(d)·q in f32
// (what dequantize_row_q8_0 gives). c is a multiple of VL, so a vector never straddles a q8_0 group (VL | 32).
template <KvType T>
inline vf kv_vec(const uint8_t* row, int c, int groups) {
  if constexpr (T == KvType::F32) return vload(reinterpret_cast<const float*>(row) + c);
  else if constexpr (T == KvType::F16) return vload_f16(reinterpret_cast<const uint16_t*>(row) + c);
  else {
    const float d = fp16_to_fp32(load_u16(row + 2 * (c / QK8_0)));
    return vmul(vset1(d), vload_i8(reinterpret_cast<const int8_t*>(row + 2 * groups) + c));
  }
}
// The last n < VL values. f32/f16: zero-filled lanes past them; q8_0: a whole vector (≤ VL − 1 bytes past the
// row, inside the pool's KV_ROW_OVERREAD), whose extra lanes meet zero query lanes or are never stored.
template <KvType T>
inline vf kv_tail(const uint8_t* row, int c, int n, int groups) {
  if constexpr (T == KvType::F16) {
    alignas(64) uint16_t h[VL] = {};
    std::memcpy(h, reinterpret_cast<const uint16_t*>(row) + c, n * sizeof(uint16_t));
    return vload_f16(h);
  } else if constexpr (T == KvType::Q8_0) {
    return kv_vec<T>(row, c, groups);
  }
  return vload_n(reinterpret_cast<const float*>(row) + c, n);
}

// s_r = q_r · k over d for nr rows, each K vector loaded (and converted) once for all of them; each row's
// accumulation is the same chain of FMAs whatever nr is.
template <int nr, KvType T>
inline void dot_rows(const float* const* q, const uint8_t* k, int d, int groups, float* out) {
  vf acc[nr];
  for (int r = 0; r < nr; r++) acc[r] = vzero();
  int c = 0;
  for (; c + VL <= d; c += VL) {
    const vf kv = kv_vec<T>(k, c, groups);
    for (int r = 0; r < nr; r++) acc[r] = vfma(vload(q[r] + c), kv, acc[r]);
  }
  if (c < d) {
    const vf kv = kv_tail<T>(k, c, d - c, groups);
    for (int r = 0; r < nr; r++) acc[r] = vfma(vload_n(q[r] + c, d - c), kv, acc[r]);
  }
  for (int r = 0; r < nr; r++) out[r] = vhsum(acc[r]);
}

// Keys this far ahead are prefetched: a kv head's rows are contiguous within a block (KvPool::row), but the next
// block of the table can lie anywhere in the pool. 16 keys (4 KiB of f16 rows at head_dim 128) against 6: decode
// attention at 3,072 keys from DRAM 775–986 → 689–692 µs per layer at 1 thread (bench/, alternating builds).
constexpr int PREFETCH_KEYS = 16;
inline void prefetch_row(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o);
}

#if defined(__AVX512F__)
constexpr int PQ = 4, PV = 4;  // P·V register tile: 4 score rows × 4 vectors of head dims
#elif defined(__AVX2__)
constexpr int PQ = 3, PV = 4;
#else
constexpr int PQ = 2, PV = 2;
#endif
template <KvType T>
void scores_by_key(const KvPool& kv, const uint8_t* const* krows, int ncols, int first_key_row, int group, int rows,
            const float* const* q, float* s, int64_t lds) {
  for (int j = 0; j < ncols; j++) {
    if (j + PREFETCH_KEYS < ncols) prefetch_row(krows[j + PREFETCH_KEYS], kv.row_bytes);
    int rr = std::max(0, (j - first_key_row) * group);  // first score row with limit > j
    for (; rr < rows; rr += 4) {
      const int nr = std::min(4, rows - rr);
      float dots[4];
      switch (nr) {
        case 1: dot_rows<1, T>(q + rr, krows[j], kv.head_dim, kv.q8_groups, dots); break;
        case 2: dot_rows<2, T>(q + rr, krows[j], kv.head_dim, kv.q8_groups, dots); break;
        case 3: dot_rows<3, T>(q + rr, krows[j], kv.head_dim, kv.q8_groups, dots); break;
        default: dot_rows<4, T>(q + rr, krows[j], kv.head_dim, kv.q8_groups, dots); break;
      }
      for (int t = 0; t < nr; t++) s[(int64_t)(rr + t) * lds + j] = dots[t];
    }
  }
}

// Score tiles: SK keys × up to PQ score rows, each key's vectors converted once per tile into a small f32
// buffer (at most SCORE_KF_MAX head dims; larger heads take the key-by-key loop). A tile loads PQ query and SK
// key vectors per PQ·SK FMAs where the key-by-key loop loaded nr + 1 per nr.
constexpr int SK = 4;
constexpr int SCORE_KF_MAX = 256;

// s[r][t] = q_r · key t for nr rows and SK keys, key(t, c, n) giving key t's vector at dims [c, c + n) (n < VL:
// the last, partial one): per element the FMA chain and the final lane sum of dot_rows (the same values in the
// same order), so a score does not depend on the tiling or on where the key vectors come from.
template <int nr, class Key>
inline void dot_tile(const float* const* q, Key key, int d, float (*out)[SK]) {
  vf acc[nr][SK];
  for (int r = 0; r < nr; r++)
    for (int t = 0; t < SK; t++) acc[r][t] = vzero();
  int c = 0;
  for (; c + VL <= d; c += VL) {
    vf qv[nr];
    for (int r = 0; r < nr; r++) qv[r] = vload(q[r] + c);
    for (int t = 0; t < SK; t++) {
      const vf kv = key(t, c, VL);
      for (int r = 0; r < nr; r++) acc[r][t] = vfma(qv[r], kv, acc[r][t]);
    }
  }
  if (c < d) {
    vf qv[nr];
    for (int r = 0; r < nr; r++) qv[r] = vload_n(q[r] + c, d - c);
    for (int t = 0; t < SK; t++) {
      const vf kv = key(t, c, d - c);
      for (int r = 0; r < nr; r++) acc[r][t] = vfma(qv[r], kv, acc[r][t]);
    }
  }
  // The tile's lane sums in one batched reduction with vhsum's tree (the same bits, a fraction of the shuffles).
  static_assert(PQ * SK <= 16, "vhsum_each16 reduces up to 16 sums");
  vf all[16];
  for (int k = 0; k < 16; k++) all[k] = k / SK < nr ? acc[k / SK][k % SK] : vzero();
  float sums[16];
  vhsum_each16(all, sums);
  for (int r = 0; r < nr; r++)
    for (int t = 0; t < SK; t++) out[r][t] = sums[SK * r + t];
}

// One key's vectors as dot_rows reads them (kv_vec, then kv_tail for the last d mod VL dims).
template <KvType T>
inline void convert_key(const uint8_t* k, int d, int groups, float* dst) {
  int c = 0;
  for (; c + VL <= d; c += VL) vstore(dst + c, kv_vec<T>(k, c, groups));
  if (c < d) vstore(dst + c, kv_tail<T>(k, c, d - c, groups));
}

// The score tiles of rows [rr, rr + nr) for keys [j0, j0 + nk), into s.
template <class Key>
inline void score_tile(const float* const* q, Key key, int d, int rr, int nr, int j0, int nk, float* s, int64_t lds) {
  float dots[PQ][SK];
  switch (nr) {
    case 1: dot_tile<1>(q + rr, key, d, dots); break;
    case 2: dot_tile<2>(q + rr, key, d, dots); break;
    case 3: if constexpr (PQ >= 3) dot_tile<3>(q + rr, key, d, dots); break;
    default: if constexpr (PQ >= 4) dot_tile<4>(q + rr, key, d, dots); break;
  }
  for (int r = 0; r < nr; r++)
    for (int t = 0; t < nk; t++) s[(int64_t)(rr + r) * lds + j0 + t] = dots[r][t];
}

template <KvType T>
void scores(const KvPool& kv, const uint8_t* const* krows, int ncols, int first_key_row, int group, int rows,
            const float* const* q, float* s, int64_t lds) {
  if (kv.head_dim > SCORE_KF_MAX) return scores_by_key<T>(kv, krows, ncols, first_key_row, group, rows, q, s, lds);
  const int d = kv.head_dim, g = kv.q8_groups;
  if (rows <= PQ) {
    // One row group (a decode step): each key vector is used by these rows only, so the tile reads it from the
    // store directly; a converted copy would cost a store and a load per vector. Past the last key the tile
    // reads key j0 again: computed, never stored.
    for (int j0 = 0; j0 < ncols; j0 += SK) {
      const int nk = std::min(SK, ncols - j0);
      const uint8_t* kr[SK];
      for (int t = 0; t < SK; t++) {
        if (j0 + t + PREFETCH_KEYS < ncols) prefetch_row(krows[j0 + t + PREFETCH_KEYS], kv.row_bytes);
        kr[t] = krows[j0 + (t < nk ? t : 0)];
      }
      auto key = [&](int t, int c, int n) { return n == VL ? kv_vec<T>(kr[t], c, g) : kv_tail<T>(kr[t], c, n, g); };
      score_tile(q, key, d, 0, rows, j0, nk, s, lds);
    }
    return;
  }
  alignas(64) float kf[SK][SCORE_KF_MAX];
  auto key = [&](int t, int c, int) { return vload(kf[t] + c); };
  for (int j0 = 0; j0 < ncols; j0 += SK) {
    const int nk = std::min(SK, ncols - j0);
    for (int t = 0; t < SK; t++) {
      if (j0 + t + PREFETCH_KEYS < ncols) prefetch_row(krows[j0 + t + PREFETCH_KEYS], kv.row_bytes);
      if (t < nk) convert_key<T>(krows[j0 + t], d, g, kf[t]);
      else std::fill(kf[t], kf[t] + SCORE_KF_MAX, 0.f);  // past the last key: computed, never stored
    }
    // Rows from the first that sees key j0. A row that stops seeing the tile's later keys still gets their
    // scores, past its own limit, where softmax_row never reads (the block's range past it is zeroed there).
    for (int rr = std::max(0, (j0 - first_key_row) * group); rr < rows; rr += PQ) score_tile(q, key, d, rr, std::min(PQ, rows - rr), j0, nk, s, lds);
  }
}

// In place on s[0..n): s = e^(s·scale − max) with the GEMM kernels' exp; returns 1 / Σ.
inline float softmax_row(float* s, int n, float scale, void (*exp)(const float*, float*, int)) {
  const vf vs = vset1(scale);
  vf mxv = vset1(-INFINITY);
  int j = 0;
  for (; j + VL <= n; j += VL) {
    const vf x = vmul(vload(s + j), vs);
    vstore(s + j, x);
    mxv = vmax(mxv, x);
  }
  float mx = vhmax(mxv);
  for (int t = j; t < n; t++) mx = std::max(mx, s[t] = s[t] * scale);
  const vf vm = vset1(mx);
  for (j = 0; j + VL <= n; j += VL) vstore(s + j, vsub(vload(s + j), vm));
  for (int t = j; t < n; t++) s[t] -= mx;
  exp(s, s, n);
  vf sumv = vzero();
  for (j = 0; j + VL <= n; j += VL) sumv = vadd(sumv, vload(s + j));
  float sum = vhsum(sumv);
  for (int t = j; t < n; t++) sum += s[t];
  return 1.f / sum;
}

constexpr int PVA = std::max(PV, QK8_0 / VL);  // vectors of one chunk: a q8_0 chunk is at least one block

// The running sums o_r[c0, c0 + w) += Σ_{j0 ≤ j < j1} p_r[j] · v_j[c0, c0 + w) for nq score rows, started from 0
// when `first`, else from what o_r holds. Over consecutive key ranges this is one FMA chain per value, the same
// as a single pass over all keys: the sums are stored and reloaded as f32, unchanged (p_r is zero past row r's
// own limit, and adding 0·v to a sum that is never −0 is exact, so a row's result does not depend on n).
// `pf`: prefetch the V rows ahead (the first pass over a key range; later passes find them in L1/L2).
template <int nq>
void pv_chunk(const KvPool& kv, const uint8_t* const* vrows, float* const* o, const float* const* p, int j0, int j1, int n,
              int c0, int w, bool first, bool pf) {
  const int nv = (w + VL - 1) / VL, last = w - (nv - 1) * VL;
  vf acc[nq][PVA];
  for (int r = 0; r < nq; r++)
    for (int t = 0; t < nv; t++)
      acc[r][t] = first ? vzero() : t == nv - 1 && last < VL ? vload_n(o[r] + c0 + t * VL, last) : vload(o[r] + c0 + t * VL);
  alignas(64) float tmp[PVA * VL];
  for (int j = j0; j < j1; j++) {
    if (pf && j + PREFETCH_KEYS < n) prefetch_row(vrows[j + PREFETCH_KEYS], kv.row_bytes);
    vf vv[PVA];
    switch (kv.type) {
      case KvType::F32: {
        const float* v = reinterpret_cast<const float*>(vrows[j]) + c0;
        for (int t = 0; t < nv; t++) vv[t] = t == nv - 1 && last < VL ? vload_n(v + t * VL, last) : vload(v + t * VL);
        break;
      }
      case KvType::F16: {
        const uint16_t* v = reinterpret_cast<const uint16_t*>(vrows[j]) + c0;
        if (last == VL) {
          for (int t = 0; t < nv; t++) vv[t] = vload_f16(v + t * VL);
        } else {
          from_f16(v, tmp, w);
          for (int t = 0; t < nv; t++) vv[t] = vload(tmp + t * VL);
        }
        break;
      }
      case KvType::Q8_0:  // c0 is a multiple of 32; a partial last vector reads inside KV_ROW_OVERREAD
        for (int t = 0; t < nv; t++) vv[t] = kv_vec<KvType::Q8_0>(vrows[j], c0 + t * VL, kv.q8_groups);
        break;
    }
    for (int r = 0; r < nq; r++) {
      const vf pr = vset1(p[r][j]);
      for (int t = 0; t < nv; t++) acc[r][t] = vfma(pr, vv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < nq; r++) {
    for (int t = 0; t < nv - 1; t++) vstore(o[r] + c0 + t * VL, acc[r][t]);
    vstore_n(o[r] + c0 + (nv - 1) * VL, acc[r][nv - 1], last);
  }
}

// pv_chunk for a whole chunk of NV vectors of one store type: the type and width known at compile time keep
// the nq × NV sums in registers (the general loop above keeps them in memory, reloaded every key). The same FMA
// chain per value, so the same bits.
template <int nq, int NV, KvType T>
void pv_chunk_full(const KvPool& kv, const uint8_t* const* vrows, float* const* o, const float* const* p, int j0, int j1, int n,
                   int c0, bool first, bool pf) {
  vf acc[nq][NV];
  for (int r = 0; r < nq; r++)
    for (int t = 0; t < NV; t++) acc[r][t] = first ? vzero() : vload(o[r] + c0 + t * VL);
  for (int j = j0; j < j1; j++) {
    if (pf && j + PREFETCH_KEYS < n) prefetch_row(vrows[j + PREFETCH_KEYS], kv.row_bytes);
    vf vv[NV];
    for (int t = 0; t < NV; t++) vv[t] = kv_vec<T>(vrows[j], c0 + t * VL, kv.q8_groups);
    for (int r = 0; r < nq; r++) {
      const vf pr = vset1(p[r][j]);
      for (int t = 0; t < NV; t++) acc[r][t] = vfma(pr, vv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < nq; r++)
    for (int t = 0; t < NV; t++) vstore(o[r] + c0 + t * VL, acc[r][t]);
}

// Head dims per P·V chunk: PV vectors, or for q8_0 whole 32-value blocks within PVA vectors.
template <KvType T>
constexpr int pv_step() { return T == KvType::Q8_0 ? PVA * VL / QK8_0 * QK8_0 : PV * VL; }

template <int nq, KvType T>
void pv_chunk_any(const KvPool& kv, const uint8_t* const* vrows, float* const* o, const float* const* p, int j0, int j1, int n,
                  int c0, int w, bool first, bool pf) {
  constexpr int NV = pv_step<T>() / VL;
  if (w == NV * VL) pv_chunk_full<nq, NV, T>(kv, vrows, o, p, j0, j1, n, c0, first, pf);
  else pv_chunk<nq>(kv, vrows, o, p, j0, j1, n, c0, w, first, pf);
}

template <int nq>
void pv_chunk_typed(const KvPool& kv, const uint8_t* const* vrows, float* const* o, const float* const* p, int j0, int j1, int n,
                    int c0, int w, bool first, bool pf) {
  switch (kv.type) {
    case KvType::F32: return pv_chunk_any<nq, KvType::F32>(kv, vrows, o, p, j0, j1, n, c0, w, first, pf);
    case KvType::F16: return pv_chunk_any<nq, KvType::F16>(kv, vrows, o, p, j0, j1, n, c0, w, first, pf);
    case KvType::Q8_0: return pv_chunk_any<nq, KvType::Q8_0>(kv, vrows, o, p, j0, j1, n, c0, w, first, pf);
  }
}

// Keys per P·V pass: every row group and head-dim chunk of an item runs over one range of V rows before the next
// range, so V is read from memory once per item instead of once per chunk (4 times at head_dim 128), and the
// range (16 KiB of f16 rows at head_dim 128) stays in L1/L2 for the other passes.
constexpr int PV_KEYS_PER_PASS = 64;

void paged_attention(const PagedArgs& a, const PagedItem& it, float* scratch, int64_t lds, void (*exp)(const float*, float*, int)) {
  const KvPool& kv = *a.kv;
  const SeqDesc& s = a.seqs[it.seq];
  const int d = kv.head_dim, group = a.n_heads / kv.n_kv, nq = it.r1 - it.r0, rows = nq * group;
  const int ncols = s.start + it.r1;  // keys seen by the last query row
  // Score row rr = (query it.r0 + rr / group, head kh·group + rr % group); limits grow with rr.
  auto orow = [&](int rr) { return a.out + (int64_t)(s.row_start + it.r0 + rr / group) * a.n_heads * d + (int64_t)(it.kh * group + rr % group) * d; };
  auto limit = [&](int rr) { return s.start + it.r0 + rr / group + 1; };
  // Scratch (paged_scratch_floats): score rows [rows][lds], then pointers (2 floats each): K and V rows of
  // positions [0, ncols), the score rows' queries; then the score rows' 1/Σp.
  const uint8_t** krows = reinterpret_cast<const uint8_t**>(scratch + (int64_t)rows * lds);
  const uint8_t** vrows = krows + lds;
  const float** q = reinterpret_cast<const float**>(vrows + lds);
  float* inv = reinterpret_cast<float*>(q + rows);
  for (int j0 = 0; j0 < ncols; j0 += kv.block_size) {
    const int blk = s.blocks[j0 / kv.block_size], n = std::min(kv.block_size, ncols - j0);
    const uint8_t* k0 = kv.row(kv.k, a.layer, blk, 0, it.kh);
    const uint8_t* v0 = kv.row(kv.v, a.layer, blk, 0, it.kh);
    for (int t = 0; t < n; t++) { krows[j0 + t] = k0 + t * kv.row_bytes; vrows[j0 + t] = v0 + t * kv.row_bytes; }
  }
  for (int rr = 0; rr < rows; rr++)
    q[rr] = a.q + (int64_t)(s.row_start + it.r0 + rr / group) * a.ldq + a.q_offset + (int64_t)(it.kh * group + rr % group) * d;

  // S = Q·Kᵀ, key by key: each K row is read once and dotted with every score row that sees it.
  switch (kv.type) {
    case KvType::F32: scores<KvType::F32>(kv, krows, ncols, s.start + it.r0, group, rows, q, scratch, lds); break;
    case KvType::F16: scores<KvType::F16>(kv, krows, ncols, s.start + it.r0, group, rows, q, scratch, lds); break;
    case KvType::Q8_0: scores<KvType::Q8_0>(kv, krows, ncols, s.start + it.r0, group, rows, q, scratch, lds); break;
  }
  // Softmax per score row over its own keys; the rest of its row group's key range becomes 0.
  for (int r0 = 0; r0 < rows; r0 += PQ) {
    const int nr = std::min(PQ, rows - r0);
    for (int r = 0; r < nr; r++) {
      float* sr = scratch + (int64_t)(r0 + r) * lds;
      const int n = limit(r0 + r);
      inv[r0 + r] = softmax_row(sr, n, a.scale, exp);
      std::fill(sr + n, sr + limit(r0 + nr - 1), 0.f);
    }
  }
  // O = P·V, key range by key range (PV_KEYS_PER_PASS), the running sums kept in the output rows; then · 1/Σp.
  // Head dims go in chunks of ≤ PV vectors (q8_0 chunks stay on 32-value block boundaries).
  const int step = kv.type == KvType::Q8_0 ? pv_step<KvType::Q8_0>() : pv_step<KvType::F32>();
  for (int j0 = 0; j0 < ncols; j0 += PV_KEYS_PER_PASS) {
    bool pf = true;  // the first pass over this key range streams it
    for (int r0 = 0; r0 < rows; r0 += PQ) {
      const int nr = std::min(PQ, rows - r0), n = limit(r0 + nr - 1);  // keys this row group sees
      if (j0 >= n) continue;
      const int j1 = std::min(n, j0 + PV_KEYS_PER_PASS);
      const float* p[PQ];
      float* o[PQ];
      for (int r = 0; r < nr; r++) p[r] = scratch + (int64_t)(r0 + r) * lds, o[r] = orow(r0 + r);
      for (int c0 = 0; c0 < d; c0 += step) {
        const int w = std::min(step, d - c0);
        switch (nr) {
          case 1: pv_chunk_typed<1>(kv, vrows, o, p, j0, j1, n, c0, w, j0 == 0, pf); break;
          case 2: pv_chunk_typed<2>(kv, vrows, o, p, j0, j1, n, c0, w, j0 == 0, pf); break;
          case 3: if constexpr (PQ >= 3) pv_chunk_typed<3>(kv, vrows, o, p, j0, j1, n, c0, w, j0 == 0, pf); break;
          case 4: if constexpr (PQ >= 4) pv_chunk_typed<4>(kv, vrows, o, p, j0, j1, n, c0, w, j0 == 0, pf); break;
        }
        pf = false;
      }
    }
  }
  for (int rr = 0; rr < rows; rr++) {
    float* o = orow(rr);
    const vf sc = vset1(inv[rr]);
    int c = 0;
    for (; c + VL <= d; c += VL) vstore(o + c, vmul(vload(o + c), sc));
    if (c < d) vstore_n(o + c, vmul(vload_n(o + c, d - c), sc), d - c);
  }
}
