// N-API surface of the addon: argument checking, ISA dispatch, activation quantization and the split of each
// kernel over the thread pool. Typed arrays are used in place (weights are never copied).
#include <napi.h>

#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <mutex>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>


#include "device_napi.h"
#include "interleave.h"
#include "kernels.h"
#include "pool.h"

namespace phi4mm {
namespace {
using dev::parallel_rows;
using dev::parallel_split;

struct Isa {
  const char* name;
  const Kernels* kernels;
  bool (*supported)();
  Quantizers quantizers;  // byte-identical to the scalar ports on every ISA
};

bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}
bool always() { return true; }

// Best first.
const Isa ISAS[] = {
    {"avx512", &avx512::kernels, has_avx512, {quantize_weights_q4_K_avx512, quantize_row_q8_K_avx512, quantize_row_q8_0_avx512}},
    {"avx2", &avx2::kernels, has_avx2, {quantize_weights_q4_K_avx2, quantize_row_q8_K_avx2, quantize_row_q8_0_avx2}},
    {"scalar", &generic::kernels, always, {quantize_weights_q4_K, quantize_row_q8_K, quantize_row_q8_0}},
};

const Kernels* g_kernels = nullptr;
std::unique_ptr<Pool> g_pool;
thread_local std::vector<uint8_t> g_scratch;  // quantized activations / transposed B, per calling JS thread (main, engine worker)
thread_local std::vector<int32_t> g_aux;       // the x16 tiles' per-row sums of those activations (QGemmArgs::aux)

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (int)n;
}

Pool& pool() {
  if (!g_pool) g_pool = std::make_unique<Pool>(default_threads());
  return *g_pool;
}

const Kernels& kernels() {
  if (!g_kernels) {
    for (const Isa& isa : ISAS)
      if (isa.supported()) { g_kernels = isa.kernels; break; }
  }
  return *g_kernels;
}

const Quantizers& isa_quantizers() {
  const Kernels* active = &kernels();
  for (const Isa& isa : ISAS)
    if (isa.kernels == active) return isa.quantizers;
  throw std::logic_error("the active kernel table belongs to no ISA");
}

void select_isa(const std::string& name) {
  std::string known;
  for (const Isa& isa : ISAS) {
    if (name == isa.name) {
      if (!isa.supported()) throw std::runtime_error("ISA '" + name + "' is not supported by this CPU; available: " + [] {
        std::string s;
        for (const Isa& i : ISAS) if (i.supported()) s += (s.empty() ? "" : ", ") + std::string(i.name);
        return s;
      }());
      g_kernels = isa.kernels;
      return;
    }
    known += (known.empty() ? "" : ", ") + std::string(isa.name);
  }
  throw std::runtime_error("unknown ISA '" + name + "' (known: " + known + ")");
}

// ---- argument helpers ----
struct View {
  uint8_t* data;
  size_t bytes;
};

View typed(const Napi::CallbackInfo& info, int i, const char* what) {
  if (!info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a typed array");
  auto t = info[i].As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength()};
}

View typed_or_null(const Napi::CallbackInfo& info, int i, const char* what) {
  if (info[i].IsNull() || info[i].IsUndefined()) return {nullptr, 0};
  return typed(info, i, what);
}

int64_t integer(const Napi::CallbackInfo& info, int i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (v != std::floor(v) || v < -9007199254740991.0 || v > 9007199254740991.0)
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an integer");
  return (int64_t)v;
}

int dim(const Napi::CallbackInfo& info, int i, const char* what) {
  const int64_t v = integer(info, i, what);
  if (v < 0 || v > 0x7fffffff) throw Napi::RangeError::New(info.Env(), std::string(what) + " out of range: " + std::to_string(v));
  return (int)v;
}

void need(const Napi::Env& env, const View& v, uint64_t bytes, const char* what) {
  if (v.bytes < bytes)
    throw Napi::RangeError::New(env, std::string(what) + ": buffer has " + std::to_string(v.bytes) + " bytes, needs " + std::to_string(bytes));
}

