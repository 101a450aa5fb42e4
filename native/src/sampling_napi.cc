// Temperature sampling (src/text/sampling.ts), bit for bit what the TypeScript reference computes, so a seeded
// draw picks the same token with or without the addon:
//  - softmaxShifted: prob[j] = Math.exp((scores[j] − max) / temperature) in f64, summed in order, then prob[j] / sum.
//    The exp is the device op exp_f64 (exp_fdlibm.h: V8's fdlibm exp, 8 lanes at a time with AVX-512, 4 with
//    AVX2). Over 200k logits it took 0.9–1.2 ms with AVX2 where the TypeScript loop took 2.5–4.4 ms of each
//    sampled token; a whole default draw (temperature only) now takes ~0.8 ms under AVX-512 (1.8 ms before the
//    8-lane exp, the vector count-and-max and the register-held walk; best of 5 alternating rounds, 200,064 logits).
//  - sampleDraw: the whole draw (candidates, top-k, that softmax, top-p, min-p, the walk) in one call;
//  - sumExpShifted: the logprobs' normalizer.
// This target builds with -ffp-contract=off: the subtraction and division round as in V8.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "device_napi.h"

namespace phi4mm {
using namespace dev;

namespace {

// prob[j] = exp((sc[cand ? cand[j] : j] − max) / temperature) / Σ for j < m; returns Σ, summed in order j = 0, 1, …
static double softmax_shifted(const float* sc, const int32_t* cd, int m, double max, double temperature, double* prob) {
  for (int j = 0; j < m; j++) prob[j] = ((double)sc[cd ? cd[j] : j] - max) / temperature;
  active_device_kernels().exp_f64(prob, prob, m);
  double sum = 0;
  for (int j = 0; j < m; j++) sum += prob[j];  // in order, as the TypeScript loop
  for (int j = 0; j < m; j++) prob[j] /= sum;
  return sum;
}

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
  const int64_t n_scores = (int64_t)(s.size / 4);
  if (cd) {
    need(env, cand, (uint64_t)m * 4, "softmaxShifted cand");
    for (int j = 0; j < m; j++)
      if (cd[j] < 0 || cd[j] >= n_scores) throw range(env, "softmaxShifted: cand[" + std::to_string(j) + "] = " + std::to_string(cd[j]) + " is outside the scores");
  } else {
    need(env, s, (uint64_t)m * 4, "softmaxShifted scores");
  }
  return Napi::Number::New(env, softmax_shifted(sc, cd, m, max, temperature, reinterpret_cast<double*>(out.data)));
}

// sumExpShifted(scores: Float32Array, n, max): Σ exp(scores[i] − max) over i < n with scores[i] > −∞ (NaN
// skipped too), summed in order of i: the normalizer of the logprobs (src/text/sampler.ts), bit for bit the
// TypeScript loop's. Exponentials in chunks through the active ISA's exp_f64.
Napi::Value SumExpShifted(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes s = typed(info, 0, "scores");
  const int n = count(info, 1, "n");
  const double max = number(info, 2, "max");
  need(env, s, (uint64_t)n * 4, "sumExpShifted scores");
  const float* sc = reinterpret_cast<const float*>(s.data);
  constexpr int CHUNK = 1024;  // values per exp_f64 call: 8 KiB of f64 on the stack
  double buf[CHUNK];
  double sum = 0;
  for (int i0 = 0; i0 < n; i0 += CHUNK) {
    int c = 0;
    for (int i = i0; i < std::min(n, i0 + CHUNK); i++)
      if (sc[i] > -INFINITY) buf[c++] = (double)sc[i] - max;
    active_device_kernels().exp_f64(buf, buf, c);
    for (int j = 0; j < c; j++) sum += buf[j];
  }
  return Napi::Number::New(env, sum);
}

// The filters and the draw of src/text/sampling.ts's draw(), in one call, with the same results: the candidates
// (finite scores, id order), top-k (scores ≥ the k-th largest, ties kept), the temperature softmax above, top-p,
// min-p, then the walk r −= prob[j] / total over the kept ids in id order. In TypeScript, top-k and top-p cost
// 40–110 ms a token over 200k logits (arrays built through callbacks, a comparator sort of every candidate).
//
// top-p keeps a token while the mass of the tokens ranked above it (prob descending, lower id first on ties) is
// < top_p: HF's TopPLogitsWarper (drop while the ascending cumulative sum is ≤ 1 − top_p) in exact arithmetic.
// Tokens with p ≤ (1 − top_p) / m are dropped unranked: together they hold ≤ 1 − top_p, so the mass above any of
// them is ≥ top_p. The rest are ranked in bands (nth_element, then sort), walked until the mass reaches top_p:
// only the head a real distribution keeps is ever sorted, and its sums are those of a full sort.
struct Ranked {  // a top-p candidate: its probability and its index j in the candidates (id order)
  double p;
  int32_t j;
};
struct DrawScratch {
  std::vector<int32_t> cand, kept;
  std::vector<Ranked> order, radix_tmp;
  std::vector<float> tmp;
  std::vector<double> prob;
  std::vector<uint8_t> keep;
};
constexpr int TOP_P_FIRST_BAND = 64;       // tokens ranked in the first band; each later band is 8× the last
constexpr size_t TOP_P_RADIX_FROM = 4096;  // a band this large ranks the whole rest by radix sort instead

// Ranks [first, end) as the bands do, by an LSD radix sort on the key (~bits of p, j): positive doubles order as
// their bits (complemented for descending), and j breaks ties, since earlier bands' nth_element left the rest in
// no particular order. 8-bit digits, j's first; a digit all entries share is skipped. Over ~190k kept tokens of a
// flat distribution, std::sort took ~15 ms.
static void radix_rank(std::vector<Ranked>::iterator first, std::vector<Ranked>::iterator end, std::vector<Ranked>& tmp) {
  const size_t n = (size_t)(end - first);
  tmp.resize(n);
  Ranked* src = &*first;
  Ranked* dst = tmp.data();
  const auto digit = [](const Ranked& r, int d) {  // d = 0..3: bytes of j; 4..11: bytes of ~bits(p)
    if (d < 4) return (uint32_t)(r.j >> (8 * d)) & 255;
    uint64_t b;
    std::memcpy(&b, &r.p, 8);
    return (uint32_t)(~b >> (8 * (d - 4))) & 255;
  };
  for (int d = 0; d < 12; d++) {
    size_t pos[257] = {};
    for (size_t i = 0; i < n; i++) pos[digit(src[i], d) + 1]++;
    bool same = false;
    for (int b = 1; b <= 256; b++) same |= pos[b] == n;
    if (same) continue;
    for (int b = 0; b < 256; b++) pos[b + 1] += pos[b];
    for (size_t i = 0; i < n; i++) dst[pos[digit(src[i], d)]++] = src[i];
    std::swap(src, dst);
  }
  if (src != &*first) std::copy(src, src + n, first);
}

// The number of finite-or-+∞ scores (> −∞: NaN and −∞ are masked) and their maximum, four at a time (SSE2, this
// file's baseline target): the max of floats is exact in any order, and a masked lane enters as −∞. The scalar
// loop's data-dependent branch took ~0.6 ms of a 2 ms draw over 200k logits.
static int count_and_max(const float* sc, int n_scores, double* max_out) {
  int n = 0, i = 0;
  float m = -INFINITY;
#if defined(__SSE2__)
  const __m128 ninf = _mm_set1_ps(-INFINITY);
  __m128 mx = ninf;
  __m128i cnt = _mm_setzero_si128();  // per lane: minus the kept count (a kept lane's mask is −1)
  for (; i + 4 <= n_scores; i += 4) {
    const __m128 v = _mm_loadu_ps(sc + i), ok = _mm_cmpgt_ps(v, ninf);
    mx = _mm_max_ps(mx, _mm_or_ps(_mm_and_ps(ok, v), _mm_andnot_ps(ok, ninf)));
    cnt = _mm_add_epi32(cnt, _mm_castps_si128(ok));
  }
  alignas(16) float lanes[4];
  alignas(16) int32_t counts[4];
  _mm_store_ps(lanes, mx);
  _mm_store_si128(reinterpret_cast<__m128i*>(counts), cnt);
  m = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  n = -(counts[0] + counts[1] + counts[2] + counts[3]);
#endif
  for (; i < n_scores; i++)
    if (sc[i] > -INFINITY) n++, m = std::max(m, sc[i]);
  *max_out = m;
  return n;
}

// The walk r −= prob[j] / total over every candidate: the first j where r < 0, or the last one when rounding
// leaves r ≥ 0. Its own function, so r stays in a register (inlined, it was stored and reloaded every step).
__attribute__((noinline)) static int walk_all(const double* prob, int m, double total, double r) {
  for (int j = 0; j < m; j++) {
    r -= prob[j] / total;
    if (r < 0) return j;
  }
  return m - 1;
}

// Returns the drawn id, or −1 when every score is −∞ or NaN (the caller's error to throw).
static int32_t sample_draw(const float* sc, int n_scores, double temperature, int top_k, double top_p, double min_p, double r) {
  thread_local DrawScratch w;
  double max = -INFINITY;
  const int n = count_and_max(sc, n_scores, &max);
  if (n == 0) return -1;
  const int32_t* cd = nullptr;  // null: every id, in order
  if (n < n_scores) {
    w.cand.resize(n);
    for (int i = 0, j = 0; i < n_scores; i++)
      if (sc[i] > -INFINITY) w.cand[j++] = i;
    cd = w.cand.data();
  }
  int m = n;
  if (top_k > 0 && top_k < n) {
    w.tmp.resize(n);
    for (int j = 0; j < n; j++) w.tmp[j] = sc[cd ? cd[j] : j];
    std::nth_element(w.tmp.begin(), w.tmp.begin() + (top_k - 1), w.tmp.end(), std::greater<float>());
    const float kth = w.tmp[top_k - 1];
    w.kept.clear();  // ≥ k ids
    for (int j = 0; j < n; j++)
      if (sc[cd ? cd[j] : j] >= kth) w.kept.push_back(cd ? cd[j] : j);
    std::swap(w.cand, w.kept);
    cd = w.cand.data(), m = (int)w.cand.size();
  }
  w.prob.resize(m);
  double* prob = w.prob.data();
  softmax_shifted(sc, cd, m, max, temperature, prob);
  const uint8_t* keep = nullptr;
  if (top_p < 1 || min_p > 0) {
    w.keep.assign(m, 1);
    uint8_t* kp = w.keep.data();
    keep = kp;
    if (top_p < 1) {
      const double cutoff = (1 - top_p) / m;
      w.order.clear();
      for (int j = 0; j < m; j++)
        if (prob[j] <= cutoff) kp[j] = 0; else w.order.push_back({prob[j], j});
      // Ranked ahead: higher prob, then lower id (j is in id order). The probability is copied next to j, so the
      // sort compares without an indirection (2–3× faster when most of a flat distribution is kept).
      const auto ahead = [](const Ranked& a, const Ranked& b) { return a.p > b.p || (a.p == b.p && a.j < b.j); };
      auto first = w.order.begin(), end = w.order.end();
      double above = 0;
      size_t band = TOP_P_FIRST_BAND;
      bool reached = false;
      while (first != end && !reached) {
        auto last = (size_t)(end - first) > band ? first + band : end;
        if (last != end && band >= TOP_P_RADIX_FROM) {
          radix_rank(first, end, w.radix_tmp);
          last = end;
        } else {
          if (last != end) std::nth_element(first, last, end, ahead);
          std::sort(first, last, ahead);
        }
        for (; first != last; ++first) {
          if (above >= top_p) { reached = true; break; }
          above += first->p;
        }
        band *= 8;
      }
      for (; first != end; ++first) kp[first->j] = 0;
    }
    if (min_p > 0) {
      double p_max = 0;
      for (int j = 0; j < m; j++)
        if (kp[j]) p_max = std::max(p_max, prob[j]);
      for (int j = 0; j < m; j++)
        if (prob[j] < min_p * p_max) kp[j] = 0;
    }
  }
  double total = 0;
  for (int j = 0; j < m; j++)
    if (!keep || keep[j]) total += prob[j];
  if (!keep) {  // every candidate kept: the same walk without the mask test
    const int j = walk_all(prob, m, total, r);
    return cd ? cd[j] : j;
  }
  int32_t last = -1;
  for (int j = 0; j < m; j++) {
    if (keep && !keep[j]) continue;
    last = cd ? cd[j] : j;
    r -= prob[j] / total;
    if (r < 0) return last;
  }
  return last;  // rounding left r ≥ 0 after the last token
}

// sampleDraw(scores: Float32Array, temperature, topK, topP, minP, r): the id draw() picks with random number r
// in [0, 1), or −1 when no score is finite. The caller validates the parameters; they are checked again here.
Napi::Value SampleDraw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes s = typed(info, 0, "scores");
  const double temperature = number(info, 1, "temperature"), top_p = number(info, 3, "topP"), min_p = number(info, 4, "minP"), r = number(info, 5, "r");
  const int top_k = count(info, 2, "topK");
  if (!(temperature > 0)) throw range(env, "sampleDraw: temperature must be > 0, got " + std::to_string(temperature));
  if (!(top_p > 0 && top_p <= 1)) throw range(env, "sampleDraw: topP must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0 && min_p <= 1)) throw range(env, "sampleDraw: minP must be in [0, 1], got " + std::to_string(min_p));
  if (!(r >= 0 && r < 1)) throw range(env, "sampleDraw: r must be in [0, 1), got " + std::to_string(r));
  if (s.size / 4 > 0x7fffffff) throw range(env, "sampleDraw: too many scores");
  return Napi::Number::New(env, sample_draw(reinterpret_cast<const float*>(s.data), (int)(s.size / 4), temperature, top_k, top_p, min_p, r));
}

// argmaxScores(scores: Float32Array): the first index of the largest score above −∞ (NaN never is), or −1: the
// greedy pick of src/text/sampling.ts's argmax, whose scalar walk over 200k logits took ~0.2 ms a token.
Napi::Value ArgmaxScores(const Napi::CallbackInfo& info) {
  const Bytes s = typed(info, 0, "scores");
  const float* sc = reinterpret_cast<const float*>(s.data);
  const int n = (int)(s.size / 4);
  double max = -INFINITY;
  if (count_and_max(sc, n, &max) == 0) return Napi::Number::New(info.Env(), -1);
  const float m = (float)max;
  int i = 0;
#if defined(__SSE2__)
  const __m128 vm = _mm_set1_ps(m);
  for (; i + 4 <= n; i += 4) {
    const int hit = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(sc + i), vm));
    if (hit) return Napi::Number::New(info.Env(), i + __builtin_ctz((unsigned)hit));
  }
#endif
  for (; i < n; i++)
    if (sc[i] == m) break;
  return Napi::Number::New(info.Env(), i);
}

// copyMaskNaN(src: Float32Array, dst: Float32Array): dst = src with every NaN replaced by −∞ (penalizedScores' first
// step: a memcpy then a TypeScript scan of 200k values, ~0.25 ms a token).
Napi::Value CopyMaskNaN(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes src = typed(info, 0, "src"), dst = typed(info, 1, "dst");
  need(env, dst, src.size, "copyMaskNaN dst");
  const float* x = reinterpret_cast<const float*>(src.data);
  float* y = reinterpret_cast<float*>(dst.data);
  const int64_t n = (int64_t)(src.size / 4);
  for (int64_t i = 0; i < n; i++) y[i] = x[i] == x[i] ? x[i] : -INFINITY;
  return env.Undefined();
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
  exports.Set("sampleDraw", Napi::Function::New(env, SampleDraw));
  exports.Set("sumExpShifted", Napi::Function::New(env, SumExpShifted));
  exports.Set("argmaxScores", Napi::Function::New(env, ArgmaxScores));
  exports.Set("copyMaskNaN", Napi::Function::New(env, CopyMaskNaN));
}

}  // namespace phi4mm
