// N-API side of the x16 weight layout (interleave.h): in-place conversion at load, the inverse (for saving
// and for the tests), and the row reader the embedding lookup of an x16 table uses.
#include "interleave.h"

#include <vector>

#include "device_napi.h"

namespace phi4mm {
using namespace dev;

namespace {

struct Shape {
  int fmt, rows, nb;
  int64_t row_bytes;
};

// (data, fmt, rows, k) with fmt 0 q4_k / 1 q8_0, rows a multiple of 16, k a multiple of the block size.
Shape shape_of(const Napi::CallbackInfo& info, const Bytes& data, const char* what) {
  Napi::Env env = info.Env();
  const int fmt = count(info, 1, "format"), rows = count(info, 2, "rows"), k = count(info, 3, "k");
  if (fmt > 1) throw range(env, std::string(what) + ": format must be 0 (q4_k) or 1 (q8_0)");
  if (rows % X16) throw range(env, std::string(what) + ": " + std::to_string(rows) + " rows is not a multiple of 16");
  const int bs = fmt == 0 ? QK_K : QK8_0;
  if (k % bs) throw range(env, std::string(what) + ": K=" + std::to_string(k) + " is not a multiple of the block size " + std::to_string(bs));
  const Shape s{fmt, rows, k / bs, (int64_t)(k / bs) * x16_block_bytes(fmt)};
  need(env, data, (uint64_t)rows * s.row_bytes, what);
  return s;
}

// interleaveX16(data, fmt, rows, k): ggml rows → x16 groups, in place (one group of scratch per task).
Napi::Value InterleaveX16(const Napi::CallbackInfo& info) {
  const Bytes data = typed(info, 0, "data");
  const Shape s = shape_of(info, data, "interleaveX16");
  const int groups = s.rows / X16;
  parallel_for(groups, X16 * s.row_bytes, [&](int g0, int g1) {
    std::vector<uint8_t> tmp((size_t)X16 * s.row_bytes);
    for (int g = g0; g < g1; g++) {
      uint8_t* p = data.data + (int64_t)g * X16 * s.row_bytes;
      x16_pack_group(s.fmt, p, s.row_bytes, s.nb, tmp.data());
      std::memcpy(p, tmp.data(), tmp.size());
    }
  });
  return info.Env().Undefined();
}

// deinterleaveX16(src, fmt, rows, k, out): x16 groups → ggml rows (out must not alias src).
Napi::Value DeinterleaveX16(const Napi::CallbackInfo& info) {
  const Bytes src = typed(info, 0, "src"), out = typed(info, 4, "out");
  const Shape s = shape_of(info, src, "deinterleaveX16");
  need(info.Env(), out, (uint64_t)s.rows * s.row_bytes, "deinterleaveX16 out");
  parallel_for(s.rows / X16, X16 * s.row_bytes, [&](int g0, int g1) {
    for (int g = g0; g < g1; g++)
      for (int r = 0; r < X16; r++)
        x16_unpack_row(s.fmt, src.data + (int64_t)g * X16 * s.row_bytes, s.nb, r, out.data + (int64_t)(g * X16 + r) * s.row_bytes);
  });
  return info.Env().Undefined();
}

}  // namespace

void x16_row(int fmt, const uint8_t* table, int64_t row_bytes, int row, uint8_t* dst) {
  const int nb = (int)(row_bytes / x16_block_bytes(fmt));
  x16_unpack_row(fmt, table + (int64_t)(row / X16) * X16 * row_bytes, nb, row % X16, dst);
}

void register_interleave(Napi::Env env, Napi::Object exports) {
  exports.Set("interleaveX16", Napi::Function::New(env, InterleaveX16));
  exports.Set("deinterleaveX16", Napi::Function::New(env, DeinterleaveX16));
}

}  // namespace phi4mm
