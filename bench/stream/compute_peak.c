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
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 20000000L  // loop trips per measurement: 12 instructions each, ~0.1-0.3 s per thread

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// Each loop issues 12 instructions into 12 distinct registers (or 12 independent chains), enough to cover
// any latency up to 12 × the issue interval. Returns multiply-adds done.
static double maddubs_only(long n) {
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n vpxor %%ymm1, %%ymm1, %%ymm1\n"
      "1:\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm2\n vpmaddubsw %%ymm0, %%ymm1, %%ymm3\n vpmaddubsw %%ymm0, %%ymm1, %%ymm4\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm5\n vpmaddubsw %%ymm0, %%ymm1, %%ymm6\n vpmaddubsw %%ymm0, %%ymm1, %%ymm7\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm8\n vpmaddubsw %%ymm0, %%ymm1, %%ymm9\n vpmaddubsw %%ymm0, %%ymm1, %%ymm10\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm11\n vpmaddubsw %%ymm0, %%ymm1, %%ymm12\n vpmaddubsw %%ymm0, %%ymm1, %%ymm13\n"
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13", "cc");
  return 0;
}
static double maddubs_add(long n) {  // 6 chains: product into ymm2..7, added into ymm8..13
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n vpxor %%ymm1, %%ymm1, %%ymm1\n"
      "1:\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm2\n vpaddw %%ymm2, %%ymm8, %%ymm8\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm3\n vpaddw %%ymm3, %%ymm9, %%ymm9\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm4\n vpaddw %%ymm4, %%ymm10, %%ymm10\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm5\n vpaddw %%ymm5, %%ymm11, %%ymm11\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm6\n vpaddw %%ymm6, %%ymm12, %%ymm12\n"
      "vpmaddubsw %%ymm0, %%ymm1, %%ymm7\n vpaddw %%ymm7, %%ymm13, %%ymm13\n"
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13", "cc");
  return 0;
}
static double fma_f32(long n) {
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n vxorps %%ymm1, %%ymm1, %%ymm1\n"
      "1:\n"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm2\n vfmadd231ps %%ymm0, %%ymm1, %%ymm3\n vfmadd231ps %%ymm0, %%ymm1, %%ymm4\n"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm5\n vfmadd231ps %%ymm0, %%ymm1, %%ymm6\n vfmadd231ps %%ymm0, %%ymm1, %%ymm7\n"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm8\n vfmadd231ps %%ymm0, %%ymm1, %%ymm9\n vfmadd231ps %%ymm0, %%ymm1, %%ymm10\n"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm11\n vfmadd231ps %%ymm0, %%ymm1, %%ymm12\n vfmadd231ps %%ymm0, %%ymm1, %%ymm13\n"
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13", "cc");
  return 0;
}
#ifdef __AVX512VNNI__
static double dpbusd(long n) {
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "1:\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm2\n vpdpbusd %%zmm0, %%zmm1, %%zmm3\n vpdpbusd %%zmm0, %%zmm1, %%zmm4\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm5\n vpdpbusd %%zmm0, %%zmm1, %%zmm6\n vpdpbusd %%zmm0, %%zmm1, %%zmm7\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm8\n vpdpbusd %%zmm0, %%zmm1, %%zmm9\n vpdpbusd %%zmm0, %%zmm1, %%zmm10\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm11\n vpdpbusd %%zmm0, %%zmm1, %%zmm12\n vpdpbusd %%zmm0, %%zmm1, %%zmm13\n"
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "cc");
  return 0;
}
#endif
#ifdef __AVX512BF16__
static double dpbf16(long n) {
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "1:\n"
      "vdpbf16ps %%zmm0, %%zmm1, %%zmm2\n vdpbf16ps %%zmm0, %%zmm1, %%zmm3\n vdpbf16ps %%zmm0, %%zmm1, %%zmm4\n"
      "vdpbf16ps %%zmm0, %%zmm1, %%zmm5\n vdpbf16ps %%zmm0, %%zmm1, %%zmm6\n vdpbf16ps %%zmm0, %%zmm1, %%zmm7\n"
      "vdpbf16ps %%zmm0, %%zmm1, %%zmm8\n vdpbf16ps %%zmm0, %%zmm1, %%zmm9\n vdpbf16ps %%zmm0, %%zmm1, %%zmm10\n"
      "vdpbf16ps %%zmm0, %%zmm1, %%zmm11\n vdpbf16ps %%zmm0, %%zmm1, %%zmm12\n vdpbf16ps %%zmm0, %%zmm1, %%zmm13\n"
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12", "zmm13", "cc");
  return 0;
}
#endif

typedef struct { double (*loop)(long); pthread_barrier_t* bar; } Job;

static void* worker(void* arg) {
  Job* j = (Job*)arg;
  pthread_barrier_wait(j->bar);
  j->loop(ITERS);
  pthread_barrier_wait(j->bar);
  return NULL;
}

// Seconds for every thread to run ITERS trips of loop (timed between two barriers).
static double run(double (*loop)(long), int threads) {
  pthread_t th[64];
  Job jobs[64];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, threads + 1);
  for (int t = 0; t < threads; t++) {
    jobs[t] = (Job){loop, &bar};
    pthread_create(&th[t], NULL, worker, &jobs[t]);
  }
  pthread_barrier_wait(&bar);
  const double t0 = now();
  pthread_barrier_wait(&bar);
  const double s = now() - t0;
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  pthread_barrier_destroy(&bar);
  return s;
}

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? atoi(argv[1]) : 2;
  const int reps = argc > 2 ? atoi(argv[2]) : 5;
  struct { const char* name; double (*loop)(long); double macs_per_trip; } ops[] = {
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
    for (int t = 1; t <= max_threads; t++) {
      double best = 1e30;
      for (int r = 0; r < reps; r++) { const double s = run(ops[o].loop, t); if (s < best) best = s; }
      printf("{\"op\":\"%s\",\"threads\":%d,\"gops\":%.1f}\n", ops[o].name, t, 2 * ops[o].macs_per_trip * ITERS * t / best / 1e9);
      fflush(stdout);
    }
  return 0;
}
