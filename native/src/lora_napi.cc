// N-API side of the LoRA row segments (src/tensor/native_device.ts linear): out[rows] += scale · (x[rows]·Aᵀ)·Bᵀ
// for each segment, and the transpose that places the factors at load.
//
// A [r, k] and B [n, r] come column-major, as the native backend places LoRA factors at load: the buffers hold
// Aᵀ [k, r] and Bᵀ [r, n] row-major, which the outer-product GEMM (device_gemm_cols.h) reads.
//
// A row's delta has one fixed arithmetic, whichever rows share its segment and however the work is split:
//  - u = x·Aᵀ: K in chunks of LORA_K_CHUNK; each chunk's sum is gemm_cols' (one fma per k in k order, from 0),
//    and the chunk sums are added in chunk order;
//  - out += scale · (u·Bᵀ): gemm_cols over all r.
// The chunks let a decode (a few rows) split the first product over K, so each thread reads whole rows of Aᵀ. Split
// over its 320 columns instead, two threads read half of each 640-byte row, and streamed 17.5 GB/s together against
// 26 for one thread alone.
#include <algorithm>
#include <cstring>
#include <vector>

#include "device_napi.h"

namespace phi4mm {
namespace {
using namespace dev;

float* f32(const Bytes& b) { return reinterpret_cast<float*>(b.data); }

struct LoraSeg {
  int row0, rows, r;
  const void* a; WType at;  // Aᵀ [k, r]
  const void* b; WType bt;  // Bᵀ [r, n]
  float scale;
};

WType wtype_of(const Napi::Env& env, int64_t t) {
  if (t < 0 || t > 2) throw range(env, "lora: A and B must be f32, bf16 or f16 (type 0, 1 or 2)");
  return (WType)t;
}

constexpr int LORA_FIELDS = 10;
constexpr int LORA_K_CHUNK = 512;  // K per chunk of the first product (Aᵀ at r = 320: 320 KiB of bf16)
// Segments of up to LORA_FEW_ROWS rows (decode) split the first product over its K chunks, the rest over rows and
// columns: rows in chunks of LORA_ITEM_ROWS (a multiple of every ISA's tile rows: 6, 4, 2), columns in multiples
// of a 64-byte line of bf16 weights (no two items share a line of Bᵀ), up to LORA_ITEMS_PER_THREAD per thread
// while items keep LORA_ITEM_MIN_COLS columns (a decode reads rows of Bᵀ in item-wide segments).
constexpr int LORA_FEW_ROWS = 8, LORA_ITEM_ROWS = 120, LORA_ITEM_COLS = 32, LORA_ITEM_MIN_COLS = 128, LORA_ITEMS_PER_THREAD = 4;
thread_local std::vector<float> g_lora_ax;     // per calling JS thread: u of every segment
thread_local std::vector<float> g_lora_few;    // per calling JS thread: the K-chunk sums of few-rows segments
thread_local std::vector<float> g_lora_chunk;  // per thread: chunk sums of the first product

// Rows [r0, r1) × columns [c0, c1) of one segment's product; chunk ≥ 0: only that K chunk of the first product, into its slot.
struct Item { int seg, r0, r1, c0, c1, chunk = -1; };

// Column chunks × row chunks of a rows × cols product.
void split(std::vector<Item>& items, int seg, int rows, int cols, int threads) {
  const int row_chunks = (rows + LORA_ITEM_ROWS - 1) / LORA_ITEM_ROWS;
  const int per = std::clamp(cols / (threads * LORA_ITEM_MIN_COLS), 1, LORA_ITEMS_PER_THREAD);
  const int want = std::max(1, (threads * per + row_chunks - 1) / row_chunks);
  const int width = std::max(LORA_ITEM_COLS, cols / want / LORA_ITEM_COLS * LORA_ITEM_COLS);
  for (int c = 0; c < cols; c += width)
    for (int r = 0; r < rows; r += LORA_ITEM_ROWS) items.push_back({seg, r, std::min(rows, r + LORA_ITEM_ROWS), c, std::min(cols, c + width)});
}

// y[i, j] += s[i, j] over rows × cols (strides ldy, lds): adding a chunk's sums to the running ones.
void add_block(float* y, int64_t ldy, const float* s, int64_t lds, int rows, int cols) {
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) y[i * ldy + j] += s[i * lds + j];
}

// loraAdd(x, m, k, out, n, segs): segs is a flat array, per segment
// [rowStart, rows, r, A, aType, aOffset, B, bType, bOffset, scale].
Napi::Value LoraAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), out = typed(info, 3, "out");
  const int m = count(info, 1, "m"), k = count(info, 2, "k"), n = count(info, 4, "n");
  if (!info[5].IsArray()) throw Napi::TypeError::New(env, "lora: segments must be an array");
  Napi::Array arr = info[5].As<Napi::Array>();
  if (arr.Length() % LORA_FIELDS) throw range(env, "lora: segment array length is not a multiple of 10");
  need(env, x, (uint64_t)m * k * 4, "lora x");
  need(env, out, (uint64_t)m * n * 4, "lora out");
  std::vector<LoraSeg> segs;
  int64_t ax_size = 0;
  for (uint32_t s = 0; s < arr.Length(); s += LORA_FIELDS) {
    auto num = [&](uint32_t f) {
      Napi::Value v = arr.Get(s + f);
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "lora: segment field " + std::to_string(f) + " must be a number");
      return v.As<Napi::Number>().DoubleValue();
    };
    auto buf = [&](uint32_t f) {
      Napi::Value v = arr.Get(s + f);
      if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "lora: A and B must be typed arrays");
      auto t = v.As<Napi::TypedArray>();
      return Bytes{static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength()};
    };
    LoraSeg g;
    g.row0 = (int)num(0); g.rows = (int)num(1); g.r = (int)num(2);
    if (g.row0 < 0 || g.rows < 0 || (int64_t)g.row0 + g.rows > m) throw range(env, "linear: LoRA rows [" + std::to_string(g.row0) + ", " + std::to_string(g.row0 + g.rows) + ") outside the " + std::to_string(m) + " rows");
    if (g.r < 1) throw range(env, "lora: rank must be positive");
    g.at = wtype_of(env, (int64_t)num(4));
    g.bt = wtype_of(env, (int64_t)num(7));
    const int64_t aoff = (int64_t)num(5), boff = (int64_t)num(8);
    const Bytes A = buf(3), B = buf(6);
    const int ae = wtype_bytes(g.at), be = wtype_bytes(g.bt);
    need(env, A, (uint64_t)(aoff + (int64_t)g.r * k) * ae, "lora A");
    need(env, B, (uint64_t)(boff + (int64_t)n * g.r) * be, "lora B");
    g.a = A.data + aoff * ae;
    g.b = B.data + boff * be;
    g.scale = (float)num(9);
    segs.push_back(g);
    ax_size += (int64_t)g.rows * g.r;
  }
  if (segs.empty() || m == 0) return env.Undefined();
  if ((int64_t)g_lora_ax.size() < ax_size) g_lora_ax.resize(ax_size);
  std::vector<float*> ax(segs.size());
  for (size_t s = 0, o = 0; s < segs.size(); o += (size_t)segs[s].rows * segs[s].r, s++) ax[s] = g_lora_ax.data() + o;
  const DeviceKernels& D = active_device_kernels();
  const int threads = shared_pool().threads(), chunks = (k + LORA_K_CHUNK - 1) / LORA_K_CHUNK;
  auto chunk_len = [&](int c) { return std::min(LORA_K_CHUNK, k - c * LORA_K_CHUNK); };
  auto xa = [&](const LoraSeg& g, int c) { return f32(x) + (int64_t)g.row0 * k + (int64_t)c * LORA_K_CHUNK; };
  auto at = [&](const LoraSeg& g, int c) { return (const uint8_t*)g.a + (int64_t)c * LORA_K_CHUNK * g.r * wtype_bytes(g.at); };

  // u = x·Aᵀ. Few rows: one item per (segment, K chunk) into that chunk's slot, then the slots are added in order.
  std::vector<Item> items;
  std::vector<int64_t> slot(segs.size(), -1);  // offset of a few-rows segment's chunk slots in g_lora_few
  int64_t few_size = 0;
  for (size_t s = 0; s < segs.size(); s++) {
    const LoraSeg& g = segs[s];
    if (g.rows == 0) continue;
    if (g.rows <= LORA_FEW_ROWS && chunks > 1) {
      slot[s] = few_size;
      few_size += (int64_t)chunks * g.rows * g.r;
      for (int c = 0; c < chunks; c++) items.push_back({(int)s, 0, g.rows, 0, g.r, c});
    } else {
      split(items, (int)s, g.rows, g.r, threads);
    }
  }
  // Reused across calls (a decode makes one per adapted linear): every slot is written whole by its item.
  if ((int64_t)g_lora_few.size() < few_size) g_lora_few.resize((size_t)few_size);
  float* few = g_lora_few.data();
  shared_pool().run((int)items.size(), [&](int t, int) {
    const Item& it = items[t];
    const LoraSeg& g = segs[it.seg];
    if (it.chunk >= 0) {
      const int c = it.chunk;
      D.gemm_cols(xa(g, c), k, at(g, c), g.at, g.r, few + slot[it.seg] + (int64_t)c * g.rows * g.r, g.r, it.r0, it.r1, chunk_len(c), it.c0, it.c1, 1.f, false);
      return;
    }
    const int rows = it.r1 - it.r0, cols = it.c1 - it.c0;
    D.gemm_cols(xa(g, 0), k, at(g, 0), g.at, g.r, ax[it.seg], g.r, it.r0, it.r1, chunk_len(0), it.c0, it.c1, 1.f, false);
    if (chunks == 1) return;
    if ((int64_t)g_lora_chunk.size() < (int64_t)rows * cols) g_lora_chunk.resize((size_t)rows * cols);
    float* sums = g_lora_chunk.data() - (int64_t)it.r0 * cols - it.c0;  // addressed by (row, column) of u
    for (int c = 1; c < chunks; c++) {
      D.gemm_cols(xa(g, c), k, at(g, c), g.at, g.r, sums, cols, it.r0, it.r1, chunk_len(c), it.c0, it.c1, 1.f, false);
      add_block(ax[it.seg] + (int64_t)it.r0 * g.r + it.c0, g.r, g_lora_chunk.data(), cols, rows, cols);
    }
  });
  for (size_t s = 0; s < segs.size(); s++) {
    if (slot[s] < 0) continue;
    const int64_t len = (int64_t)segs[s].rows * segs[s].r;
    const float* base = few + slot[s];
    std::memcpy(ax[s], base, (size_t)len * 4);
    for (int c = 1; c < chunks; c++) add_block(ax[s], 0, base + c * len, 0, 1, (int)len);
  }

  // out += scale · u·Bᵀ
  items.clear();
  for (size_t s = 0; s < segs.size(); s++)
    if (segs[s].rows > 0) split(items, (int)s, segs[s].rows, n, threads);
  shared_pool().run((int)items.size(), [&](int t, int) {
    const Item& it = items[t];
    const LoraSeg& g = segs[it.seg];
    D.gemm_cols(ax[it.seg], g.r, g.b, g.bt, n, f32(out) + (int64_t)g.row0 * n, n, it.r0, it.r1, g.r, it.c0, it.c1, g.scale, true);
  });
  return env.Undefined();
}

