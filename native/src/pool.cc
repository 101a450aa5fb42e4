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

// Claims and runs tasks of job `gen` until none is left. A task is claimed by a CAS on the job word, whose
// high half is the job's generation: a worker that wakes late, after its job ended or a new one began, claims
// nothing, so it never calls a stale fn and the caller never waits for it.
void Pool::work(uint32_t gen, const std::function<void(int, int)>& fn, int tasks, int thread) {
  uint64_t j = job_.load(std::memory_order_acquire);
  for (;;) {
    if ((uint32_t)(j >> 32) != gen || (int)(uint32_t)j >= tasks) return;
    if (!job_.compare_exchange_weak(j, j + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn((int)(uint32_t)j, thread);
    done_.fetch_add(1, std::memory_order_release);
    j = job_.load(std::memory_order_acquire);
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
  uint32_t gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gen = ++job_gen_;
    fn_ = &fn;
    tasks_ = tasks;
    done_.store(0, std::memory_order_relaxed);
    job_.store((uint64_t)gen << 32, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  // The caller works too and waits only for tasks other threads have claimed: on a machine where another
  // process holds a core, a descheduled worker no longer stalls every kernel of a decode step.
  work(gen, fn, tasks, 0);
  while (done_.load(std::memory_order_acquire) != tasks) PHI_PAUSE();
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
    uint32_t gen;
    const std::function<void(int, int)>* fn;
    int tasks;
    {
      std::lock_guard<std::mutex> lock(mu_);  // pairs with run(): the job is published under mu_
      if (stop_) return;
      gen = job_gen_;
      fn = fn_;
      tasks = tasks_;
    }
    if (fn) work(gen, *fn, tasks, index);
  }
}

}  // namespace phi4mm
