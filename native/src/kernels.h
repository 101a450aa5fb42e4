// The kernel table shared by the three ISA builds (generic, AVX2, AVX-512) and the block layouts they read.
// Every kernel computes a slice [n0, n1) of output columns, so the caller can hand slices to the pool.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace phi4mm {

constexpr int QK_K = 256;               // weights per Q4_K / Q8_K super-block
constexpr int QK8_0 = 32;               // weights per Q8_0 block
constexpr int BLOCK_Q4_K_BYTES = 144;   // f16 d, f16 dmin, 12 B scales/mins, 128 B nibbles
constexpr int BLOCK_Q8_K_BYTES = 292;   // f32 d, int8 qs[256], int16 bsums[16]
constexpr int BLOCK_Q8_0_BYTES = 34;    // f16 d, int8 qs[32]

enum class WType : int { F32 = 0, BF16 = 1, F16 = 2 };
constexpr int wtype_bytes(WType t) { return t == WType::F32 ? 4 : 2; }

// C[m, n] = Σ_k A[m, k] · B[n, k] (+ bias[n]); B may be f32/bf16/f16 (converted on the fly).
struct GemmArgs {
  const float* a; int64_t lda;
  const void* b; int64_t ldb; WType bt;
  float* c; int64_t ldc;
  const float* bias;  // [N] or null
  int m, n, k;
};

// y[m, n] = Σ_blocks dot(w row n, xq row m) (+ bias[n]); weights and activations are block rows.
struct QGemmArgs {
  const uint8_t* w; int64_t w_row_bytes;    // [N] rows of nb Q4_K or Q8_0 blocks
  const uint8_t* xq; int64_t xq_row_bytes;  // [M] rows of nb Q8_K or Q8_0 blocks
  float* y; int64_t ldy;
  const float* bias;
  int m, n, nb;
  // x16 kernels: the per-activation-row sums their tiles read, [M][Kernels::x16_aux count], filled once per call
  // (null for the others).
  const int32_t* aux;
};

struct AttnArgs {
  const float* q; const float* k; const float* v;  // [Tq, H, D], [Tk, Hkv, D], [Tk, Hkv, D]
  float* out;                                       // [Tq, H, D]
  const float* mask;  // [Tq, Tk] or null
  const float* bias;  // [H, Tq, Tk] or null
  int tq, tk, h, hkv, d;
  float scale;
  int64_t causal_offset;  // < 0: no causal limit
};

// The score rows one attention task computes: queries [i0, i0 + rows) of one head, or (heads_as_rows, for
// decode) heads [head, head + rows) of one kv group for query i0, so K and V are read once for the group.
struct AttnBlock {
  int head, i0, rows;
  bool heads_as_rows;
};

struct Kernels {
  const char* name;
  void (*gemm_nt)(const GemmArgs&, int n0, int n1);
  void (*q4k_q8k)(const QGemmArgs&, int n0, int n1);
  void (*q80_q80)(const QGemmArgs&, int n0, int n1);
  // The same over x16 weights (interleave.h): g.w is the interleaved matrix, [n0, n1) whole groups of 16.
  void (*q4kx16_q8k)(const QGemmArgs&, int n0, int n1);
  void (*q80x16_q80)(const QGemmArgs&, int n0, int n1);
  // How many int32 sums per activation row the x16 kernels of format fmt (0 Q4_K, 1 Q8_0) read from g.aux, and,
  // with xq_row non-null, those of one quantized row into aux_row. Once per row and call: in every task they
  // cost ~3% of a decode GEMV's claim.
  int (*x16_aux)(int fmt, const uint8_t* xq_row, int nb, int32_t* aux_row);
  // One block of rows. kpacked: the block's kv head packed by attn_pack_k, or null (K read in place).
  // scratch: blk.rows rows of lds ≥ tk floats; lds a multiple of attn_key_panel when kpacked.
  void (*attention)(const AttnArgs&, const float* kpacked, const AttnBlock& blk, float* scratch, int64_t lds);
  // K of kv head kh → ⌈tk / attn_key_panel⌉ panels of headDim × attn_key_panel floats (zero-padded).
  void (*attn_pack_k)(const AttnArgs&, int kh, float* dst);
  int attn_key_panel;
  // y[0..n) = e^x (the attention softmax's exp; exposed for its accuracy test).
  void (*exp)(const float* x, float* y, int n);
};

namespace generic { extern const Kernels kernels; }
namespace avx2 { extern const Kernels kernels; }
namespace avx512 { extern const Kernels kernels; }

// The plain reference of q4k_q8k (fmt 0) / q80_q80 (fmt 1) over all of g: every fast path is bit-identical
// to it (exact int32 block dots, the same float combination in block order; see qgemm_impl.h).
void qgemm_ref(int fmt, const QGemmArgs& g);

// Activation quantizers, bit-exact ports of ggml's quantize_row_q8_K_ref / quantize_row_q8_0_ref (and of
// src/quant), so the integer dot products can be checked exactly against the TypeScript oracle.
void quantize_row_q8_K(const float* x, uint8_t* dst, int k);
void quantize_row_q8_0(const float* x, uint8_t* dst, int k);
// quantize_row_q8_K / quantize_row_q8_0 vectorized, byte-identical (quantize_fast_impl.h); need AVX2 / AVX-512F.
void quantize_row_q8_K_avx2(const float* x, uint8_t* dst, int k);
void quantize_row_q8_K_avx512(const float* x, uint8_t* dst, int k);
void quantize_row_q8_0_avx2(const float* x, uint8_t* dst, int k);
void quantize_row_q8_0_avx512(const float* x, uint8_t* dst, int k);

// Weight quantizers (ISQ): bit-exact ports of ggml's quantize_row_q4_K_ref / quantize_row_q8_0_ref, as
// src/quant. One row of k weights (a multiple of the block size) → k / blockSize blocks at dst.
struct QuantStatus {
  enum Code { OK, NON_FINITE, SCALE_OVERFLOW } code;
  int index;  // NON_FINITE: the element; SCALE_OVERFLOW: the block
};
QuantStatus quantize_weights_q4_K(const float* x, uint8_t* dst, int k);
QuantStatus quantize_weights_q8_0(const float* x, uint8_t* dst, int k);
// quantize_weights_q4_K, one sub-block per vector lane (8 per AVX2 register, 16 per AVX-512 one),
// byte-identical (quantize_fast_impl.h); need AVX2 / AVX-512F.
QuantStatus quantize_weights_q4_K_avx2(const float* x, uint8_t* dst, int k);
QuantStatus quantize_weights_q4_K_avx512(const float* x, uint8_t* dst, int k);

// IEEE half → float, exact (used by the generic build and for block scales).
static inline float fp16_to_fp32_soft(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) { mant <<= 1; exp--; }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
static inline float load_f32(const uint8_t* p) { float v; std::memcpy(&v, p, 4); return v; }

}  // namespace phi4mm
