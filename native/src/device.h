// Backend v2 on the CPU (src/tensor/device.ts): the glue ops, the paged KV pool and paged attention, LoRA row
// segments. The per-ISA parts (device_impl.h, compiled as device_{generic,avx2,avx512}.cc) sit in one table,
// picked with the GEMM kernels' ISA; glue.cc and paged_attention.cc hold the N-API side.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace phi4mm {

// ---- the paged KV pool -----------------------------------------------------------------------------------
// K and V each [layers][blocks][blockSize][nKv][headDim]; a "row" is one (position, kv head): headDim values.
enum class KvType : int { F32 = 0, F16 = 1, Q8_0 = 2 };

// The one table of KV storage formats. A q8_0 row is ggml's Q8_0 recipe on groups of 32 values along headDim
// (the last group shorter when headDim is not a multiple of 32, quantized as if zero-padded): the groups' f16
// scales first, then headDim int8 values, so a row of d values takes d + 2·⌈d/32⌉ bytes (as host_kv.ts).
struct KvFormat {
  const char* name;
  int value_bytes;  // per value
  int group;        // values per f16 scale, 0 for none
  int64_t row_bytes(int d) const { return (int64_t)value_bytes * d + (group ? 2 * (int64_t)((d + group - 1) / group) : 0); }
};
constexpr KvFormat KV_FORMATS[] = {
    {"f32", 4, 0},
    {"f16", 2, 0},
    {"q8_0", 1, QK8_0},
};
inline const KvFormat& kv_format(KvType t) { return KV_FORMATS[(int)t]; }
// Bytes kernels may read past a row's last value (a partial vector of a q8_0 row's int8 values; never used).
constexpr int KV_ROW_OVERREAD = 64;

// One Q8_0 block as ggml stores weights: f16 scale, 32 int8 values.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(BlockQ8_0) == BLOCK_Q8_0_BYTES, "Q8_0 block is 34 bytes");

struct KvPool {
  KvType type;
  int layers, blocks, block_size, n_kv, head_dim;
  int64_t row_bytes;    // one (position, kv head) row
  int q8_groups;        // q8_0: scales per row (the int8 values start at 2·q8_groups)
  int64_t block_bytes;  // block_size · n_kv · row_bytes
  uint8_t* k;           // [layers][blocks] blocks, each [n_kv][block_size] rows
  uint8_t* v;
  uint8_t* mapping;     // what was allocated (aligned K and V lie inside)
  size_t mapping_bytes;
  bool mmapped;

  // The row of (layer, block, slot in block, kv head) in K or V. Head-major inside a block: attention reads one
  // kv head's rows of consecutive positions, which then lie next to each other (block_size · row_bytes, 4 KiB at
  // f16 and head_dim 128) instead of n_kv · row_bytes apart, a stride the hardware prefetchers did not follow.
  uint8_t* row(uint8_t* base, int layer, int block, int slot, int kh) const {
    return base + ((int64_t)layer * blocks + block) * block_bytes + ((int64_t)kh * block_size + slot) * row_bytes;
  }
};

// One sequence's rows in a ragged batch (device.ts SeqRows), block table resolved to a pointer.
struct SeqDesc {
  int row_start, rows, start;
  const int32_t* blocks;  // covers positions [0, start + rows)
};

struct PagedArgs {
  const KvPool* kv;
  int layer;
  const float* q; int64_t ldq; int q_offset;  // head h of row r at q[r·ldq + q_offset + h·d]
  float* out;                                // [rows, nHeads·d]
  int n_heads;
  float scale;
  const SeqDesc* seqs;
};

// One attention work item: query rows [r0, r1) of sequence `seq` (relative to its first new row), all heads of
// kv head `kh`.
struct PagedItem {
  int seq, kh, r0, r1;
};
// Scratch floats one item needs: `rows` = (r1 − r0)·group score rows of lds ≥ start + r1 floats, plus row
// pointers (8-byte aligned when the scratch is: lds is even) and each score row's 1/Σp.
inline int64_t paged_scratch_floats(int rows, int64_t lds) { return (int64_t)rows * lds + 4 * lds + 3 * rows; }

struct DeviceKernels {
  const char* name;
  // out[r] = w · f32(x[r] · 1/sqrt(Σx²/dim + eps)), the sum (in index order) and the inverse in f64.
  void (*rms_norm)(const float* x, float* out, const float* w, int rows, int dim, double eps);
  // In place on the first rd dims of nh heads (at column off of rows of `ld`), per-row tables cos/sin [rows, rd].
  void (*rope)(float* x, int rows, int64_t ld, int off, int nh, int hd, int rd, const float* cos, const float* sin);
  // out [rows, inter] = up · (gate / (1 + e^−gate)) in f64, rounded once; gu [rows, 2·inter] = [gate | up].
  void (*swiglu)(const float* gu, float* out, int rows, int inter);
  // f32 → f16 bits, round to nearest even; f16 bits → f32.
  void (*to_f16)(const float* x, uint16_t* y, int64_t n);
  void (*from_f16)(const uint16_t* x, float* y, int64_t n);
  // One paged attention item; `exp` is the GEMM kernels' vectorized exp (the softmax's, shared).
  void (*paged_attention)(const PagedArgs& a, const PagedItem& it, float* scratch, int64_t lds, void (*exp)(const float*, float*, int));
  // y[i, j] (+)= alpha · Σ_k x[i, k]·wt[k, j] for rows [m0, m1), columns [n0, n1), wt = Wᵀ [K, ldw] (a column-major
  // W): one fma per k in k order per output, so row i's values depend on row i only. accumulate: y += alpha·sum,
  // else y = sum.
  void (*gemm_cols)(const float* x, int64_t ldx, const void* wt, WType type, int64_t ldw, float* y, int64_t ldy, int m0, int m1,
                    int k, int n0, int n1, float alpha, bool accumulate);
  // y[i] = Math.exp(x[i]) bit for bit, as V8 computes it (exp_fdlibm.h); y may be x.
  void (*exp_f64)(const double* x, double* y, int64_t n);
};

namespace generic { extern const DeviceKernels device_kernels; }
namespace avx2 { extern const DeviceKernels device_kernels; }
namespace avx512 { extern const DeviceKernels device_kernels; }

}  // namespace phi4mm
