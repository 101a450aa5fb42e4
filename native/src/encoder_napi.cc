// N-API side of the encoders' ops (SigLIP, the audio conformer): the bf16 GEMM and the element-wise and
// convolution kernels of encoder_ops.h, split over the shared pool.
#include <string>
#include <vector>

#include "device_napi.h"
#include "encoder_ops.h"
#include "gemm_bf16.h"

namespace phi4mm {
using namespace dev;

namespace {

bool has_avx512bf16() {
  return __builtin_cpu_supports("avx512bf16");
}

// linearBf16(x, m, w(bf16), wOffset, ldw, n, k, bias|null, out): out = bf16(x) · Wᵀ (+ bias), products exact,
// sums in f32 (gemm_bf16.cc). Throws where the CPU lacks AVX512-BF16 (hasBf16Compute() says beforehand).
Napi::Value LinearBf16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!has_avx512bf16()) throw Napi::Error::New(env, "linearBf16: this CPU has no AVX512-BF16; use f32 compute");
  const Bytes x = typed(info, 0, "x"), w = typed(info, 2, "w");
  const int m = count(info, 1, "m");
  const int64_t woff = integer(info, 3, "wOffset"), ldw = integer(info, 4, "ldw");
  const int n = count(info, 5, "n"), k = count(info, 6, "k");
  const Bytes bias = typed_or_null(info, 7, "bias"), out = typed(info, 8, "out");
  if (woff < 0 || ldw < k) throw Napi::RangeError::New(env, "linearBf16: bad weight offset/row stride");
  need(env, x, (uint64_t)m * k * 4, "linearBf16 x");
  if (n > 0) need(env, w, ((uint64_t)woff + (uint64_t)(n - 1) * ldw + k) * 2, "linearBf16 weight");
  if (bias.data) need(env, bias, (uint64_t)n * 4, "linearBf16 bias");
  need(env, out, (uint64_t)m * n * 4, "linearBf16 out");
  if (m == 0 || n == 0) return env.Undefined();
  const int64_t lda = (k + 31) / 32 * 32;  // bf16 rows zero-padded to whole vdpbf16ps steps
  std::vector<uint16_t> a((size_t)m * lda);
  const float* xf = reinterpret_cast<const float*>(x.data);
  parallel_rows(m, 1, [&](int i0, int i1) { bf16::round_rows(xf + (int64_t)i0 * k, i1 - i0, k, k, a.data() + i0 * lda, lda); });
  bf16::Args g{a.data(), lda, reinterpret_cast<const uint16_t*>(w.data) + woff, ldw, reinterpret_cast<float*>(out.data), n,
               reinterpret_cast<const float*>(bias.data), m, n, k};
  parallel_rows(n, 6, [&](int n0, int n1) { bf16::gemm_nt(g, n0, n1); });
  return env.Undefined();
}

// An element-wise op (x, out): op(x, out, i0, i1) over the pool in ranges of ELEMENTWISE_TASK values.
constexpr int64_t ELEMENTWISE_TASK = 1 << 16;
template <typename F>
Napi::Value elementwise(const Napi::CallbackInfo& info, const char* out_name, F&& op) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), out = typed(info, 1, "out");
  const int64_t n = (int64_t)(x.size / 4);
  need(env, out, (uint64_t)n * 4, out_name);
  const float* xf = reinterpret_cast<const float*>(x.data);
  float* yf = reinterpret_cast<float*>(out.data);
  const int tasks = (int)((n + ELEMENTWISE_TASK - 1) / ELEMENTWISE_TASK);
  shared_pool().run(tasks, [&](int t, int) { op(xf, yf, t * ELEMENTWISE_TASK, std::min(n, (t + 1) * ELEMENTWISE_TASK)); });
  return env.Undefined();
}

// geluTanh(x, out): out = gelu_pytorch_tanh(x) element-wise (out may be x).
Napi::Value GeluTanh(const Napi::CallbackInfo& info) {
  const auto exp = active_kernels().exp;
  return elementwise(info, "geluTanh out", [&](const float* x, float* y, int64_t i0, int64_t i1) { encoder_ops::gelu_tanh(x, y, i0, i1, exp); });
}

