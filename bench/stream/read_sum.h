// The plain read that sets the DRAM ceiling: a buffer summed with 32-byte aligned loads into four accumulators,
// no stores. Shared by stream_read.c (the ceiling) and x16_tiles.cc (the read each streamed tile round is paired
// with); compiles as C and as C++.
#pragma once
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

// Σ of the 64-bit words of p[0, n) (n rounded down to 128 bytes; p 32-byte aligned), as a double.
static inline double read_sum(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i*)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i*)(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i*)(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i*)(p + i + 96)));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  int64_t o[4];
  _mm256_storeu_si256((__m256i*)o, s);
  return (double)(o[0] + o[1] + o[2] + o[3]);
}
