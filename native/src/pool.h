// A persistent thread pool: workers spin briefly for the next job (decode issues many ~100 µs kernels back
// to back) and then sleep on a condition variable. The calling thread takes part, so 1 thread runs inline.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace phi4mm {

class Pool {
 public:
  explicit Pool(int threads);
  ~Pool();
  int threads() const { return threads_; }
  // Runs fn(task, thread) for task in [0, tasks) with dynamic scheduling; returns when all are done.
  void run(int tasks, const std::function<void(int, int)>& fn);

 private:
  void worker(int index);
  void work(uint32_t gen, const std::function<void(int, int)>& fn, int tasks, int thread);

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::mutex run_mu_;  // serializes run() between calling threads
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> job_{0};  // (job generation << 32) | next task to claim
  std::atomic<int> done_{0};      // tasks of the current job finished
  uint32_t job_gen_ = 0;          // generation of the current job (under mu_)
  int tasks_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  bool stop_ = false;
};

}  // namespace phi4mm
