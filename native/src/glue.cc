// N-API side of the device glue ops (src/tensor/device.ts): rmsNorm, rope, swiglu, add, embedding, gatherRows
// (LoRA row segments: lora_napi.cc). Activations are f32 typed arrays read and written in place; one call covers all rows.
#include <algorithm>
#include <cstring>
#include <vector>

#include "device_napi.h"

namespace phi4mm {

const DeviceKernels& active_device_kernels() {
  const std::string name = active_kernels().name;
  if (name == avx512::device_kernels.name) return avx512::device_kernels;
  if (name == avx2::device_kernels.name) return avx2::device_kernels;
  return generic::device_kernels;
}

namespace {
using namespace dev;

float* f32(const Bytes& b) { return reinterpret_cast<float*>(b.data); }

// rmsNorm(x, rows, dim, weight, eps, out)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), w = typed(info, 3, "weight"), out = typed(info, 5, "out");
  const int rows = count(info, 1, "rows"), dim = count(info, 2, "dim");
  const double eps = number(info, 4, "eps");
  need(env, x, (uint64_t)rows * dim * 4, "rmsNorm x");
  need(env, w, (uint64_t)dim * 4, "rmsNorm weight");
  need(env, out, (uint64_t)rows * dim * 4, "rmsNorm out");
  const DeviceKernels& D = active_device_kernels();
  parallel_for(rows, dim, [&](int r0, int r1) {
    D.rms_norm(f32(x) + (int64_t)r0 * dim, f32(out) + (int64_t)r0 * dim, f32(w), r1 - r0, dim, eps);
  });
  return env.Undefined();
}

// rope(x, rows, rowStride, offset, nHeads, headDim, rotaryDim, cos, sin)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), cos = typed(info, 7, "cos"), sin = typed(info, 8, "sin");
  const int rows = count(info, 1, "rows"), ld = count(info, 2, "rowStride"), off = count(info, 3, "offset"),
            nh = count(info, 4, "nHeads"), hd = count(info, 5, "headDim"), rd = count(info, 6, "rotaryDim");
  if (rd % 2 != 0 || rd > hd || (int64_t)off + (int64_t)nh * hd > ld)
    throw range(env, "rope: " + std::to_string(nh) + " heads of " + std::to_string(hd) + " (rotary " + std::to_string(rd) + ") at column " + std::to_string(off) + " do not fit rows of " + std::to_string(ld));
  if (rows > 0) need(env, x, ((uint64_t)(rows - 1) * ld + off + (uint64_t)nh * hd) * 4, "rope x");
  need(env, cos, (uint64_t)rows * rd * 4, "rope cos");
  need(env, sin, (uint64_t)rows * rd * 4, "rope sin");
  const DeviceKernels& D = active_device_kernels();
  parallel_for(rows, (int64_t)nh * rd, [&](int r0, int r1) {
    D.rope(f32(x) + (int64_t)r0 * ld, r1 - r0, ld, off, nh, hd, rd, f32(cos) + (int64_t)r0 * rd, f32(sin) + (int64_t)r0 * rd);
  });
  return env.Undefined();
}

// swiglu(gu, rows, inter, out): out[r] = up · (gate / (1 + e^−gate)) in f64, rounded once (device.h).
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes gu = typed(info, 0, "gu"), out = typed(info, 3, "out");
  const int rows = count(info, 1, "rows"), inter = count(info, 2, "inter");
  need(env, gu, (uint64_t)rows * inter * 8, "swiglu gu");
  need(env, out, (uint64_t)rows * inter * 4, "swiglu out");
  const DeviceKernels& D = active_device_kernels();
  parallel_for(rows, (int64_t)inter * 8, [&](int r0, int r1) {
    D.swiglu(f32(gu) + (int64_t)r0 * 2 * inter, f32(out) + (int64_t)r0 * inter, r1 - r0, inter);
  });
  return env.Undefined();
}

// addInPlace(x, y, n, alpha): x[0:n] += alpha · y[0:n] (alpha 1: a plain add, 1·y being exact)
Napi::Value Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), y = typed(info, 1, "y");
  const int64_t n = integer(info, 2, "n");
  const float alpha = (float)number(info, 3, "alpha");
  if (n < 0) throw range(env, "add: n must be non-negative");
  need(env, x, (uint64_t)n * 4, "add x");
  need(env, y, (uint64_t)n * 4, "add y");
  constexpr int64_t CHUNK = 1 << 14;
  float* a = f32(x);
  const float* b = f32(y);
  parallel_for((int)((n + CHUNK - 1) / CHUNK), CHUNK, [&](int c0, int c1) {
    const int64_t i1 = std::min(n, (int64_t)c1 * CHUNK);
    for (int64_t i = (int64_t)c0 * CHUNK; i < i1; i++) a[i] += alpha * b[i];
  });
  return env.Undefined();
}

// ---- embedding rows: dequantizers bit-exact with src/quant (this target has no FMA contraction) ----
enum EmbType { EMB_F32 = 0, EMB_BF16 = 1, EMB_F16 = 2, EMB_Q4_K = 3, EMB_Q8_0 = 4, EMB_Q4_K_X16 = 5, EMB_Q8_0_X16 = 6 };

void dequant_q8_0_row(const uint8_t* src, float* dst, int k) {
  for (int b = 0; b < k / QK8_0; b++) {
    const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(src) + b;
    const float d = fp16_to_fp32_soft(blk->d);
    for (int j = 0; j < QK8_0; j++) dst[b * QK8_0 + j] = d * (float)blk->qs[j];
  }
}

// One Q4_K super-block as stored.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 6-bit scales and mins of 8 sub-blocks
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == BLOCK_Q4_K_BYTES, "Q4_K block is 144 bytes");