// Scans M rows of K floats for NaN/Inf before quantizing (a non-finite value would corrupt a whole block). The scan
// ORs (exponent bits + one exponent ulp) over all values: bit 31 comes out set iff some exponent is all ones.
// Branch-free, it vectorizes; the early-exit isfinite loop ran at ~1 value a cycle (5 µs of every K = 8,192
// decode GEMV). The slow loop only runs to name the first bad value.
void check_finite(const Napi::Env& env, const float* x, int m, int k, const char* what) {
  constexpr uint32_t EXP_MASK = 0x7f800000u, EXP_ULP = 0x00800000u;
  const int64_t n = (int64_t)m * k;
  uint32_t any = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    any |= (u & EXP_MASK) + EXP_ULP;
  }
  if (!(any & 0x80000000u)) return;
  for (int64_t i = 0; i < n; i++)
    if (!std::isfinite(x[i]))
      throw Napi::RangeError::New(env, std::string(what) + ": input row " + std::to_string(i / k) + " element " +
                                           std::to_string(i % k) + " is not finite; quantized linear layers need finite activations");
}

// ---- exported functions ----

// linearF(x, m, w, wtype, wOffset, ldw, n, k, bias|null, out): out[m, n] = x[m, k] · W[n, k]ᵀ (+ bias).
Napi::Value LinearF(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View x = typed(info, 0, "x"), w = typed(info, 2, "w");
  const int m = dim(info, 1, "m"), wt = dim(info, 3, "wtype");
  const int64_t woff = integer(info, 4, "wOffset"), ldw = integer(info, 5, "ldw");
  const int n = dim(info, 6, "n"), k = dim(info, 7, "k");
  const View bias = typed_or_null(info, 8, "bias"), out = typed(info, 9, "out");
  if (wt > 2) throw Napi::RangeError::New(env, "wtype must be 0 (f32), 1 (bf16) or 2 (f16)");
  const int esize = wt == 0 ? 4 : 2;
  if (woff < 0 || ldw < k) throw Napi::RangeError::New(env, "linear: bad weight offset/row stride");
  need(env, x, (uint64_t)m * k * 4, "linear x");
  if (n > 0) need(env, w, ((uint64_t)woff + (uint64_t)(n - 1) * ldw + k) * esize, "linear weight");
  if (bias.data) need(env, bias, (uint64_t)n * 4, "linear bias");
  need(env, out, (uint64_t)m * n * 4, "linear out");
  if (m == 0 || n == 0) return env.Undefined();
  GemmArgs g{reinterpret_cast<const float*>(x.data), k, w.data + woff * esize, ldw, (WType)wt,
             reinterpret_cast<float*>(out.data), n, reinterpret_cast<const float*>(bias.data), m, n, k};
  const Kernels& K = kernels();
  parallel_rows(n, 8, [&](int n0, int n1) { K.gemm_nt(g, n0, n1); });
  return env.Undefined();
}

