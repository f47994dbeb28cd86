#include "views/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace pvm::studio {

int parallel_width(int max_threads) {
  int hw = int(std::thread::hardware_concurrency());
  int w = max_threads > 0 ? max_threads : std::min(hw > 0 ? hw : 1, 8);
  return std::max(1, w);
}

void parallel_for(int n, const std::function<void(int)>& fn, int max_threads) {
  const int threads = std::min(n, parallel_width(max_threads));
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  // Work stealing by counter: shares of uneven cost still balance.
  std::atomic<int> next{0};
  auto worker = [&] {
    for (int i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

}  // namespace pvm::studio
