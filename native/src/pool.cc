#include "pool.h"

#include <chrono>
#if defined(__x86_64__)
#include <immintrin.h>
#define PHI_PAUSE() _mm_pause()
#else
#define PHI_PAUSE() std::this_thread::yield()
#endif

namespace phi4mm {

// ~50 µs of pause loops before a worker goes to sleep: long enough to bridge the gap between two kernels
// of one decode step, short enough not to steal a core from other work when the model is idle.
constexpr int SPIN_ITERS = 20000;

Pool::Pool(int threads) : threads_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < threads_; i++) workers_.emplace_back([this, i] { worker(i); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void Pool::drain(int thread) {
  for (;;) {
    const int t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= tasks_) break;
    (*fn_)(t, thread);
  }
}

void Pool::run(int tasks, const std::function<void(int, int)>& fn) {
  if (tasks <= 0) return;
  if (threads_ == 1 || tasks == 1) {
    for (int t = 0; t < tasks; t++) fn(t, 0);
    return;
  }
  // One job at a time: the engine's worker thread and the main thread (research API, a second engine) may both
  // submit, and the job state below is single-slot. Jobs never submit nested jobs, so this cannot deadlock.
  std::lock_guard<std::mutex> one_job(run_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0);
    busy_.store(threads_ - 1);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  drain(0);
  while (busy_.load(std::memory_order_acquire) != 0) PHI_PAUSE();
}

void Pool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; i < SPIN_ITERS && g == seen; i++) {
      PHI_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load() != seen; });
      g = generation_.load();
    }
    seen = g;
    {
      std::lock_guard<std::mutex> lock(mu_);  // pairs with run(): fn_/tasks_ are published under mu_
      if (stop_) return;
    }
    drain(index);
    busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace phi4mm