// swishGate(x, rows, w, b1|null, b2|null, out): out [rows, w] = (x[:, :w] (+ b1)) · silu-gate(x[:, w:] (+ b2))
// (encoder_ops.h; the TypeScript ops.swishGate's bits).
Napi::Value SwishGate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), b1 = typed_or_null(info, 3, "b1"), b2 = typed_or_null(info, 4, "b2"), out = typed(info, 5, "out");
  const int rows = count(info, 1, "rows"), w = count(info, 2, "w");
  need(env, x, (uint64_t)rows * 2 * w * 4, "swishGate x");
  if (b1.data) need(env, b1, (uint64_t)w * 4, "swishGate b1");
  if (b2.data) need(env, b2, (uint64_t)w * 4, "swishGate b2");
  need(env, out, (uint64_t)rows * w * 4, "swishGate out");
  const auto exp = active_device_kernels().exp_f64;
  parallel_rows(rows, 1, [&](int r0, int r1) {
    encoder_ops::swish_gate(reinterpret_cast<const float*>(x.data), w, reinterpret_cast<const float*>(b1.data), reinterpret_cast<const float*>(b2.data),
                            reinterpret_cast<float*>(out.data), r0, r1, exp);
  });
  return env.Undefined();
}

// silu(x, out): out = x / (1 + e^−x) element-wise in f64 (out may be x; the TypeScript ops.silu's bits).
Napi::Value Silu(const Napi::CallbackInfo& info) {
  const auto exp = active_device_kernels().exp_f64;
  return elementwise(info, "silu out", [&](const float* x, float* y, int64_t i0, int64_t i1) { encoder_ops::silu(x, y, i0, i1, exp); });
}

// conv3x3s2(x, h, w, c, cin, weight, bias, relu, out): the audio subsampling convs (encoder_ops.h).
Napi::Value Conv3x3s2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), wt = typed(info, 5, "weight"), b = typed(info, 6, "bias"), out = typed(info, 8, "out");
  const int h = count(info, 1, "h"), w = count(info, 2, "w"), c = count(info, 3, "c"), cin = count(info, 4, "cin");
  const bool relu = info[7].ToBoolean().Value();
  if (cin != 1 && cin != c) throw Napi::RangeError::New(env, "conv3x3s2: cin must be 1 or c");
  const int ho = encoder_ops::conv3x3s2_out(h), wo = encoder_ops::conv3x3s2_out(w);
  need(env, x, (uint64_t)h * w * cin * 4, "conv3x3s2 x");
  need(env, wt, (uint64_t)9 * c * 4, "conv3x3s2 weight");
  need(env, b, (uint64_t)c * 4, "conv3x3s2 bias");
  need(env, out, (uint64_t)ho * wo * c * 4, "conv3x3s2 out");
  if (h == 0 || w == 0) return env.Undefined();
  parallel_rows(ho, 1, [&](int y0, int y1) {
    encoder_ops::conv3x3s2(reinterpret_cast<const float*>(x.data), h, w, c, cin, reinterpret_cast<const float*>(wt.data),
                           reinterpret_cast<const float*>(b.data), relu, reinterpret_cast<float*>(out.data), y0, y1);
  });
  return env.Undefined();
}