// linearQ(x, m, w, format, n, k, bias|null, out), format 0 q4_k, 1 q8_0, 2 q4_k x16, 3 q8_0 x16 (interleave.h);
// linearQRef: the same through the plain reference kernel (qgemm_ref.cc on ggml rows, single-threaded), for
// the bit-exactness tests.
Napi::Value LinearQ(const Napi::CallbackInfo& info, bool reference) {
  Napi::Env env = info.Env();
  const View x = typed(info, 0, "x"), w = typed(info, 2, "w");
  const int m = dim(info, 1, "m"), format = dim(info, 3, "format"), n = dim(info, 4, "n"), k = dim(info, 5, "k");
  const View bias = typed_or_null(info, 6, "bias"), out = typed(info, 7, "out");
  if (format > 3) throw Napi::RangeError::New(env, "format must be 0 (q4_k), 1 (q8_0), 2 (q4_k x16) or 3 (q8_0 x16)");
  const int fmt = format & 1;
  const bool x16 = format >= 2;
  if (x16 && n % X16) throw Napi::RangeError::New(env, "linear: an x16 weight needs a multiple of 16 rows, got " + std::to_string(n));
  const int bs = fmt == 0 ? QK_K : QK8_0;
  if (k % bs != 0) throw Napi::RangeError::New(env, "linear: K=" + std::to_string(k) + " is not a multiple of the block size " + std::to_string(bs));
  const int nb = k / bs;
  const int64_t wrow = (int64_t)nb * (fmt == 0 ? BLOCK_Q4_K_BYTES : BLOCK_Q8_0_BYTES);
  const int64_t xrow = (int64_t)nb * (fmt == 0 ? BLOCK_Q8_K_BYTES : BLOCK_Q8_0_BYTES);
  need(env, x, (uint64_t)m * k * 4, "linear x");
  need(env, w, (uint64_t)n * wrow, "linear weight");
  if (bias.data) need(env, bias, (uint64_t)n * 4, "linear bias");
  need(env, out, (uint64_t)m * n * 4, "linear out");
  if (m == 0 || n == 0) return env.Undefined();
  const float* xf = reinterpret_cast<const float*>(x.data);
  check_finite(env, xf, m, k, "linear");
  if (g_scratch.size() < (size_t)(m * xrow)) g_scratch.resize((size_t)(m * xrow));
  uint8_t* xq = g_scratch.data();
  // The reference path quantizes with the scalar port, so the bit-equality tests also cover the fast one.
  const Quantizers& fast = isa_quantizers();
  auto quantize = fmt == 0 ? (reference ? quantize_row_q8_K : fast.q8_K) : (reference ? quantize_row_q8_0 : fast.q8_0);
  const Kernels& K = kernels();
  const int aux_n = x16 && !reference ? K.x16_aux(fmt, nullptr, nb, nullptr) : 0;  // sums per row
  if (g_aux.size() < (size_t)m * aux_n) g_aux.resize((size_t)m * aux_n);
  int32_t* aux = g_aux.data();
  pool().run(m, [&](int i, int) {
    quantize(xf + (int64_t)i * k, xq + i * xrow, k);
    if (aux_n) K.x16_aux(fmt, xq + i * xrow, nb, aux + (int64_t)i * aux_n);
  });
  QGemmArgs g{w.data, wrow, xq, xrow, reinterpret_cast<float*>(out.data), n, reinterpret_cast<const float*>(bias.data), m, n, nb, aux};
  if (reference) {
    std::vector<uint8_t> rows;
    if (x16) {
      rows.resize((size_t)n * wrow);
      for (int r = 0; r < n; r++) x16_row(fmt, w.data, wrow, r, rows.data() + (int64_t)r * wrow);
      g.w = rows.data();
    }
    qgemm_ref(fmt, g);
    return env.Undefined();
  }
  if (x16) {
    // Whole groups per task; with several activation rows, whole PANEL_GROUPS spans (their weights are reused
    // from L2 by every activation tile).
    const auto tiles = [&](int n0, int n1) { (fmt == 0 ? K.q4kx16_q8k : K.q80x16_q80)(g, n0, n1); };
    if (m > 8) parallel_rows(n, 64, tiles);
    else parallel_split(n, X16, tiles);  // a weight stream per thread (decode, batched decode)
    return env.Undefined();
  }
  // Slices of whole 64-row panels for the tile GEMM (several activation rows); 8-row slices for GEMV.
  parallel_rows(n, m >= 8 ? 64 : 8, [&](int n0, int n1) { (fmt == 0 ? K.q4k_q8k : K.q80_q80)(g, n0, n1); });
  return env.Undefined();
}

