// Compute ceilings of this CPU, per instruction the kernels are built on: every thread issues long runs of
// independent multiply-adds from registers (no memory traffic), so the figure is what the ALUs give at best.
//  - int8, AVX2: vpmaddubsw alone (the multiplier's rate), and vpmaddubsw + vpaddw (what the x16 tiles issue
//    per 32 multiply-adds at least: each product pair is added into an int16 chain);
//  - int8, AVX-512 VNNI: vpdpbusd zmm (64 multiply-adds, accumulating), when the build has __AVX512VNNI__;
//  - f32: vfmadd231ps ymm (8 multiply-adds), the f32 encoders' instruction on AVX2;
//  - bf16: vdpbf16ps zmm (32), when the build has __AVX512BF16__.
// Build: cc -O2 -march=native -pthread compute_peak.c -o compute_peak     Usage: compute_peak [threads=2] [reps=5]
// Prints one JSON line per (instruction, threads): {"op":..,"threads":..,"gops":..} where one multiply-add
// counts as 2 operations, as in the GOPS the kernels report (best of reps).
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>

#include "timed_threads.h"

#define ITERS 20000000L  // loop trips per measurement: 12 instructions each, ~0.1-0.3 s per thread

// One loop of 12 instructions per trip, `ins src0, src1, dstN` into 12 distinct registers (or, with `ins2`, 6
// products each added into its own chain), enough to cover any latency up to 12 × the issue interval.
#define DST12(ins, r) \
  ins " %%" r "0, %%" r "1, %%" r "2\n" ins " %%" r "0, %%" r "1, %%" r "3\n" ins " %%" r "0, %%" r "1, %%" r "4\n" \
  ins " %%" r "0, %%" r "1, %%" r "5\n" ins " %%" r "0, %%" r "1, %%" r "6\n" ins " %%" r "0, %%" r "1, %%" r "7\n" \
  ins " %%" r "0, %%" r "1, %%" r "8\n" ins " %%" r "0, %%" r "1, %%" r "9\n" ins " %%" r "0, %%" r "1, %%" r "10\n" \
  ins " %%" r "0, %%" r "1, %%" r "11\n" ins " %%" r "0, %%" r "1, %%" r "12\n" ins " %%" r "0, %%" r "1, %%" r "13\n"
#define CHAIN(ins, add, r, p, c) ins " %%" r "0, %%" r "1, %%" r p "\n" add " %%" r p ", %%" r c ", %%" r c "\n"
#define CHAIN6(ins, add, r) \
  CHAIN(ins, add, r, "2", "8") CHAIN(ins, add, r, "3", "9") CHAIN(ins, add, r, "4", "10") \
  CHAIN(ins, add, r, "5", "11") CHAIN(ins, add, r, "6", "12") CHAIN(ins, add, r, "7", "13")
#define CLOBBER(r) r "0", r "1", r "2", r "3", r "4", r "5", r "6", r "7", r "8", r "9", r "10", r "11", r "12", r "13", "cc"
#define PEAK_LOOP(name, zero, r, trip)                                                                       \
  static void name(int thread, void* arg) {                                                                  \
    (void)thread, (void)arg;                                                                                 \
    long n = ITERS;                                                                                          \
    __asm__ volatile(zero " %%" r "0, %%" r "0, %%" r "0\n" zero " %%" r "1, %%" r "1, %%" r "1\n"         \
                     "1:\n" trip "dec %0\n jnz 1b\n"                                                       \
                     : "+r"(n)::CLOBBER(r));                                                                 \
  }

PEAK_LOOP(maddubs_only, "vpxor", "ymm", DST12("vpmaddubsw", "ymm"))
PEAK_LOOP(maddubs_add, "vpxor", "ymm", CHAIN6("vpmaddubsw", "vpaddw", "ymm"))
PEAK_LOOP(fma_f32, "vxorps", "ymm", DST12("vfmadd231ps", "ymm"))
#ifdef __AVX512VNNI__
PEAK_LOOP(dpbusd, "vpxord", "zmm", DST12("vpdpbusd", "zmm"))
#endif
#ifdef __AVX512BF16__
PEAK_LOOP(dpbf16, "vpxord", "zmm", DST12("vdpbf16ps", "zmm"))
#endif

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? atoi(argv[1]) : 2;
  const int reps = argc > 2 ? atoi(argv[2]) : 5;
  struct { const char* name; timed_work loop; double macs_per_trip; } ops[] = {
      {"avx2_vpmaddubsw", maddubs_only, 12 * 32},
      {"avx2_vpmaddubsw_vpaddw", maddubs_add, 6 * 32},
      {"avx2_vfmadd231ps_f32", fma_f32, 12 * 8},
#ifdef __AVX512VNNI__
      {"avx512_vpdpbusd", dpbusd, 12 * 64},
#endif
#ifdef __AVX512BF16__
      {"avx512_vdpbf16ps", dpbf16, 12 * 32},
#endif
  };
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
    for (int t = 1; t <= max_threads && t <= TIMED_MAX_THREADS; t++) {
      double best = 1e30;
      for (int r = 0; r < reps; r++) { const double s = timed_run(ops[o].loop, NULL, t); if (s < best) best = s; }
      printf("{\"op\":\"%s\",\"threads\":%d,\"gops\":%.1f}\n", ops[o].name, t, 2 * ops[o].macs_per_trip * ITERS * t / best / 1e9);
      fflush(stdout);
    }
  return 0;
}
