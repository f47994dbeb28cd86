// Splits short CPU bursts of the UI thread (plot decimation, line rasterization) over the cores.
// The UI thread does a share itself; the GL rasterizer is idle while it runs, so on software GL
// this buys wall time without competing with it.
#pragma once
#include <functional>

namespace pvm::studio {

// Calls fn(i) for i in [0, n), spread over up to `max_threads` threads (0: hardware
// concurrency, at most 8); returns when all are done. fn must not touch ImGui.
void parallel_for(int n, const std::function<void(int)>& fn, int max_threads = 0);
// How many shares parallel_for would use for a large n.
int parallel_width(int max_threads = 0);

}  // namespace pvm::studio