void dequant_q4_k_row(const uint8_t* src, float* dst, int k) {
  for (int b = 0; b < k / QK_K; b++) {
    const BlockQ4_K* blk = reinterpret_cast<const BlockQ4_K*>(src) + b;
    const float d = fp16_to_fp32_soft(blk->d), dmin = fp16_to_fp32_soft(blk->dmin);
    const uint8_t* s = blk->scales;
    float* y = dst + b * QK_K;
    for (int c = 0; c < 4; c++) {
      uint8_t sc[2], mn[2];
      for (int h = 0; h < 2; h++) {  // get_scale_min_k4(2c + h)
        const int j = 2 * c + h;
        if (j < 4) { sc[h] = s[j] & 63; mn[h] = s[j + 4] & 63; }
        else { sc[h] = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4); mn[h] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
      }
      const float d1 = d * sc[0], m1 = dmin * mn[0], d2 = d * sc[1], m2 = dmin * mn[1];
      const uint8_t* q = blk->qs + 32 * c;
      for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xf) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
  }
}

// embedding(table, type, elemOffset, vocab, dim, ids, out)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes table = typed(info, 0, "table"), ids = typed(info, 5, "ids"), out = typed(info, 6, "out");
  const int type = count(info, 1, "type"), vocab = count(info, 3, "vocab"), dim = count(info, 4, "dim");
  const int64_t off = integer(info, 2, "elemOffset");
  if (type > EMB_Q8_0_X16) throw range(env, "embedding: type must be 0 f32, 1 bf16, 2 f16, 3 q4_k, 4 q8_0, 5 q4_k x16 or 6 q8_0 x16");
  const bool x16 = type >= EMB_Q4_K_X16;
  if (x16 && vocab % 16) throw range(env, "embedding: an x16 table needs a multiple of 16 rows, got " + std::to_string(vocab));
  const int base = x16 ? type - EMB_Q4_K_X16 + EMB_Q4_K : type;  // the block format of the rows
  const int n = (int)(ids.size / 4);
  int64_t row_bytes;
  switch (base) {
    case EMB_F32: row_bytes = (int64_t)dim * 4; break;
    case EMB_BF16: case EMB_F16: row_bytes = (int64_t)dim * 2; break;
    case EMB_Q4_K:
      if (dim % QK_K) throw range(env, "embedding: q4_k rows need a multiple of 256 values");
      row_bytes = (int64_t)dim / QK_K * BLOCK_Q4_K_BYTES;
      break;
    default:
      if (dim % QK8_0) throw range(env, "embedding: q8_0 rows need a multiple of 32 values");
      row_bytes = (int64_t)dim / QK8_0 * BLOCK_Q8_0_BYTES;
  }
  const int64_t off_bytes = off * (type == EMB_F32 ? 4 : type <= EMB_F16 ? 2 : 0);
  need(env, table, (uint64_t)off_bytes + (uint64_t)vocab * row_bytes, "embedding table");
  need(env, out, (uint64_t)n * dim * 4, "embedding out");
  const int32_t* id = reinterpret_cast<const int32_t*>(ids.data);
  for (int i = 0; i < n; i++)
    if (id[i] < 0 || id[i] >= vocab)
      throw range(env, "embedding: token id " + std::to_string(id[i]) + " at " + std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  const DeviceKernels& D = active_device_kernels();
  parallel_for(n, dim, [&](int i0, int i1) {
    std::vector<uint8_t> unpacked(x16 ? (size_t)row_bytes : 0);
    for (int i = i0; i < i1; i++) {
      const uint8_t* row = table.data + off_bytes + id[i] * row_bytes;
      if (x16) {
        x16_row(base - EMB_Q4_K, table.data, row_bytes, id[i], unpacked.data());
        row = unpacked.data();
      }
      float* o = f32(out) + (int64_t)i * dim;
      switch (base) {
        case EMB_F32: std::memcpy(o, row, (size_t)dim * 4); break;
        case EMB_BF16: {
          const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
          uint32_t* u = reinterpret_cast<uint32_t*>(o);
          for (int c = 0; c < dim; c++) u[c] = (uint32_t)h[c] << 16;
          break;
        }
        case EMB_F16: D.from_f16(reinterpret_cast<const uint16_t*>(row), o, dim); break;
        case EMB_Q4_K: dequant_q4_k_row(row, o, dim); break;
        default: dequant_q8_0_row(row, o, dim);
      }
    }
  });
  return env.Undefined();
}

// gatherRows(x, dim, rows, out): out[i] = x[rows[i]]
Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Bytes x = typed(info, 0, "x"), rows = typed(info, 2, "rows"), out = typed(info, 3, "out");
  const int dim = count(info, 1, "dim");
  const int n = (int)(rows.size / 4);
  const int64_t have = dim == 0 ? 0 : (int64_t)(x.size / 4) / dim;
  need(env, out, (uint64_t)n * dim * 4, "gatherRows out");
  const int32_t* r = reinterpret_cast<const int32_t*>(rows.data);
  for (int i = 0; i < n; i++)
    if (r[i] < 0 || r[i] >= have)
      throw range(env, "gatherRows: row " + std::to_string(r[i]) + " is outside the buffer (" + std::to_string(have) + " rows of " + std::to_string(dim) + ")");
  for (int i = 0; i < n; i++) std::memmove(f32(out) + (int64_t)i * dim, f32(x) + (int64_t)r[i] * dim, (size_t)dim * 4);
  return env.Undefined();
}

}  // namespace

void register_glue(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu));
  exports.Set("addInPlace", Napi::Function::New(env, Add));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("gatherRows", Napi::Function::New(env, GatherRows));
}

}  // namespace phi4mm
