// Attention kernels, included by kernels_impl.h inside phi4mm::PHI_NS (one copy per ISA build).
// ---- attention -----------------------------------------------------------------------------------------
// Per (head, block of queries): scores S = Q·Kᵀ into scratch, softmax per row in f32 with max subtraction
// (vectorized exp), then O = P·V / Σp. Long query blocks take the scores from K packed once per kv head into
// key panels (no horizontal sums: keys lie along the vector lanes); decode (few queries) reads K in place
// through the dot-product GEMM tile.
#if defined(__AVX512F__)
constexpr int SQ = 6, SV = 4;  // score tile: 6 queries × 4 vectors of keys (24 accumulators)
constexpr int PQ = 4, PV = 5;  // P·V tile: 4 queries × up to 5 vectors of head dims (20 accumulators)
#elif defined(__AVX2__)
constexpr int SQ = 4, SV = 3;
constexpr int PQ = 2, PV = 4;
#else
constexpr int SQ = 2, SV = 2;
constexpr int PQ = 2, PV = 2;
#endif
constexpr int KP = SV * VL;  // keys per packed panel

#if defined(__AVX512F__)
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
#elif defined(__AVX2__)
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
#else
static inline vf vsub(vf a, vf b) { return a - b; }
#endif

// K of kv head kh → panels [⌈tk / KP⌉][d][KP], zero-padded past tk.
static void attn_pack_k(const AttnArgs& p, int kh, float* dst) {
  const int np = (p.tk + KP - 1) / KP;
  const int64_t kstride = (int64_t)p.hkv * p.d;
  for (int pi = 0; pi < np; pi++) {
    float* panel = dst + (int64_t)pi * p.d * KP;
    const int j0 = pi * KP, nj = std::min(KP, p.tk - j0);
    for (int jj = 0; jj < KP; jj++) {
      const float* krow = p.k + (int64_t)(j0 + jj) * kstride + (int64_t)kh * p.d;
      for (int c = 0; c < p.d; c++) panel[c * KP + jj] = jj < nj ? krow[c] : 0.f;
    }
  }
}

// s[i][0..KP) = q_i · k_{panel keys} for mr query rows q + i·ldq.
template <int mr>
static inline void score_tile(const float* q, int64_t ldq, const float* panel, int d, float* s, int64_t lds) {
  vf acc[mr][SV];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int v = 0; v < SV; v++) acc[i][v] = vzero();
  for (int c = 0; c < d; c++) {
    vf kv[SV];
#pragma GCC unroll 8
    for (int v = 0; v < SV; v++) kv[v] = vload(panel + c * KP + v * VL);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      const vf qi = vset1(q[i * ldq + c]);
#pragma GCC unroll 8
      for (int v = 0; v < SV; v++) acc[i][v] = vfma(qi, kv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < SV; v++) vstore(s + i * lds + v * VL, acc[i][v]);
}

static void scores_packed(const float* q, int64_t ldq, int nq, const float* kp, int d, int ncols, float* s, int64_t lds) {
  const int np = (ncols + KP - 1) / KP;
  for (int pi = 0; pi < np; pi++) {
    const float* panel = kp + (int64_t)pi * d * KP;
    for (int i = 0; i < nq; i += SQ) {
      const float* qi = q + i * ldq;
      float* si = s + i * lds + pi * KP;
      switch (std::min(SQ, nq - i)) {
        case 1: score_tile<1>(qi, ldq, panel, d, si, lds); break;
        case 2: if constexpr (SQ >= 2) score_tile<2>(qi, ldq, panel, d, si, lds); break;
        case 3: if constexpr (SQ >= 3) score_tile<3>(qi, ldq, panel, d, si, lds); break;
        case 4: if constexpr (SQ >= 4) score_tile<4>(qi, ldq, panel, d, si, lds); break;
        case 5: if constexpr (SQ >= 5) score_tile<5>(qi, ldq, panel, d, si, lds); break;
        case 6: if constexpr (SQ >= 6) score_tile<6>(qi, ldq, panel, d, si, lds); break;
      }
    }
  }
}

// In place on s[0..n): s = e^(s·scale + mask + bias − max); returns Σ s.
static float softmax_numerators(float* s, int n, float scale, const float* mrow, const float* brow) {
  const vf vs = vset1(scale);
  vf mxv = vset1(-std::numeric_limits<float>::infinity());
  int j = 0;
  for (; j + VL <= n; j += VL) {
    vf x = vmul(vload(s + j), vs);
    if (mrow) x = vadd(x, vload(mrow + j));
    if (brow) x = vadd(x, vload(brow + j));
    vstore(s + j, x);
    mxv = vmax(mxv, x);
  }
  float mx = vhmax(mxv);
  for (int t = j; t < n; t++) {
    float x = s[t] * scale;
    if (mrow) x += mrow[t];
    if (brow) x += brow[t];
    s[t] = x;
    mx = std::max(mx, x);
  }
  const vf vm = vset1(mx);  // max subtraction: no overflow, the largest term is 1
  vf sumv = vzero();
  for (j = 0; j + VL <= n; j += VL) {
    const vf e = vexp(vsub(vload(s + j), vm));
    vstore(s + j, e);
    sumv = vadd(sumv, e);
  }
  float sum = vhsum(sumv);
  if (j < n) {
    const int r = n - j;
    vstore_n(s + j, vexp(vsub(vload_n(s + j, r), vm)), r);
    for (int t = j; t < n; t++) sum += s[t];
  }
  return sum;
}

