// The x16 micro-tiles (native/src/qgemm_x16_avx2.h, or qgemm_x16.h for AVX-512) called directly, on cached and
// on DRAM-streamed weights: the harness behind the prefetch and tile findings in the README. It times tiles, not
// the addon, so thread pool, N-API and activation quantization are left out. Timed with rdtsc: GB/s are counted at
// the TSC rate. Every streamed round is paired with a plain read of the same bytes (stream_read.c's loop), and the
// last column is the tile's share of that read, median over rounds: memory bandwidth on a shared VM moves within
// seconds, so GB/s alone do not compare across runs.
//
// Build (AVX2):    g++ -O3 -std=c++17 -mavx2 -mfma -mf16c -I native/src bench/stream/x16_tiles.cc -o /tmp/x16_tiles
// Build (AVX-512): g++ -O3 -std=c++17 -DX16_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni
//                  -mavx512dq -I native/src bench/stream/x16_tiles.cc -o /tmp/x16_tiles512
// Usage: /tmp/x16_tiles [rounds=9] [TSC GHz, default: /proc/cpuinfo's first "cpu MHz", which is the TSC's here]
#ifdef X16_AVX512
#define PHI_NS avx512
#else
#define PHI_NS avx2
#endif
#include "kernels_impl.h"
#include "read_sum.h"

#include <sys/mman.h>
#include <x86intrin.h>

#include <cstdio>

using namespace phi4mm;
using Tile = void (*)(const QGemmArgs&, const uint8_t*, const int32_t*, int, int);

constexpr int NB = 12;                  // super-blocks (Q4_K) per group row: K = 3072
constexpr size_t HUGE_PAGE_BYTES = 2u << 20;

static uint8_t* alloc_weights(size_t bytes) {  // 2 MiB aligned on transparent huge pages, as the addon's weights
  bytes = (bytes + HUGE_PAGE_BYTES - 1) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(HUGE_PAGE_BYTES, bytes));
  madvise(p, bytes, MADV_HUGEPAGE);
  uint32_t s = 1;
  // bit 6 clear in every byte: no f16 scale can be Inf or NaN, whatever the format's layout
  for (size_t i = 0; i < bytes; i++) { s ^= s << 13; s ^= s >> 17; s ^= s << 5; p[i] = (uint8_t)(s & 0xBF); }
  return p;
}

// The first "cpu MHz" of /proc/cpuinfo: on this project's VMs the TSC's rate (2,096 MHz on the Zen 5 machines); a
// fixed 2.6 GHz default overstated their GB/s by 24%.
static double cpuinfo_mhz() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  char line[256];
  double mhz = 0;
  while (f && std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "cpu MHz : %lf", &mhz) == 1) break;  // a space in the format matches the tabs
  if (f) std::fclose(f);
  if (!(mhz > 0)) {
    std::fprintf(stderr, "x16_tiles: no \"cpu MHz\" in /proc/cpuinfo; pass the TSC rate in GHz as the second argument\n");
    std::exit(2);
  }
  return mhz;
}

// TSC cycles per weight byte of one pass calling the tile on every group once.
static double tile_pass(Tile tile, const QGemmArgs& g, const uint8_t* w, size_t group_bytes, int groups, const int32_t* aux, int passes) {
  const uint64_t t0 = __rdtsc();
  for (int i = 0; i < passes; i++)
    for (int gi = 0; gi < groups; gi++) tile(g, w + gi * group_bytes, aux, 0, 0);
  return double(__rdtsc() - t0) / (double(passes) * groups * group_bytes);
}

// TSC cycles per byte of a plain read (read_sum.h, stream_read.c's loop).
static volatile double g_read_sink;
static double read_pass(const uint8_t* p, size_t n) {
  const uint64_t t0 = __rdtsc();
  g_read_sink = read_sum(p, n);
  return double(__rdtsc() - t0) / double(n);
}

struct Timing { double best, share; };  // best cycles per byte; the tile's median share of the paired read's GB/s

