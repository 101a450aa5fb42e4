// Shared by addon.cc, glue.cc and paged_attention.cc: argument readers for the device ops' N-API functions, the
// ways work is split over the pool, and the addon state they use (defined in addon.cc: the pool and the active
// GEMM kernel table).
#pragma once
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

#include "device.h"
#include "pool.h"

namespace phi4mm {

Pool& shared_pool();
const Kernels& active_kernels();
// The device ops' table of the ISA the GEMM kernels run on (setIsa switches both).
const DeviceKernels& active_device_kernels();

void register_glue(Napi::Env env, Napi::Object exports);
void register_lora(Napi::Env env, Napi::Object exports);
void register_paged_kv(Napi::Env env, Napi::Object exports);
void register_interleave(Napi::Env env, Napi::Object exports);
void register_encoder_ops(Napi::Env env, Napi::Object exports);
void register_isq(Napi::Env env, Napi::Object exports);
void register_memory(Napi::Env env, Napi::Object exports);
void register_sampling(Napi::Env env, Napi::Object exports);
// The weight (ISQ) and activation quantizers of the active ISA: the vectorized ports under avx2 / avx512,
// the scalar ones under 'scalar'; all byte-identical.
struct Quantizers {
  QuantStatus (*q4_K)(const float* x, uint8_t* dst, int k);
  void (*q8_K)(const float* x, uint8_t* dst, int k);
  void (*q8_0)(const float* x, uint8_t* dst, int k);
};
const Quantizers& active_quantizers();
// Row `row` of an x16 [rows, K] table (interleave.h) → its ggml bytes (row_bytes) at dst.
void x16_row(int fmt, const uint8_t* table, int64_t row_bytes, int row, uint8_t* dst);

namespace dev {

struct Bytes {
  uint8_t* data;
  size_t size;
};

inline Napi::Error range(const Napi::Env& env, const std::string& msg) { return Napi::RangeError::New(env, msg); }

inline Bytes typed(const Napi::CallbackInfo& info, int i, const char* what) {
  if (!info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a typed array");
  auto t = info[i].As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength()};
}

inline Bytes typed_or_null(const Napi::CallbackInfo& info, int i, const char* what) {
  if (info[i].IsNull() || info[i].IsUndefined()) return {nullptr, 0};
  return typed(info, i, what);
}

inline int64_t integer(const Napi::CallbackInfo& info, int i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (v != std::floor(v) || std::fabs(v) > 9007199254740991.0) throw range(info.Env(), std::string(what) + " must be an integer");
  return (int64_t)v;
}

// A non-negative int.
inline int count(const Napi::CallbackInfo& info, int i, const char* what) {
  const int64_t v = integer(info, i, what);
  if (v < 0 || v > 0x7fffffff) throw range(info.Env(), std::string(what) + " out of range: " + std::to_string(v));
  return (int)v;
}

inline double number(const Napi::CallbackInfo& info, int i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

inline void need(const Napi::Env& env, const Bytes& b, uint64_t bytes, const char* what) {
  if (b.size < bytes)
    throw range(env, std::string(what) + ": buffer has " + std::to_string(b.size) + " bytes, needs " + std::to_string(bytes));
}

// Runs fn(i0, i1) over [0, n) on the pool when there is enough work (work = n · cost in element operations),
// else inline: decode-sized glue ops cost less than waking the workers.
template <typename F>
void parallel_for(int n, int64_t cost, F&& fn) {
  constexpr int64_t MIN_PARALLEL_WORK = 1 << 18;  // ~1 MB of f32 traffic: less is faster inline than a pool wake-up
  Pool& pool = shared_pool();
  if (pool.threads() == 1 || n < 2 || (int64_t)n * cost < MIN_PARALLEL_WORK) {
    fn(0, n);
    return;
  }
  const int tasks = std::min(n, pool.threads() * 4), per = (n + tasks - 1) / tasks;
  pool.run((n + per - 1) / per, [&](int t, int) { fn(t * per, std::min(n, (t + 1) * per)); });
}

// Runs f(n0, n1) over [0, n) in tasks of `align`-multiples, about 4 per thread so dynamic scheduling evens out
// (addon.cc's GEMMs with several activation rows).
template <typename F>
void parallel_rows(int n, int align, F&& f) {
  Pool& pool = shared_pool();
  int c = std::max(n, 1);
  if (pool.threads() > 1) {
    const int target = pool.threads() * 4;
    c = ((n + target - 1) / target + align - 1) / align * align;
    c = std::max(c, align);
  }
  const int tasks = (n + c - 1) / c;
  pool.run(tasks, [&](int t, int) { f(t * c, std::min(n, (t + 1) * c)); });
}

// Splits [0, n) (rows, in units of `align`) into one contiguous range per thread; each thread claims
// SPLIT_UNITS_PER_CLAIM units at a time from the front of its own range, then from the back of the others' until
// nothing is left. So every thread streams one run of weights (its prefetches run on into its next rows) and the
// threads end together, to within one claim. With ~4 interleaved tasks per thread (parallel_rows) the wait for the
// last task was ~7% of a 2-thread decode step (perf: the caller spinning in Pool::run, the worker in Pool::worker).
// Ranges are tasks of the pool, not threads: a worker that wakes late finds its range partly taken from the back,
// and does the rest. Units a claim takes: 4 x16 groups (64 rows, 110–295 KB of Phi-4-mini weights). Single groups
// cost more per claim than they saved (a hot 3,072 × 3,072 Q4_K GEMV at 2 threads: 102 µs with 1, 81 with 4, 83 with 8).
constexpr uint32_t SPLIT_UNITS_PER_CLAIM = 4;
struct alignas(64) SplitRange {
  std::atomic<uint64_t> span;  // (next unit << 32) | end unit
};
constexpr int MAX_SPLIT_THREADS = 64;

template <typename F>
void parallel_split(int n, int align, F&& f) {
  const int threads = shared_pool().threads(), units = (n + align - 1) / align;
  if (threads == 1 || units < 2 * threads || threads > MAX_SPLIT_THREADS) {
    parallel_rows(n, align, f);
    return;
  }
  thread_local SplitRange caller_ranges[MAX_SPLIT_THREADS];
  SplitRange* ranges = caller_ranges;  // the caller's: inside the lambda a thread_local name is the worker's own
  for (int t = 0; t < threads; t++)
    ranges[t].span.store((uint64_t)((int64_t)units * t / threads) << 32 | (uint64_t)((int64_t)units * (t + 1) / threads), std::memory_order_relaxed);
  const auto rows = [&](uint32_t u0, uint32_t u1) { f((int)u0 * align, std::min(n, (int)u1 * align)); };
  shared_pool().run(threads, [&](int own, int) {
    for (;;) {  // the front of this range
      uint64_t v = ranges[own].span.load(std::memory_order_acquire);
      const uint32_t b = (uint32_t)(v >> 32), e = (uint32_t)v;
      if (b >= e) break;
      const uint32_t nb = std::min<uint32_t>(b + SPLIT_UNITS_PER_CLAIM, e);
      if (ranges[own].span.compare_exchange_weak(v, (uint64_t)nb << 32 | e, std::memory_order_acq_rel)) rows(b, nb);
    }
    for (int k = 1; k < threads; k++) {  // then the backs of the others
      SplitRange& r = ranges[(own + k) % threads];
      for (;;) {
        uint64_t v = r.span.load(std::memory_order_acquire);
        const uint32_t b = (uint32_t)(v >> 32), e = (uint32_t)v;
        if (b >= e) break;
        const uint32_t ne = e - std::min<uint32_t>(SPLIT_UNITS_PER_CLAIM, e - b);
        if (r.span.compare_exchange_weak(v, (uint64_t)b << 32 | ne, std::memory_order_acq_rel)) rows(ne, e);
      }
    }
  });
}

}  // namespace dev
}  // namespace phi4mm
