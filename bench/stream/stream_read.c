// DRAM read bandwidth: every thread sums its share of one large buffer with 64-byte vector loads (no stores,
// so the figure is the read ceiling a weight-streaming GEMV can reach). Two page modes: 4 KiB pages
// (MADV_NOHUGEPAGE) and transparent huge pages (2 MiB-aligned, MADV_HUGEPAGE), at 1..T threads.
// Build: cc -O2 -mavx2 -pthread stream_read.c -o stream_read
// Usage: stream_read [MiB=1024] [threads=2] [reps=5] [pages=both|4k|thp]
//        stream_read serve MiB   (THP; prints "ready", then for each thread count read from stdin one rep's GB/s:
//                                 bench/llama/compare.ts pairs these reps with decode steps taken between them)
// Prints one JSON line per (pages, threads): {"pages":"4k","threads":1,"gbs":..,"median_gbs":..}: the best rep and
// the median rep. On a shared machine the best is a quiet moment; the median is what a workload of the same
// length as the reps meets (bench/llama/compare.ts sets decode against both).
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "read_sum.h"
#include "timed_threads.h"

#define HUGE_PAGE (2u << 20)

// Each thread sums its 128-byte-aligned share of the buffer; GB/s over all of them.
typedef struct { const uint8_t* p; size_t per; double sink[TIMED_MAX_THREADS]; } Share;
static void read_share(int t, void* arg) {
  Share* s = (Share*)arg;
  s->sink[t] = read_sum(s->p + t * s->per, s->per);
}
static double run(const uint8_t* buf, size_t bytes, int threads) {
  Share s = {buf, bytes / threads / 128 * 128, {0}};
  return s.per * threads / timed_run(read_share, &s, threads) / 1e9;
}

#define MAX_REPS 64
static int by_value(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

// A 2 MiB-aligned buffer of `bytes` (the pages are chosen by madvise after); *base is the mapping to unmap.
static uint8_t* aligned_buffer(size_t bytes, uint8_t** base) {
  uint8_t* buf = mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) { perror("mmap"); exit(1); }
  *base = buf;
  return (uint8_t*)(((uintptr_t)buf + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
}

// One rep per request: a thread count on stdin → that rep's GB/s on stdout, until stdin ends.
static int serve(size_t mib) {
  if (mib < 1) { fprintf(stderr, "serve needs a size of at least 1 MiB\n"); return 1; }
  const size_t bytes = mib << 20;
  uint8_t* base;
  uint8_t* p = aligned_buffer(bytes, &base);
  madvise(p, bytes, MADV_HUGEPAGE);
  memset(p, 1, bytes);
  printf("ready\n");
  fflush(stdout);
  int t;
  while (scanf("%d", &t) == 1) {
    if (t < 1 || t > TIMED_MAX_THREADS) { fprintf(stderr, "threads must be 1..%d\n", TIMED_MAX_THREADS); return 1; }
    printf("%.3f\n", run(p, bytes, t));
    fflush(stdout);
  }
  munmap(base, bytes + HUGE_PAGE);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 2 && !strcmp(argv[1], "serve")) return serve(strtoul(argv[2], NULL, 10));
  const size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
  const int max_threads = argc > 2 ? atoi(argv[2]) : 2;
  const int reps = argc > 3 ? atoi(argv[3]) : 5;
  if (reps < 1 || reps > MAX_REPS) { fprintf(stderr, "reps must be 1..%d\n", MAX_REPS); return 1; }
  const char* pages = argc > 4 ? argv[4] : "both";
  if (strcmp(pages, "both") && strcmp(pages, "4k") && strcmp(pages, "thp")) { fprintf(stderr, "pages must be both, 4k or thp\n"); return 1; }
  const size_t bytes = mib << 20;
  for (int huge = strcmp(pages, "thp") ? 0 : 1; huge <= (strcmp(pages, "4k") ? 1 : 0); huge++) {
    uint8_t* buf;
    uint8_t* p = aligned_buffer(bytes, &buf);
    madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096) p[i] = (uint8_t)i;  // fault every page in
    memset(p, 1, bytes);
    for (int t = 1; t <= max_threads; t++) {
      double g[MAX_REPS];
      for (int r = 0; r < reps; r++) g[r] = run(p, bytes, t);
      qsort(g, reps, sizeof g[0], by_value);
      printf("{\"pages\":\"%s\",\"threads\":%d,\"gbs\":%.2f,\"median_gbs\":%.2f}\n", huge ? "thp" : "4k", t, g[reps - 1], g[reps / 2]);
      fflush(stdout);
    }
    munmap(buf, bytes + HUGE_PAGE);
  }
  return 0;
}