// transpose16(src, rows, cols, dst) / transpose32: dst [cols, rows] = srcᵀ for 2- or 4-byte elements (bf16/f16
// bits or f32). In tiles of one cache line of elements each way, turned in a local buffer, so every line of dst
// is written whole, once: written element by element in 64 × 64 blocks, dst lines N·2 bytes apart (32 KiB for
// gate_up's B) fell into a few cache sets and the transpose ran at 0.16 GB/s.
template <typename E>
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes src = typed(info, 0, "src"), dst = typed(info, 3, "dst");
  const int rows = count(info, 1, "rows"), cols = count(info, 2, "cols");
  need(env, src, (uint64_t)rows * cols * sizeof(E), "transpose src");
  need(env, dst, (uint64_t)rows * cols * sizeof(E), "transpose dst");
  if (src.data == dst.data) throw range(env, "transpose: src and dst must not be the same buffer");
  constexpr int TILE = 64 / sizeof(E);  // elements per cache line
  const E* s = reinterpret_cast<const E*>(src.data);
  E* d = reinterpret_cast<E*>(dst.data);
  const int row_tiles = (rows + TILE - 1) / TILE;
  shared_pool().run(row_tiles, [&](int b, int) {
    E tile[TILE][TILE];
    const int i0 = b * TILE, ti = std::min(TILE, rows - i0);
    for (int j0 = 0; j0 < cols; j0 += TILE) {
      const int tj = std::min(TILE, cols - j0);
      for (int i = 0; i < ti; i++)
        for (int j = 0; j < tj; j++) tile[j][i] = s[(int64_t)(i0 + i) * cols + j0 + j];
      for (int j = 0; j < tj; j++) std::memcpy(d + (int64_t)(j0 + j) * rows + i0, tile[j], (size_t)ti * sizeof(E));
    }
  });
  return env.Undefined();
}

}  // namespace

void register_lora(Napi::Env env, Napi::Object exports) {
  exports.Set("loraAdd", Napi::Function::New(env, LoraAdd));
  exports.Set("transpose16", Napi::Function::New(env, Transpose<uint16_t>));
  exports.Set("transpose32", Napi::Function::New(env, Transpose<uint32_t>));
}

}  // namespace phi4mm
