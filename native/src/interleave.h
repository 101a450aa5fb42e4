// The x16 weight layout: Q4_K and Q8_0 rows interleaved in groups of 16, in the order the AVX-512 VNNI
// micro-kernels read (qgemm_x16.h), so that no GEMM, GEMV or batched decode step repacks weights per call.
// The native backend converts weights at load, in place: a group of 16 rows keeps exactly the bytes of its
// 16 ggml rows, so sizes, offsets and memory stay those of the ggml layout. Disk and GGUF stay ggml.
//
// Group g = rows 16g..16g+15, at byte 16g·row_bytes, super-block (Q4_K) or block (Q8_0) by super-block:
//   Q4_K, per super-block (X16_Q4_SB = 16 · 144 = 2304 bytes):
//     qs    [32 chunks][16 rows] u32   chunk c = row bytes 16+4c..16+4c+3 of the block (4 nibble pairs)
//     d     [16] f16, dmin [16] f16
//     scales[3 words][16 rows] u32    the block's 12 packed 6-bit scale/min bytes, as 3 little-endian words
//   Q8_0, per block (X16_Q8_BLK = 16 · 34 = 544 bytes):
//     qs    [8 chunks][16 rows] u32    chunk c = weights 4c..4c+3 (int8)
//     d     [16] f16
//   stored in pairs of blocks (b, b + 1), b even: qs b, qs b + 1, d b, d b + 1 (1,088 bytes, 17 whole cache
//   lines), so that every 64-byte quant load of the tiles is one aligned line; an odd last block is qs, d.
//   Blocks one by one (544 bytes, every other one starting mid-line) held the AVX-512 decode tile to 71–78% of
//   a plain read from DRAM; in pairs it reads at 98–101% (qgemm_x16.h has the figures).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace phi4mm {

constexpr int X16 = 16;  // rows per group: the 16 int32 lanes of a zmm
constexpr int X16_Q4_QS = 0, X16_Q4_D = 32 * 64, X16_Q4_DMIN = X16_Q4_D + 32, X16_Q4_SCALES = X16_Q4_DMIN + 32,
              X16_Q4_SB = X16_Q4_SCALES + 3 * 64;
constexpr int X16_Q8_QS = 0, X16_Q8_D = 8 * 64, X16_Q8_BLK = X16_Q8_D + 32;
static_assert(X16_Q4_SB == X16 * BLOCK_Q4_K_BYTES, "an x16 Q4_K super-block holds exactly 16 ggml blocks");
static_assert(X16_Q8_BLK == X16 * BLOCK_Q8_0_BYTES, "an x16 Q8_0 block holds exactly 16 ggml blocks");

// Byte offsets of Q8_0 block b's quants and scales in an x16 group of nb blocks (the pairs above).
static inline int64_t x16_q8_qs(int b) { return (int64_t)X16_Q8_BLK * b - 32 * (b & 1); }
static inline int64_t x16_q8_d(int b, int nb) {
  return (int64_t)X16_Q8_BLK * b + ((b & 1) == 0 && b + 1 < nb ? 2 * X16_Q8_D : X16_Q8_D);
}

// fmt: 0 Q4_K, 1 Q8_0 (as linearQ). Bytes of one ggml block and of one x16 block group.
static inline int x16_block_bytes(int fmt) { return fmt == 0 ? BLOCK_Q4_K_BYTES : BLOCK_Q8_0_BYTES; }

// 16 ggml rows (rows, each row_bytes = nb blocks) → one x16 group at dst (16 · row_bytes bytes, not aliasing).
static inline void x16_pack_group(int fmt, const uint8_t* rows, int64_t row_bytes, int nb, uint8_t* dst) {
  for (int b = 0; b < nb; b++) {
    for (int r = 0; r < X16; r++) {
      if (fmt == 0) {
        const uint8_t* blk = rows + r * row_bytes + (int64_t)b * BLOCK_Q4_K_BYTES;
        uint8_t* P = dst + (int64_t)b * X16_Q4_SB;
        for (int c = 0; c < 32; c++) std::memcpy(P + X16_Q4_QS + c * 64 + r * 4, blk + 16 + 4 * c, 4);
        std::memcpy(P + X16_Q4_D + r * 2, blk, 2);
        std::memcpy(P + X16_Q4_DMIN + r * 2, blk + 2, 2);
        for (int w = 0; w < 3; w++) std::memcpy(P + X16_Q4_SCALES + w * 64 + r * 4, blk + 4 + 4 * w, 4);
      } else {
        const uint8_t* blk = rows + r * row_bytes + (int64_t)b * BLOCK_Q8_0_BYTES;
        for (int c = 0; c < 8; c++) std::memcpy(dst + x16_q8_qs(b) + X16_Q8_QS + c * 64 + r * 4, blk + 2 + 4 * c, 4);
        std::memcpy(dst + x16_q8_d(b, nb) + r * 2, blk, 2);
      }
    }
  }
}

// Row r (0..15) of an x16 group → its ggml bytes (nb blocks) at dst.
static inline void x16_unpack_row(int fmt, const uint8_t* group, int nb, int r, uint8_t* dst) {
  for (int b = 0; b < nb; b++) {
    if (fmt == 0) {
      const uint8_t* P = group + (int64_t)b * X16_Q4_SB;
      uint8_t* blk = dst + (int64_t)b * BLOCK_Q4_K_BYTES;
      for (int c = 0; c < 32; c++) std::memcpy(blk + 16 + 4 * c, P + X16_Q4_QS + c * 64 + r * 4, 4);
      std::memcpy(blk, P + X16_Q4_D + r * 2, 2);
      std::memcpy(blk + 2, P + X16_Q4_DMIN + r * 2, 2);
      for (int w = 0; w < 3; w++) std::memcpy(blk + 4 + 4 * w, P + X16_Q4_SCALES + w * 64 + r * 4, 4);
    } else {
      uint8_t* blk = dst + (int64_t)b * BLOCK_Q8_0_BYTES;
      for (int c = 0; c < 8; c++) std::memcpy(blk + 2 + 4 * c, group + x16_q8_qs(b) + X16_Q8_QS + c * 64 + r * 4, 4);
      std::memcpy(blk, group + x16_q8_d(b, nb) + r * 2, 2);
    }
  }
}

}  // namespace phi4mm