// conv3x3s2Pair(x, h, w, c, w0, b0, w1, b1, out): conv3x3s2(x, h, w, c, 1, w0, b0, relu) then
// conv3x3s2(·, c, c, w1, b1, no relu) into out, without the intermediate image (encoder_ops.h).
Napi::Value Conv3x3s2Pair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), w0 = typed(info, 4, "w0"), b0 = typed(info, 5, "b0"), w1 = typed(info, 6, "w1"), b1 = typed(info, 7, "b1"),
              out = typed(info, 8, "out");
  const int h = count(info, 1, "h"), w = count(info, 2, "w"), c = count(info, 3, "c");
  const int h1 = encoder_ops::conv3x3s2_out(h), wd1 = encoder_ops::conv3x3s2_out(w), h2 = encoder_ops::conv3x3s2_out(h1), wd2 = encoder_ops::conv3x3s2_out(wd1);
  need(env, x, (uint64_t)h * w * 4, "conv3x3s2Pair x");
  need(env, w0, (uint64_t)9 * c * 4, "conv3x3s2Pair w0");
  need(env, w1, (uint64_t)9 * c * 4, "conv3x3s2Pair w1");
  need(env, b0, (uint64_t)c * 4, "conv3x3s2Pair b0");
  need(env, b1, (uint64_t)c * 4, "conv3x3s2Pair b1");
  need(env, out, (uint64_t)h2 * wd2 * c * 4, "conv3x3s2Pair out");
  if (h == 0 || w == 0) return env.Undefined();
  parallel_rows(h2, 1, [&](int y0, int y1) {
    thread_local std::vector<float> ring;
    if (ring.size() < (size_t)3 * wd1 * c) ring.resize((size_t)3 * wd1 * c);
    encoder_ops::conv3x3s2_pair(reinterpret_cast<const float*>(x.data), h, w, c, reinterpret_cast<const float*>(w0.data), reinterpret_cast<const float*>(b0.data),
                                reinterpret_cast<const float*>(w1.data), reinterpret_cast<const float*>(b1.data), reinterpret_cast<float*>(out.data), y0, y1, ring.data());
  });
  return env.Undefined();
}

// relu(x): x = max(x, 0) in place.
Napi::Value Relu(const Napi::CallbackInfo& info) {
  const Bytes x = typed(info, 0, "x");
  const int64_t n = (int64_t)(x.size / 4);
  constexpr int64_t TASK = 1 << 18;
  const int tasks = (int)((n + TASK - 1) / TASK);
  float* xf = reinterpret_cast<float*>(x.data);
  shared_pool().run(tasks, [&](int t, int) { encoder_ops::relu(xf, t * TASK, std::min(n, (t + 1) * TASK)); });
  return info.Env().Undefined();
}

// layerNorm(x, rows, dim, w, b|null, eps, out): per-row LayerNorm (out may be x).
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), w = typed(info, 3, "w"), b = typed_or_null(info, 4, "b"), out = typed(info, 6, "out");
  const int rows = count(info, 1, "rows"), d = count(info, 2, "dim");
  if (!info[5].IsNumber()) throw Napi::TypeError::New(env, "eps must be a number");
  const float eps = info[5].As<Napi::Number>().FloatValue();
  need(env, x, (uint64_t)rows * d * 4, "layerNorm x");
  need(env, w, (uint64_t)d * 4, "layerNorm w");
  if (b.data) need(env, b, (uint64_t)d * 4, "layerNorm b");
  need(env, out, (uint64_t)rows * d * 4, "layerNorm out");
  parallel_rows(rows, 1, [&](int r0, int r1) {
    encoder_ops::layer_norm(reinterpret_cast<const float*>(x.data), reinterpret_cast<float*>(out.data), d, reinterpret_cast<const float*>(w.data),
                            reinterpret_cast<const float*>(b.data), eps, r0, r1);
  });
  return env.Undefined();
}

}  // namespace

void register_encoder_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("linearBf16", Napi::Function::New(env, LinearBf16));
  exports.Set("geluTanh", Napi::Function::New(env, GeluTanh));
  exports.Set("swishGate", Napi::Function::New(env, SwishGate));
  exports.Set("silu", Napi::Function::New(env, Silu));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("conv3x3s2", Napi::Function::New(env, Conv3x3s2));
  exports.Set("conv3x3s2Pair", Napi::Function::New(env, Conv3x3s2Pair));
  exports.Set("relu", Napi::Function::New(env, Relu));
  exports.Set("hasBf16Compute", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Napi::Boolean::New(i.Env(), has_avx512bf16()); }));
}

}  // namespace phi4mm