// matmul(a, b, m, k, n, transB, out): C[m, n] = A[m, k] · B (B [k, n], or [n, k] when transB).
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View a = typed(info, 0, "a"), b = typed(info, 1, "b");
  const int m = dim(info, 2, "m"), k = dim(info, 3, "k"), n = dim(info, 4, "n");
  const bool transB = info[5].ToBoolean();
  const View out = typed(info, 6, "out");
  need(env, a, (uint64_t)m * k * 4, "matmul a");
  need(env, b, (uint64_t)k * n * 4, "matmul b");
  need(env, out, (uint64_t)m * n * 4, "matmul out");
  if (m == 0 || n == 0) return env.Undefined();
  const float* bt = reinterpret_cast<const float*>(b.data);
  if (!transB) {  // the kernel wants B as [n, k]: transpose once, O(k·n) next to O(m·k·n)
    if (g_scratch.size() < (size_t)k * n * 4) g_scratch.resize((size_t)k * n * 4);
    float* t = reinterpret_cast<float*>(g_scratch.data());
    const float* src = bt;
    parallel_rows(n, 16, [&](int n0, int n1) {
      for (int j = n0; j < n1; j++)
        for (int t2 = 0; t2 < k; t2++) t[(int64_t)j * k + t2] = src[(int64_t)t2 * n + j];
    });
    bt = t;
  }
  GemmArgs g{reinterpret_cast<const float*>(a.data), k, bt, k, WType::F32, reinterpret_cast<float*>(out.data), n, nullptr, m, n, k};
  const Kernels& K = kernels();
  parallel_rows(n, 8, [&](int n0, int n1) { K.gemm_nt(g, n0, n1); });
  return env.Undefined();
}

// Query count from which attention packs K (see Attention), and the query block of that path: a multiple of
// the score tile (6 or 4 rows) and of the P·V tile (4 or 2 rows), with qb·tk scores in L2.
constexpr int PACK_MIN_QUERIES = 16;
constexpr int PACKED_QUERY_BLOCK = 24;

// attention(q, k, v, out, tq, tk, nHeads, nKvHeads, headDim, scale, causalOffset (-1: none), mask|null, bias|null)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View q = typed(info, 0, "q"), k = typed(info, 1, "k"), v = typed(info, 2, "v"), out = typed(info, 3, "out");
  const int tq = dim(info, 4, "tq"), tk = dim(info, 5, "tk"), h = dim(info, 6, "nHeads"), hkv = dim(info, 7, "nKvHeads"),
            d = dim(info, 8, "headDim");
  const float scale = (float)info[9].As<Napi::Number>().DoubleValue();
  const int64_t causal = integer(info, 10, "causalOffset");
  const View mask = typed_or_null(info, 11, "mask"), bias = typed_or_null(info, 12, "bias");
  if (hkv == 0 || h % hkv != 0) throw Napi::RangeError::New(env, "attention: nHeads must be a multiple of nKvHeads");
  need(env, q, (uint64_t)tq * h * d * 4, "attention q");
  need(env, k, (uint64_t)tk * hkv * d * 4, "attention k");
  need(env, v, (uint64_t)tk * hkv * d * 4, "attention v");
  need(env, out, (uint64_t)tq * h * d * 4, "attention out");
  if (mask.data) need(env, mask, (uint64_t)tq * tk * 4, "attention mask");
  if (bias.data) need(env, bias, (uint64_t)h * tq * tk * 4, "attention bias");
  if (tq == 0 || h == 0) return env.Undefined();
  AttnArgs p{reinterpret_cast<const float*>(q.data), reinterpret_cast<const float*>(k.data), reinterpret_cast<const float*>(v.data),
             reinterpret_cast<float*>(out.data), reinterpret_cast<const float*>(mask.data), reinterpret_cast<const float*>(bias.data),
             tq, tk, h, hkv, d, scale, causal};
  const Kernels& K = kernels();
  // Long query blocks: K packed once per kv head into key panels (O(tk·d) per kv head next to the O(tq·tk·d)
  // scores). Decode and short chunks read K in place, with query blocks small enough to split over heads.
  const bool pack = tq >= PACK_MIN_QUERIES && d > 0 && tk > 0;
  const int group = h / hkv;
  const int64_t panel = K.attn_key_panel;
  const int64_t lds = pack ? (tk + panel - 1) / panel * panel : std::max(tk, 1);
  std::vector<float> kpacked(pack ? (size_t)hkv * lds * d : 0);
  if (pack) pool().run(hkv, [&](int kh, int) { K.attn_pack_k(p, kh, kpacked.data() + (size_t)kh * lds * d); });
  if (!pack) {
    // Decode / short chunks: one task per (query, kv group), the group's heads as rows.
    std::vector<float> scratch((size_t)pool().threads() * group * lds);
    pool().run(tq * hkv, [&](int t, int thread) {
      const AttnBlock blk{(t % hkv) * group, t / hkv, group, true};
      K.attention(p, nullptr, blk, scratch.data() + (size_t)thread * group * lds, lds);
    });
    return env.Undefined();
  }
  const int qb = PACKED_QUERY_BLOCK, qblocks = (tq + qb - 1) / qb;
  std::vector<float> scratch((size_t)pool().threads() * qb * lds);  // one score row per query of a block
  pool().run(h * qblocks, [&](int t, int thread) {
    const int head = t % h, i0 = (t / h) * qb;
    const AttnBlock blk{head, i0, std::min(tq, i0 + qb) - i0, false};
    K.attention(p, kpacked.data() + (size_t)(head / group) * lds * d, blk, scratch.data() + (size_t)thread * qb * lds, lds);
  });
  return env.Undefined();
}

