#include "thread-pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GLM_PAUSE() _mm_pause()
#else
#define GLM_PAUSE() std::this_thread::yield()
#endif

namespace glm {

namespace {
constexpr int kSpinIterations = 200000;  // about a millisecond of spinning before sleeping
constexpr int kYieldAfter = 2000;
}

ThreadPool::ThreadPool(int threads) {
  const int workers = std::max(1, threads) - 1;
  for (int i = 0; i < workers; i++) workers_.emplace_back(&ThreadPool::workerLoop, this, i + 1);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::runPart(int part) {
  const int parts = size();
  const int units = (n_ + grain_ - 1) / grain_;
  const int begin = std::min(n_, units * part / parts * grain_);
  const int end = std::min(n_, units * (part + 1) / parts * grain_);
  if (end > begin) (*fn_)(begin, end);
}

void ThreadPool::parallelFor(int n, const std::function<void(int, int)>& fn, int grain) {
  if (workers_.empty() || n <= grain) {
    if (n > 0) fn(0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  grain_ = std::max(1, grain);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  runPart(0);
  // Spin while the workers finish; yield the core if that takes long (more threads than free cores).
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; spins++) {
    if (spins < kYieldAfter) {
      GLM_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
      if (spins++ < kYieldAfter) {
        GLM_PAUSE();
      } else {
        std::this_thread::yield();
      }
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stopping_) return;
    runPart(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace glm
