// N-API side of the paged KV pool: allocation (native memory, 2 MiB aligned and huge-page advised for large
// pools), kvWrite at per-sequence positions through block tables, whole-block copies, and paged attention over
// several sequences split into (sequence, kv head, query block) work items on the pool.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "device_napi.h"

namespace phi4mm {
namespace {
using namespace dev;

constexpr size_t HUGE_PAGE = 2u << 20;
// Score rows (queries × heads of one kv group) per attention item: bounds the per-thread scratch (rows ×
// context floats) while keeping the group's K/V rows converted once per item.
constexpr int ITEM_SCORE_ROWS = 32;

void free_pool(Napi::Env env, KvPool* p) {
  if (p->mmapped) munmap(p->mapping, p->mapping_bytes);
  else std::free(p->mapping);
  Napi::MemoryManagement::AdjustExternalMemory(env, -(int64_t)p->mapping_bytes);
  delete p;
}

KvPool& pool_arg(const Napi::CallbackInfo& info, int i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "kv must be a KV pool from allocKv");
  KvPool* p = info[i].As<Napi::External<KvPool>>().Data();
  if (!p) throw Napi::TypeError::New(info.Env(), "kv must be a KV pool from allocKv");
  return *p;
}

// kvAlloc(type (0 f32, 1 f16, 2 q8_0), layers, numBlocks, blockSize, nKvHeads, headDim) → pool handle
Napi::Value KvAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int type = count(info, 0, "type"), layers = count(info, 1, "layers"), blocks = count(info, 2, "numBlocks"),
            bs = count(info, 3, "blockSize"), nkv = count(info, 4, "nKvHeads"), d = count(info, 5, "headDim");
  if (type > 2) throw range(env, "allocKv: dtype must be 0 (f32), 1 (f16) or 2 (q8_0)");
  if (layers < 1 || blocks < 1 || bs < 1 || nkv < 1 || d < 1) throw range(env, "allocKv: layers, numBlocks, blockSize, nKvHeads and headDim must be positive");
  const KvFormat& f = kv_format((KvType)type);
  auto p = std::make_unique<KvPool>();
  p->type = (KvType)type;
  p->layers = layers; p->blocks = blocks; p->block_size = bs; p->n_kv = nkv; p->head_dim = d;
  p->row_bytes = f.row_bytes(d);
  p->q8_groups = (d + QK8_0 - 1) / QK8_0;
  p->block_bytes = (int64_t)bs * nkv * p->row_bytes;
  const double each_d = (double)layers * blocks * p->block_bytes;
  if (each_d > 1e15) throw range(env, "allocKv: pool too large");
  const size_t each = (size_t)each_d + KV_ROW_OVERREAD;
  const bool large = each >= HUGE_PAGE;
  // K and V each start on a 2 MiB boundary, so transparent huge pages can back them from the first byte.
  const size_t span = large ? (each + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : (each + 63) / 64 * 64;
  uint8_t* base;
  if (large) {
    p->mapping_bytes = 2 * span + HUGE_PAGE;
    void* m = mmap(nullptr, p->mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw Napi::Error::New(env, "allocKv: cannot map " + std::to_string(p->mapping_bytes >> 20) + " MiB for the KV pool; lower the KV budget");
    p->mapping = static_cast<uint8_t*>(m);
    p->mmapped = true;
    base = reinterpret_cast<uint8_t*>(((uintptr_t)m + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
    madvise(base, 2 * span, MADV_HUGEPAGE);  // advice only: fine if THP is off
  } else {
    p->mapping_bytes = 2 * span;
    p->mapping = static_cast<uint8_t*>(std::aligned_alloc(64, p->mapping_bytes));
    if (!p->mapping) throw Napi::Error::New(env, "allocKv: out of memory");
    std::memset(p->mapping, 0, p->mapping_bytes);
    p->mmapped = false;
    base = p->mapping;
  }
  p->k = base;
  p->v = base + span;
  Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)p->mapping_bytes);
  KvPool* raw = p.release();
  Napi::External<KvPool> h = Napi::External<KvPool>::New(env, raw, free_pool);
  return h;
}

// The ragged batch: the first nSeqs entries of meta [≥ nSeqs × 5] = rowStart, rows, start, tableOffset,
// tableLength into the flat tables (the caller reuses both arrays from call to call: a fresh small typed array
// costs ~1–2 µs to hand to N-API, as V8 first moves it off its heap).
std::vector<SeqDesc> seqs_arg(const Napi::CallbackInfo& info, int mi, int ti, int ni, const KvPool& kv, int* total_rows) {
  Napi::Env env = info.Env();
  const Bytes meta = typed(info, mi, "seq meta"), tables = typed(info, ti, "block tables");
  const int nseq = count(info, ni, "nSeqs");
  if ((uint64_t)nseq * 20 > meta.size) throw range(env, "seq meta holds " + std::to_string(meta.size / 20) + " sequences (5 int32 each), fewer than nSeqs " + std::to_string(nseq));
  const int32_t* m = reinterpret_cast<const int32_t*>(meta.data);
  const int32_t* t = reinterpret_cast<const int32_t*>(tables.data);
  const int64_t nt = (int64_t)(tables.size / 4);
  std::vector<SeqDesc> seqs(nseq);
  int rows_end = 0;
  for (size_t s = 0; s < seqs.size(); s++) {
    const int32_t* e = m + 5 * s;
    const auto who = [s] { return "sequence " + std::to_string(s); };
    if (e[0] < 0 || e[1] < 0 || e[2] < 0) throw range(env, who() + ": bad sequence rows (rowStart " + std::to_string(e[0]) + ", start " + std::to_string(e[2]) + ", rows " + std::to_string(e[1]) + ")");
    if (e[3] < 0 || e[4] < 0 || (int64_t)e[3] + e[4] > nt) throw range(env, who() + ": block table outside the tables array");
    const int64_t need_blocks = ((int64_t)e[2] + e[1] + kv.block_size - 1) / kv.block_size;
    if (e[4] < need_blocks)
      throw range(env, who() + ": the block table has " + std::to_string(e[4]) + " blocks; positions [0, " + std::to_string((int64_t)e[2] + e[1]) + ") need " + std::to_string(need_blocks) + " of " + std::to_string(kv.block_size) + " tokens");
    for (int64_t b = 0; b < need_blocks; b++)
      if (t[e[3] + b] < 0 || t[e[3] + b] >= kv.blocks)
        throw range(env, who() + ": block id " + std::to_string(t[e[3] + b]) + " (entry " + std::to_string(b) + ") is outside the pool [0, " + std::to_string(kv.blocks) + ")");
    seqs[s] = SeqDesc{e[0], e[1], e[2], t + e[3]};
    rows_end = std::max<int64_t>(rows_end, (int64_t)e[0] + e[1]);
  }
  *total_rows = rows_end;
  return seqs;
}

int layer_arg(const Napi::CallbackInfo& info, int i, const KvPool& kv) {
  const int layer = count(info, i, "layer");
  if (layer >= kv.layers) throw range(info.Env(), "layer " + std::to_string(layer) + " outside [0, " + std::to_string(kv.layers) + ")");
  return layer;
}

// One q8_0 KV row: each group of 32 (the last one zero-padded) through ggml's quantize_row_q8_0; the scales
// first, then the d int8 values.
void quantize_q8_0_row(const float* x, uint8_t* dst, int d, int groups) {
  for (int g = 0; g < groups; g++) {
    const int n = std::min(QK8_0, d - g * QK8_0);
    float blk[QK8_0] = {};
    std::memcpy(blk, x + g * QK8_0, n * sizeof(float));
    BlockQ8_0 q;
    quantize_row_q8_0(blk, reinterpret_cast<uint8_t*>(&q), QK8_0);
    std::memcpy(dst + 2 * g, &q.d, 2);
    std::memcpy(dst + 2 * groups + g * QK8_0, q.qs, n);
  }
}

// kvWrite(kv, layer, src, rowStride, kOffset, vOffset, meta, tables, nSeqs)
Napi::Value KvWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  KvPool& kv = pool_arg(info, 0);
  const int layer = layer_arg(info, 1, kv);
  const Bytes src = typed(info, 2, "src");
  const int ld = count(info, 3, "rowStride"), koff = count(info, 4, "kOffset"), voff = count(info, 5, "vOffset");
  int rows = 0;
  const std::vector<SeqDesc> seqs = seqs_arg(info, 6, 7, 8, kv, &rows);
  const int64_t width = (int64_t)kv.n_kv * kv.head_dim;
  if (koff + width > ld || voff + width > ld) throw range(env, "kvWrite: K or V columns end past the row stride " + std::to_string(ld));
  if (rows > 0) need(env, src, ((uint64_t)(rows - 1) * ld + ld) * 4, "kvWrite src");
  // Items: (sequence, row); each converts nKv K rows and nKv V rows.
  std::vector<std::pair<int, int>> items;
  for (size_t s = 0; s < seqs.size(); s++)
    for (int r = 0; r < seqs[s].rows; r++) items.push_back({(int)s, r});
  const DeviceKernels& D = active_device_kernels();
  const float* x = reinterpret_cast<const float*>(src.data);
  const int d = kv.head_dim;
  parallel_for((int)items.size(), 2 * width, [&](int i0, int i1) {
    for (int i = i0; i < i1; i++) {
      const SeqDesc& s = seqs[items[i].first];
      const int r = items[i].second, pos = s.start + r, blk = s.blocks[pos / kv.block_size], slot = pos % kv.block_size;
      const float* row = x + (int64_t)(s.row_start + r) * ld;
      for (int which = 0; which < 2; which++) {
        const float* from = row + (which ? voff : koff);
        uint8_t* base = which ? kv.v : kv.k;
        for (int kh = 0; kh < kv.n_kv; kh++) {
          uint8_t* dst = kv.row(base, layer, blk, slot, kh);
          const float* f = from + (int64_t)kh * d;
          switch (kv.type) {
            case KvType::F32: std::memcpy(dst, f, (size_t)d * 4); break;
            case KvType::F16: D.to_f16(f, reinterpret_cast<uint16_t*>(dst), d); break;
            case KvType::Q8_0: quantize_q8_0_row(f, dst, d, kv.q8_groups); break;
          }
        }
      }
    }
  });
  return env.Undefined();
}

// kvCopyBlocks(kv, src, dst): block src[i] → dst[i] in every layer, K and V.
Napi::Value KvCopyBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  KvPool& kv = pool_arg(info, 0);
  const Bytes src = typed(info, 1, "src"), dst = typed(info, 2, "dst");
  if (src.size != dst.size) throw range(env, "kvCopyBlocks: src and dst hold different numbers of blocks");
  const int n = (int)(src.size / 4);
  const int32_t* s = reinterpret_cast<const int32_t*>(src.data);
  const int32_t* t = reinterpret_cast<const int32_t*>(dst.data);
  for (const int32_t* ids : {s, t})
    for (int i = 0; i < n; i++)
      if (ids[i] < 0 || ids[i] >= kv.blocks)
        throw range(env, "kvCopyBlocks: block id " + std::to_string(ids[i]) + " is outside the pool [0, " + std::to_string(kv.blocks) + ")");
  parallel_for(kv.layers, (int64_t)n * kv.block_bytes / 2, [&](int l0, int l1) {
    for (int l = l0; l < l1; l++)
      for (int i = 0; i < n; i++)
        for (uint8_t* base : {kv.k, kv.v}) std::memmove(kv.row(base, l, t[i], 0, 0), kv.row(base, l, s[i], 0, 0), (size_t)kv.block_bytes);
  });
  return env.Undefined();
}