// o_r[c0 .. c0 + w) = inv_r · Σ_j p_r[j]·v_j[c0 .. c0 + w) for nq query rows at once (each V vector loaded
// once for all of them); nv = ⌈w / VL⌉ vectors, the last one partial when w % VL ≠ 0.
template <int nq, int nv>
static inline void pv_tile(float* o, int64_t ldo, const float* p, int64_t ldp, const float* v, int64_t vstride, int n, int w,
                           const float* inv) {
  const int last = w - (nv - 1) * VL;  // lanes of the last vector, 1..VL
  vf acc[nq][nv];
#pragma GCC unroll 8
  for (int r = 0; r < nq; r++)
#pragma GCC unroll 8
    for (int t = 0; t < nv; t++) acc[r][t] = vzero();
  for (int j = 0; j < n; j++) {
    const float* vj = v + j * vstride;
    vf vv[nv];
#pragma GCC unroll 8
    for (int t = 0; t < nv - 1; t++) vv[t] = vload(vj + t * VL);
    vv[nv - 1] = last == VL ? vload(vj + (nv - 1) * VL) : vload_n(vj + (nv - 1) * VL, last);
#pragma GCC unroll 8
    for (int r = 0; r < nq; r++) {
      const vf pr = vset1(p[r * ldp + j]);
#pragma GCC unroll 8
      for (int t = 0; t < nv; t++) acc[r][t] = vfma(pr, vv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < nq; r++) {
    const vf sc = vset1(inv[r]);
    for (int t = 0; t < nv - 1; t++) vstore(o + r * ldo + t * VL, vmul(acc[r][t], sc));
    vstore_n(o + r * ldo + (nv - 1) * VL, vmul(acc[r][nv - 1], sc), last);
  }
}

template <int nq>
static inline void pv_rows(float* o, int64_t ldo, const float* p, int64_t ldp, const float* v, int64_t vstride, int n, int d,
                           const float* inv) {
  const int nvec = (d + VL - 1) / VL;
  const int chunks = (nvec + PV - 1) / PV;
  const int per = (nvec + chunks - 1) / chunks;  // vectors per chunk, as even as possible
  for (int c0 = 0; c0 < d; c0 += per * VL) {
    const int w = std::min(per * VL, d - c0);
    switch ((w + VL - 1) / VL) {
      case 1: pv_tile<nq, 1>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 2: pv_tile<nq, 2>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 3: if constexpr (PV >= 3) pv_tile<nq, 3>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 4: if constexpr (PV >= 4) pv_tile<nq, 4>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
      case 5: if constexpr (PV >= 5) pv_tile<nq, 5>(o + c0, ldo, p, ldp, v + c0, vstride, n, w, inv); break;
    }
  }
}

// One block of score rows (see AttnBlock): S = Q·Kᵀ, softmax, O = P·V / Σp. scratch: rows of lds floats.
static void attention(const AttnArgs& p, const float* kpacked, const AttnBlock& blk, float* scratch, int64_t lds) {
  const int d = p.d, group = p.h / p.hkv, kh = blk.head / group, nq = blk.rows;
  const bool by_head = blk.heads_as_rows;  // rows: heads blk.head.. of query i0, else queries i0.. of blk.head
  const int64_t kstride = (int64_t)p.hkv * d;
  const int64_t ldq = by_head ? d : (int64_t)p.h * d;           // q and out row stride
  const int64_t ldb = by_head ? (int64_t)p.tq * p.tk : p.tk;    // bias row stride
  const int di = by_head ? 0 : 1;                                // query index step per row
  const float* q = p.q + ((int64_t)blk.i0 * p.h + blk.head) * d;
  float* out = p.out + ((int64_t)blk.i0 * p.h + blk.head) * d;
  const float* vbase = p.v + (int64_t)kh * d;
  auto limit_of = [&](int i) {
    return p.causal_offset < 0 ? p.tk : (int)std::max<int64_t>(0, std::min<int64_t>(p.tk, p.causal_offset + i + 1));
  };
  const int ncols = limit_of(blk.i0 + (nq - 1) * di);  // the widest row of the block (limits grow with i)
  if (ncols == 0) {  // no visible key: as the reference, an empty sum
    for (int r = 0; r < nq; r++) std::fill(out + r * ldq, out + r * ldq + d, 0.f);
    return;
  }
  if (d == 0) return;
  if (kpacked) {
    scores_packed(q, ldq, nq, kpacked, d, ncols, scratch, lds);
  } else {
    GemmArgs g{q, ldq, p.k + (int64_t)kh * d, kstride, WType::F32, scratch, lds, nullptr, nq, ncols, d};
    gemm_nt_t<WType::F32>(g, 0, ncols);
  }
  float inv[PQ];
  for (int r0 = 0; r0 < nq; r0 += PQ) {
    const int nr = std::min(PQ, nq - r0);
    for (int r = 0; r < nr; r++) {
      const int row = r0 + r, i = blk.i0 + row * di, limit = limit_of(i);
      float* s = scratch + (int64_t)row * lds;
      const float* mrow = p.mask ? p.mask + (int64_t)i * p.tk : nullptr;
      const float* brow = p.bias ? p.bias + ((int64_t)blk.head * p.tq + blk.i0) * p.tk + row * ldb : nullptr;
      inv[r] = limit > 0 ? 1.f / softmax_numerators(s, limit, p.scale, mrow, brow) : 0.f;
      std::fill(s + limit, s + ncols, 0.f);  // causal rows of one block share the key range [0, ncols)
    }
    float* o = out + r0 * ldq;
    const float* pr = scratch + (int64_t)r0 * lds;
    switch (nr) {
      case 1: pv_rows<1>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
      case 2: pv_rows<2>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
      case 3: if constexpr (PQ >= 3) pv_rows<3>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
      case 4: if constexpr (PQ >= 4) pv_rows<4>(o, ldq, pr, lds, vbase, kstride, ncols, d, inv); break;
    }
  }
}