// expF32(x, out): the attention kernels' vectorized exp of the current ISA, for its accuracy test.
Napi::Value ExpF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View x = typed(info, 0, "x"), out = typed(info, 1, "out");
  const int64_t n = (int64_t)(x.bytes / 4);
  need(env, out, (uint64_t)n * 4, "expF32 out");
  if (n > INT32_MAX) throw Napi::RangeError::New(env, "expF32: array too large");
  kernels().exp(reinterpret_cast<const float*>(x.data), reinterpret_cast<float*>(out.data), (int)n);
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int n = dim(info, 0, "threads");
  if (n < 1 || n > 1024) throw Napi::RangeError::New(info.Env(), "threads must be between 1 and 1024, got " + std::to_string(n));
  if (!g_pool || g_pool->threads() != n) {
    g_pool.reset();
    g_pool = std::make_unique<Pool>(n);
  }
  return info.Env().Undefined();
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "isa must be a string");
  try {
    select_isa(info[0].As<Napi::String>().Utf8Value());
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("linearF", Napi::Function::New(env, LinearF));
  exports.Set("linearQ", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return LinearQ(i, false); }));
  exports.Set("linearQRef", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return LinearQ(i, true); }));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("expF32", Napi::Function::New(env, ExpF32));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("threads", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Napi::Number::New(i.Env(), pool().threads()); }));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("isa", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Napi::String::New(i.Env(), kernels().name); }));
  exports.Set("isas", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
    Napi::Array a = Napi::Array::New(i.Env());
    uint32_t n = 0;
    for (const Isa& isa : ISAS) if (isa.supported()) a.Set(n++, Napi::String::New(i.Env(), isa.name));
    return a;
  }));
  register_glue(env, exports);
  register_lora(env, exports);
  register_paged_kv(env, exports);
  register_interleave(env, exports);
  register_encoder_ops(env, exports);
  register_isq(env, exports);
  register_memory(env, exports);
  register_sampling(env, exports);
  return exports;
}

}  // namespace

// The device ops (glue.cc, paged_attention.cc) and the other N-API files share the pool and the ISA choice.
Pool& shared_pool() { return pool(); }
const Quantizers& active_quantizers() { return isa_quantizers(); }
const Kernels& active_kernels() { return kernels(); }
}  // namespace phi4mm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return phi4mm::Init(env, exports); }

NODE_API_MODULE(phi4mm_native, InitModule)