// Cached: passes over a few groups, best of `rounds`. Streamed: one pass per round, each after a plain read of the
// same bytes.
static Timing time_tile(Tile tile, QGemmArgs g, const uint8_t* w, size_t group_bytes, int groups, const int32_t* aux, int rounds, bool paired) {
  double best = 1e30;
  std::vector<double> share;
  for (int r = 0; r < rounds; r++) {
    const double read = paired ? read_pass(w, group_bytes * groups) : 0;
    const double c = tile_pass(tile, g, w, group_bytes, groups, aux, paired ? 1 : std::max(1, 4000 / groups));
    best = std::min(best, c);
    if (paired) share.push_back(read / c);
  }
  std::sort(share.begin(), share.end());
  return {best, share.empty() ? 0 : share[share.size() / 2]};
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const int streamed_groups = 20000, cached_groups = 16;  // 553 MB / 1 GB (past the 32 MB L3) and 442 KB (in L2)
  const size_t q4_group = (size_t)NB * X16_Q4_SB, q8_group = (size_t)NB * 8 * X16_Q8_BLK;  // both K = 3072
  uint8_t* w = alloc_weights(streamed_groups * std::max(q4_group, q8_group));
  std::vector<uint8_t> xq(8 * NB * 8 * BLOCK_Q8_0_BYTES + 4 * NB * BLOCK_Q8_K_BYTES, 1);
  std::vector<int32_t> aux(8 * NB * 8, 3);
  float y[8 * X16];
  const double tsc_ghz = argc > 2 ? std::atof(argv[2]) : cpuinfo_mhz() / 1000;
#ifdef X16_AVX512
  namespace ns = avx512;
  constexpr int tile_rows = ns::TM;
  // The tiles as qgemm_x16_tiles dispatches them for the first row tile over a panel (m0 = 0: prefetching).
  const Tile q4[] = {ns::Q4X<1>::run, ns::Q4X<2>::run, ns::Q4X<3>::run, ns::Q4X<4>::run, ns::Q4X<5>::run, ns::Q4X<6>::run, ns::Q4X<7>::run, ns::Q4X<8>::run};
  const Tile q8[] = {ns::Q8X<1>::run, ns::Q8X<2>::run, ns::Q8X<3>::run, ns::Q8X<4>::run, ns::Q8X<5>::run, ns::Q8X<6>::run, ns::Q8X<7>::run, ns::Q8X<8>::run};
#else
  namespace ns = avx2;
  constexpr int tile_rows = ns::X16_TM;
  const Tile q4[] = {ns::q4x_tile<1>, ns::q4x_tile<2>, ns::q4x_tile<3>, ns::q4x_tile<4>};
  const Tile q8[] = {ns::q8x_tile<1>, ns::q8x_tile<2>, ns::q8x_tile<3>, ns::q8x_tile<4>};
#endif
  static_assert(sizeof(q4) / sizeof(q4[0]) == tile_rows, "one tile per row count");
  std::printf("GB/s of weights at the %.1f GHz TSC, 1 thread, best of %d\n| format | M | cached | streamed | streamed, %% of a plain read of the same bytes (median) |\n|---|---|---|---|---|\n", tsc_ghz, rounds);
  for (int fmt = 0; fmt < 2; fmt++)
    for (int mt = 1; mt <= tile_rows; mt++) {
      const size_t gb = fmt == 0 ? q4_group : q8_group;
      const int nb = fmt == 0 ? NB : NB * 8;
      const int64_t row = fmt == 0 ? (int64_t)NB * BLOCK_Q8_K_BYTES : (int64_t)nb * BLOCK_Q8_0_BYTES;
      QGemmArgs g{w, (int64_t)(gb / X16), xq.data(), row, y, X16, nullptr, mt, X16, nb, aux.data()};
      const Tile t = (fmt == 0 ? q4 : q8)[mt - 1];
      const Timing c = time_tile(t, g, w, gb, cached_groups, aux.data(), rounds, false), s = time_tile(t, g, w, gb, streamed_groups, aux.data(), rounds, true);
      std::printf("| %s | %d | %.1f | %.1f | %.0f%% |\n", fmt == 0 ? "Q4_K" : "Q8_0", mt, tsc_ghz / c.best, tsc_ghz / s.best, 100 * s.share);
    }
  std::free(w);
}
