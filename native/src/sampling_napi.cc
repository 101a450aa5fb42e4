// The exponentials of temperature sampling (src/text/sampling.ts), bit for bit what the TypeScript loop computes:
// prob[j] = Math.exp((scores[j] − max) / temperature) in f64, summed in order, then prob[j] / sum. The exp is the
// device op exp_f64 (exp_fdlibm.h: V8's fdlibm exp, 4 lanes at a time with AVX2), so a seeded draw picks the same
// token with or without the addon. This target builds with -ffp-contract=off: the subtraction and division
// round as in V8. Over 200k logits it takes 0.9–1.2 ms with AVX2 where the TypeScript loop took 2.5–4.4 ms of
// each sampled token.
#include <cstdint>
#include <cstring>

#include "device_napi.h"

namespace phi4mm {
using namespace dev;

namespace {

// softmaxShifted(scores: Float32Array, cand: Int32Array | null, m, max, temperature, out: Float64Array): out[j] =
// exp((scores[cand ? cand[j] : j] − max) / temperature) / Σ, for j < m. Returns Σ (summed in order j = 0, 1, …).
Napi::Value SoftmaxShifted(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes s = typed(info, 0, "scores"), cand = typed_or_null(info, 1, "cand"), out = typed(info, 5, "out");
  const int m = count(info, 2, "m");
  const double max = number(info, 3, "max"), temperature = number(info, 4, "temperature");
  if (!(temperature > 0)) throw range(env, "softmaxShifted: temperature must be > 0");
  need(env, out, (uint64_t)m * 8, "softmaxShifted out");
  const float* sc = reinterpret_cast<const float*>(s.data);
  const int32_t* cd = reinterpret_cast<const int32_t*>(cand.data);
  double* prob = reinterpret_cast<double*>(out.data);
  const int64_t n_scores = (int64_t)(s.size / 4);
  if (cd) {
    need(env, cand, (uint64_t)m * 4, "softmaxShifted cand");
    for (int j = 0; j < m; j++)
      if (cd[j] < 0 || cd[j] >= n_scores) throw range(env, "softmaxShifted: cand[" + std::to_string(j) + "] = " + std::to_string(cd[j]) + " is outside the scores");
  } else {
    need(env, s, (uint64_t)m * 4, "softmaxShifted scores");
  }
  for (int j = 0; j < m; j++) prob[j] = ((double)sc[cd ? cd[j] : j] - max) / temperature;
  active_device_kernels().exp_f64(prob, prob, m);
  double sum = 0;
  for (int j = 0; j < m; j++) sum += prob[j];  // in order, as the TypeScript loop
  for (int j = 0; j < m; j++) prob[j] /= sum;
  return Napi::Number::New(env, sum);
}

// expF64(x: Float64Array, out: Float64Array): the active ISA's exp_f64, for the tests against Math.exp.
Napi::Value ExpF64(const Napi::CallbackInfo& info) {
  const Bytes x = typed(info, 0, "x"), out = typed(info, 1, "out");
  need(info.Env(), out, x.size, "expF64 out");
  const double* xs = reinterpret_cast<const double*>(x.data);
  double* o = reinterpret_cast<double*>(out.data);
  active_device_kernels().exp_f64(xs, o, (int64_t)(x.size / 8));
  return info.Env().Undefined();
}

}  // namespace

void register_sampling(Napi::Env env, Napi::Object exports) {
  exports.Set("softmaxShifted", Napi::Function::New(env, SoftmaxShifted));
  exports.Set("expF64", Napi::Function::New(env, ExpF64));
}

}  // namespace phi4mm