// kvReadBlock(kv, layer, which (0 K, 1 V), block, out Uint8Array): a block's stored bytes (tests, debugging).
Napi::Value KvReadBlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  KvPool& kv = pool_arg(info, 0);
  const int layer = layer_arg(info, 1, kv), which = count(info, 2, "which"), block = count(info, 3, "block");
  const Bytes out = typed(info, 4, "out");
  if (which > 1 || block >= kv.blocks) throw range(env, "kvReadBlock: which must be 0 or 1 and block inside the pool");
  need(env, out, (uint64_t)kv.block_bytes, "kvReadBlock out");
  std::memcpy(out.data, kv.row(which ? kv.v : kv.k, layer, block, 0, 0), (size_t)kv.block_bytes);
  return env.Undefined();
}

thread_local std::vector<float> g_attn_scratch;  // per calling JS thread (main, engine worker)

// pagedAttention(q, qStride, qOffset, kv, layer, meta, tables, nHeads, scale, out, nSeqs)
Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes q = typed(info, 0, "q"), out = typed(info, 9, "out");
  const int ldq = count(info, 1, "qStride"), qoff = count(info, 2, "qOffset");
  KvPool& kv = pool_arg(info, 3);
  const int layer = layer_arg(info, 4, kv);
  int rows = 0;
  const std::vector<SeqDesc> seqs = seqs_arg(info, 5, 6, 10, kv, &rows);
  const int nh = count(info, 7, "nHeads");
  const float scale = (float)number(info, 8, "scale");
  const int d = kv.head_dim;
  if (nh < kv.n_kv || nh % kv.n_kv) throw range(env, "pagedAttention: nHeads " + std::to_string(nh) + " is not a multiple of the pool's " + std::to_string(kv.n_kv) + " kv heads");
  if ((int64_t)qoff + (int64_t)nh * d > ldq) throw range(env, "pagedAttention: query heads end past the row stride " + std::to_string(ldq));
  if (rows > 0) need(env, q, ((uint64_t)(rows - 1) * ldq + qoff + (uint64_t)nh * d) * 4, "pagedAttention q");
  need(env, out, (uint64_t)rows * nh * d * 4, "pagedAttention out");
  const int group = nh / kv.n_kv, qb = std::max(1, ITEM_SCORE_ROWS / group);
  std::vector<PagedItem> items;
  int ctx = 0;
  for (size_t s = 0; s < seqs.size(); s++) {
    ctx = std::max(ctx, seqs[s].start + seqs[s].rows);
    for (int r0 = 0; r0 < seqs[s].rows; r0 += qb)
      for (int kh = 0; kh < kv.n_kv; kh++) items.push_back({(int)s, kh, r0, std::min(seqs[s].rows, r0 + qb)});
  }
  if (items.empty()) return env.Undefined();
  const DeviceKernels& D = active_device_kernels();
  const Kernels& K = active_kernels();
  const int64_t lds = (ctx + 15) / 16 * 16;
  const int64_t per = (paged_scratch_floats(qb * group, lds) + 15) / 16 * 16;  // keeps every thread's slice aligned
  Pool& pool = shared_pool();
  if ((int64_t)g_attn_scratch.size() < per * pool.threads()) g_attn_scratch.resize((size_t)(per * pool.threads()));
  const PagedArgs a{&kv, layer, reinterpret_cast<const float*>(q.data), ldq, qoff, reinterpret_cast<float*>(out.data), nh, scale, seqs.data()};
  float* scratch = g_attn_scratch.data();
  pool.run((int)items.size(), [&](int t, int thread) { D.paged_attention(a, items[t], scratch + per * thread, lds, K.exp); });
  return env.Undefined();
}

}  // namespace

void register_paged_kv(Napi::Env env, Napi::Object exports) {
  exports.Set("kvAlloc", Napi::Function::New(env, KvAlloc));
  exports.Set("kvWrite", Napi::Function::New(env, KvWrite));
  exports.Set("kvCopyBlocks", Napi::Function::New(env, KvCopyBlocks));
  exports.Set("kvReadBlock", Napi::Function::New(env, KvReadBlock));
  exports.Set("pagedAttention", Napi::Function::New(env, PagedAttention));
}

}  // namespace phi4mm
