// A persistent pool of worker threads for data-parallel loops. The calling thread takes part in
// every loop; workers spin briefly between loops (a decode step runs hundreds of short ones) and
// then sleep.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace glm {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on contiguous parts of [0, n), one part per thread, and waits for all of them.
  // `grain` keeps part boundaries on multiples of it (whole blocks of rows, say).
  void parallelFor(int n, const std::function<void(int begin, int end)>& fn, int grain = 1);

 private:
  void workerLoop(int index);
  void runPart(int part);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stopping_ = false;
  // The loop being run.
  const std::function<void(int, int)>* fn_ = nullptr;
  int n_ = 0;
  int grain_ = 1;
};

}  // namespace glm
