// The x16 micro-tiles (native/src/qgemm_x16_avx2.h, or qgemm_x16.h for AVX-512) called directly, on cached and
// on DRAM-streamed weights: the harness behind the prefetch findings in the README. It times tiles, not the addon,
// so thread pool, N-API and activation quantization are left out. Timed with rdtsc: GB/s are counted at the TSC
// rate.
//
// Build (AVX2):    g++ -O3 -std=c++17 -mavx2 -mfma -mf16c -I native/src bench/stream/x16_tiles.cc -o /tmp/x16_tiles
// Build (AVX-512): g++ -O3 -std=c++17 -DX16_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni
//                  -mavx512dq -I native/src bench/stream/x16_tiles.cc -o /tmp/x16_tiles512
// Usage: /tmp/x16_tiles [rounds=9] [TSC GHz=2.6]
#ifdef X16_AVX512
#define PHI_NS avx512
#else
#define PHI_NS avx2
#endif
#include "kernels_impl.h"

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

// Best TSC cycles per weight byte over `rounds`, each pass calling the tile on every group once.
static double time_tile(Tile tile, QGemmArgs g, const uint8_t* w, size_t group_bytes, int groups, const int32_t* aux, int rounds) {
  double best = 1e30;
  const int passes = std::max(1, 4000 / groups);
  for (int r = 0; r < rounds; r++) {
    const uint64_t t0 = __rdtsc();
    for (int i = 0; i < passes; i++)
      for (int gi = 0; gi < groups; gi++) tile(g, w + gi * group_bytes, aux, 0, 0);
    best = std::min(best, double(__rdtsc() - t0) / (double(passes) * groups * group_bytes));
  }
  return best;
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 9;
  const int streamed_groups = 4000, cached_groups = 16;  // 110 MB (past the 32 MB L3) and 442 KB (in L2)
  const size_t q4_group = (size_t)NB * X16_Q4_SB, q8_group = (size_t)NB * 8 * X16_Q8_BLK;  // both K = 3072
  uint8_t* w = alloc_weights(streamed_groups * std::max(q4_group, q8_group));
  std::vector<uint8_t> xq(8 * NB * 8 * BLOCK_Q8_0_BYTES + 4 * NB * BLOCK_Q8_K_BYTES, 1);
  std::vector<int32_t> aux(8 * NB * 8, 3);
  float y[8 * X16];
  const double tsc_ghz = argc > 2 ? std::atof(argv[2]) : 2.6;  // this machine's TSC (cpu MHz in /proc/cpuinfo)
#ifdef X16_AVX512
  namespace ns = avx512;
  constexpr int tile_rows = ns::TM;
  const Tile q4[] = {ns::q4x_tile<1>, ns::q4x_tile<2>, ns::q4x_tile<3>, ns::q4x_tile<4>, ns::q4x_tile<5>, ns::q4x_tile<6>, ns::q4x_tile<7>, ns::q4x_tile<8>};
  const Tile q8[] = {ns::q8x_tile<1>, ns::q8x_tile<2>, ns::q8x_tile<3>, ns::q8x_tile<4>, ns::q8x_tile<5>, ns::q8x_tile<6>, ns::q8x_tile<7>, ns::q8x_tile<8>};
#else
  namespace ns = avx2;
  constexpr int tile_rows = ns::X16_TM;
  const Tile q4[] = {ns::q4x_tile<1>, ns::q4x_tile<2>, ns::q4x_tile<3>, ns::q4x_tile<4>};
  const Tile q8[] = {ns::q8x_tile<1>, ns::q8x_tile<2>, ns::q8x_tile<3>, ns::q8x_tile<4>};
#endif
  static_assert(sizeof(q4) / sizeof(q4[0]) == tile_rows, "one tile per row count");
  std::printf("GB/s of weights at the %.1f GHz TSC, 1 thread, best of %d\n| format | M | cached | streamed |\n|---|---|---|---|\n", tsc_ghz, rounds);
  for (int fmt = 0; fmt < 2; fmt++)
    for (int mt = 1; mt <= tile_rows; mt++) {
      const size_t gb = fmt == 0 ? q4_group : q8_group;
      const int nb = fmt == 0 ? NB : NB * 8;
      const int64_t row = fmt == 0 ? (int64_t)NB * BLOCK_Q8_K_BYTES : (int64_t)nb * BLOCK_Q8_0_BYTES;
      QGemmArgs g{w, (int64_t)(gb / X16), xq.data(), row, y, X16, nullptr, mt, X16, nb};
      const Tile t = (fmt == 0 ? q4 : q8)[mt - 1];
      const double c = time_tile(t, g, w, gb, cached_groups, aux.data(), rounds), s = time_tile(t, g, w, gb, streamed_groups, aux.data(), rounds);
      std::printf("| %s | %d | %.1f | %.1f |\n", fmt == 0 ? "Q4_K" : "Q8_0", mt, tsc_ghz / c, tsc_ghz / s);
    }
  std::free(w);
}
