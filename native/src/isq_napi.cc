// N-API side of quantization: ISQ of weight rows at load (quantizeRows, also from raw bf16 bits), the
// activation quantizers exposed for the tests, and the bf16 → f32 widening of checkpoints.
#include <atomic>
#include <cfloat>
#include <climits>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "device_napi.h"
#include "quant_common.h"

namespace phi4mm {
using namespace dev;

namespace {

// quantizeQ8K(x, out) / quantizeQ80(x, out): the activation quantizers, exposed for tests.
Napi::Value Quantize(const Napi::CallbackInfo& info, bool q8k) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), out = typed(info, 1, "out");
  const int bs = q8k ? QK_K : QK8_0;
  const int k = (int)(x.size / 4);
  if (k % bs != 0) throw Napi::RangeError::New(env, "quantize: length " + std::to_string(k) + " is not a multiple of " + std::to_string(bs));
  need(env, out, (uint64_t)(k / bs) * (q8k ? BLOCK_Q8_K_BYTES : BLOCK_Q8_0_BYTES), "quantize out");
  if (q8k) active_quantizers().q8_K(reinterpret_cast<const float*>(x.data), out.data, k);
  else active_quantizers().q8_0(reinterpret_cast<const float*>(x.data), out.data, k);
  return env.Undefined();
}

// bf16 bits are the high half of f32's. The restrict pointers let the compiler vectorize it.
void widen_bf16(const uint16_t* __restrict src, float* __restrict dst, int n) {
  for (int e = 0; e < n; e++) {
    const uint32_t u = (uint32_t)src[e] << 16;
    std::memcpy(dst + e, &u, 4);
  }
}

// Q8_0 ISQ of one row through the active ISA's row quantizer, which is byte-identical to the scalar port
// (quantize_weights_q8_0) whenever that one succeeds: every value finite and every block scale within f16. A row
// that fails either check goes to the scalar port, which names the first bad element or block.
QuantStatus quantize_weights_q8_0_fast(const float* x, uint8_t* dst, int k) {
  constexpr uint16_t f16_exp = 0x7c00;
  float amax = 0;
  bool finite = true;
  for (int e = 0; e < k; e++) {
    const float a = std::fabs(x[e]);
    finite &= a <= FLT_MAX;  // false for inf and NaN
    amax = std::max(amax, a);
  }
  if (!finite || (fp32_to_fp16(amax / 127.f) & f16_exp) == f16_exp) return quantize_weights_q8_0(x, dst, k);
  active_quantizers().q8_0(x, dst, k);
  return {QuantStatus::OK, 0};
}

// quantizeRows(format (0 q4_k, 1 q8_0), src, rows, k, out, srcBf16 = false): ISQ of a row-major [rows, k] f32 matrix into
// rows · (k / blockSize) blocks, rows spread over the pool. Bit-identical to src/quant's quantizeRow.
Napi::Value QuantizeRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fmt = count(info, 0, "format");
  const Bytes src = typed(info, 1, "src");
  const int rows = count(info, 2, "rows"), k = count(info, 3, "k");
  const Bytes out = typed(info, 4, "out");
  // src f32, or (bf16 = true) raw bf16 bits widened row by row in each worker: no f32 copy of the tensor.
  const bool bf16 = info.Length() > 5 && info[5].ToBoolean();
  if (fmt > 1) throw Napi::RangeError::New(env, "format must be 0 (q4_k) or 1 (q8_0)");
  const int bs = fmt == 0 ? QK_K : QK8_0;
  const char* name = fmt == 0 ? "q4_k" : "q8_0";
  if (k % bs != 0)
    throw Napi::RangeError::New(env, std::string("quantize ") + name + ": row length " + std::to_string(k) + " is not a multiple of the block size " + std::to_string(bs));
  const int64_t row_bytes = (int64_t)(k / bs) * (fmt == 0 ? BLOCK_Q4_K_BYTES : BLOCK_Q8_0_BYTES);
  need(env, src, (uint64_t)rows * k * (bf16 ? 2 : 4), "quantize src");
  need(env, out, (uint64_t)rows * row_bytes, "quantize out");
  const float* x = reinterpret_cast<const float*>(src.data);
  // The first failing row (lowest index) is reported, whatever the thread order.
  std::atomic<int64_t> bad_row{INT64_MAX};
  std::vector<QuantStatus> status(rows > 0 ? 1 : 0);
  std::mutex mu;
  // The vectorized Q4_K quantizers are byte-identical to the reference; each runs whenever its ISA's kernels do.
  auto q4k = active_quantizers().q4_K;
  parallel_rows(rows, 1, [&](int r0, int r1) {
    // One widened row per task (a few per thread), through a plain pointer: a thread_local vector here cost a
    // __tls_get_addr per element and kept the loop scalar (perf, Q4_K ISQ of the bf16 checkpoint).
    std::vector<float> widened(bf16 ? (size_t)k : 0);
    float* w = widened.data();
    for (int r = r0; r < r1 && r < bad_row.load(std::memory_order_relaxed); r++) {
      const float* xr = x + (int64_t)r * k;
      if (bf16) {
        const uint16_t* br = reinterpret_cast<const uint16_t*>(src.data) + (int64_t)r * k;
        widen_bf16(br, w, k);
        xr = w;
      }
      const QuantStatus s = fmt == 0 ? q4k(xr, out.data + r * row_bytes, k) : quantize_weights_q8_0_fast(xr, out.data + r * row_bytes, k);
      if (s.code == QuantStatus::OK) continue;
      std::lock_guard<std::mutex> lock(mu);
      if (r < bad_row.load()) { bad_row.store(r); status[0] = s; }
      return;
    }
  });
  if (bad_row.load() != INT64_MAX) {
    const std::string where = std::string("quantize ") + name + ": row " + std::to_string(bad_row.load());
    if (status[0].code == QuantStatus::NON_FINITE)
      throw Napi::RangeError::New(env, where + " element " + std::to_string(status[0].index) + " is not finite; only finite values can be quantized");
    throw Napi::RangeError::New(env, where + " block " + std::to_string(status[0].index) + ": the block scale overflows f16 (inputs too large in magnitude)");
  }
  return env.Undefined();
}

// bf16ToF32(src, out): widens bf16 bits to f32 (exact), spread over the pool.
Napi::Value Bf16ToF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes src = typed(info, 0, "src"), out = typed(info, 1, "out");
  const int64_t n = (int64_t)(src.size / 2);
  need(env, out, (uint64_t)n * 4, "bf16ToF32 out");
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src.data);
  uint32_t* d = reinterpret_cast<uint32_t*>(out.data);
  constexpr int64_t CHUNK = 1 << 16;  // elements per task
  const int64_t tasks = (n + CHUNK - 1) / CHUNK;
  if (tasks > INT32_MAX) throw Napi::RangeError::New(env, "bf16ToF32: array too large");
  shared_pool().run((int)tasks, [&](int t, int) {
    const int64_t i1 = std::min(n, (t + 1) * CHUNK);
    for (int64_t i = t * CHUNK; i < i1; i++) d[i] = (uint32_t)s[i] << 16;
  });
  return env.Undefined();
}

}  // namespace

void register_isq(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeQ8K", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Quantize(i, true); }));
  exports.Set("quantizeQ80", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Quantize(i, false); }));
  exports.Set("quantizeRows", Napi::Function::New(env, QuantizeRows));
  exports.Set("bf16ToF32", Napi::Function::New(env, Bf16ToF32));
}

}  // namespace phi4mm
