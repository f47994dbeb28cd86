// The studio's session: the one object between the UI and the engine. It owns the Pipeline (model,
// tokenizer, processor) and runs all model work (loading, adapters, baseline + PVM (+ VisMem)
// generation with probes) on its own worker thread. The UI thread only posts requests and, once per frame, copies
// what changed into its UiState mirror (sync); nothing here ever blocks the UI for model work.
// Errors become one-line status messages and log lines, never exceptions on the UI thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "views/studio_state.h"

namespace pvm {
class Pipeline;
}

namespace pvm::studio {

// The in-memory model LoadRequest{kRandomModel} loads: a random qwen3-vl-tiny (seed 0) with two
// PVM layers whose gates are 0.5, and the committed Qwen3 tokenizer. Deterministic, so tests can
// rebuild exactly what a session runs. Throws naming the tokenizer file when it is missing.
std::unique_ptr<Pipeline> random_demo_pipeline(const std::string& device = "cpu", const std::string& dtype = "auto");

class Session : public Engine {
 public:
  // model_threads: intra-op threads of the model worker; 0 = automatic: cores - 1 (at least 1) until
  // a model loads, then the CLI's choice (default_cpu_threads): one thread for a small decoder, whose
  // tiny operators would spin at a barrier each beside the renderer (decode collapsed on 2 cores),
  // every core for a wide one (memory-bound; experiments/bench/RESULTS_studio.md).
  explicit Session(int model_threads = 0);
  ~Session() override;  // cancels a running generation and joins the worker

  bool load_model(const LoadRequest& r, std::string* why) override;
  bool load_adapter(const std::string& dir, std::string* why) override;
  bool load_vismem(const std::string& dir, std::string* why) override;
  bool generate(const GenerateSettings& s, std::string* why) override;
  void stop() override;
  bool busy() const override { return busy_.load(); }
  void sync(UiState& ui) override;
  GridInfo grid_for(int width, int height) const override;
  bool inspect_model(const LoadRequest& r, std::string* why) override;
  bool run_batch(const BatchSettings& s, std::string* why) override;

  // Blocks until the worker is idle (tests and the scripted demo; never from a frame).
  void wait_idle();
  int model_threads() const { return model_threads_; }
  // Heatmaps are recorded only while they fit this budget (both sides, all tokens).
  static constexpr int64_t kHeatmapBudgetBytes = int64_t(1) << 30;

 private:
  struct Shared {
    EngineStatus status;
    ModelInfo model;
    GridInfo grid;
    SideData side[kSides];
    GenerateSettings settings;
    uint64_t run_id = 0;
    BatchData batch;
    LoadPlan plan;
    LoadProgress load;
  };
  bool post(const char* what, std::function<void()> job, std::string* why);
  void worker_loop();
  void do_load(const LoadRequest& r);
  void do_load_adapter(const std::string& dir);
  void do_load_vismem(const std::string& dir);
  void attach_vismem_adapter(const std::string& dir);  // worker: load or detach, sh_.model follows
  void do_generate(const GenerateSettings& s, uint64_t run_id);
  void do_inspect(const LoadRequest& r);
  void do_batch(const BatchSettings& s, uint64_t id);
  void refresh_model_info();  // worker: sh_.model from pipe_
  void set_status(EngineStatus::State st, const std::string& msg, float progress = -1);
  void fail(const std::string& msg);

  std::unique_ptr<Pipeline> pipe_;  // worker thread only (plus grid_for, which reads the processor)
  mutable std::mutex mu_;           // guards sh_ and processor_ copy
  Shared sh_;
  std::vector<int64_t> proc_;       // patch, merge, min_pixels, max_pixels of the loaded processor
  uint64_t last_synced_run_ = 0;    // UI thread only
  uint64_t batches_ = 0;            // batches posted (UI thread)

  int model_threads_ = 1;
  bool threads_given_ = false;  // --model-threads: keep it for every model
  std::thread worker_;
  std::mutex qmu_;
  std::condition_variable qcv_, idle_cv_;
  std::deque<std::function<void()>> queue_;
  bool quit_ = false;
  std::atomic<bool> busy_{false};
  std::atomic<bool> cancel_{false};
};

}  // namespace pvm::studio
