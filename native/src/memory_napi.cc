// N-API side of weight memory: huge-page allocation before the first touch, and huge-page advice for buffers
// already written.
#include <sys/mman.h>

#include <algorithm>
#include <string>

#include "device_napi.h"
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux ≥ 6.1 (older glibc headers lack the name); older kernels return EINVAL
#endif

namespace phi4mm {
using namespace dev;

namespace {

// adviseHugePages(typedArray): backs the buffer's 2 MiB-aligned interior with transparent huge pages
// (MADV_HUGEPAGE, then MADV_COLLAPSE to move pages already written): weight streams then take no TLB miss
// per 4 KiB, which bench/stream measures at ~35% more DRAM read bandwidth here. Returns the bytes now
// advised (0 when the buffer is smaller than a huge page or the kernel refuses; the data never changes).
// allocWeights(bytes): a zeroed ArrayBuffer on 2 MiB-aligned anonymous memory advised MADV_HUGEPAGE before its
// first touch, so reading or quantizing weights into it faults huge pages directly (no MADV_COLLAPSE copy,
// which cost ~8 s per 5.6 GiB of weights at load). Freed (munmap) when the ArrayBuffer is collected.
Napi::Value AllocWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t bytes = integer(info, 0, "bytes");
  if (bytes < 0) throw Napi::RangeError::New(env, "allocWeights: bytes must be >= 0");
  constexpr size_t HUGE = 2u << 20;
  const size_t len = std::max<size_t>((size_t)bytes, 1), total = len + HUGE;
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw Napi::Error::New(env, "allocWeights: cannot map " + std::to_string(bytes) + " bytes");
  uint8_t* p = reinterpret_cast<uint8_t*>(((uintptr_t)base + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
  madvise(p, (len + HUGE - 1) & ~(HUGE - 1), MADV_HUGEPAGE);  // best effort: 4 KiB pages where THP is off
  struct Mapping { void* base; size_t total; };
  auto* m = new Mapping{base, total};
  return Napi::ArrayBuffer::New(env, p, (size_t)bytes, [](Napi::Env, void*, Mapping* m) { munmap(m->base, m->total); delete m; }, m);
}

Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  const Bytes v = typed(info, 0, "buffer");
  constexpr uintptr_t HUGE = 2u << 20;
  const uintptr_t b = ((uintptr_t)v.data + HUGE - 1) & ~(HUGE - 1), e = ((uintptr_t)v.data + v.size) & ~(HUGE - 1);
  if (e <= b) return Napi::Number::New(info.Env(), 0);
  if (madvise((void*)b, e - b, MADV_HUGEPAGE) != 0) return Napi::Number::New(info.Env(), 0);
  madvise((void*)b, e - b, MADV_COLLAPSE);  // best effort: fails (harmlessly) without free huge pages
  return Napi::Number::New(info.Env(), (double)(e - b));
}

}  // namespace

void register_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("adviseHugePages", Napi::Function::New(env, AdviseHugePages));
  exports.Set("allocWeights", Napi::Function::New(env, AllocWeights));
}

}  // namespace phi4mm
