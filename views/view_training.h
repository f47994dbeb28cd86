// Training view: a form for SFT / GRPO runs (data, trainable set, steps, LR, group size, ...), the
// memory estimate before launch (`pvm train estimate --config F`), launching `pvm train sft|grpo
// --config F --out RUN_DIR` as a child process, live curves from RUN_DIR/metrics.jsonl, a progress
// bar with ETA from status.json, stop (SIGTERM) and resume (--resume RUN_DIR), past runs under
// runs/ (reopenable), and "load adapter" for a finished PVM-only run.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "views/file_browser.h"
#include "views/plot.h"
#include "views/studio_state.h"
#include "views/train_runs.h"
#include "views/view.h"

namespace pvm::studio {

// The form (what becomes the trainer's config file).
struct TrainForm {
  int mode = 0;  // 0 sft, 1 grpo
  std::string model, data, eval_data, adapter;
  int trainable = 0;  // pvm, pvm+llm, llm, all
  std::string pvm_layers = "8,16,24";
  int pvm_hidden = 512;
  int steps = 200, batch_size = 8, grad_accum = 1, max_length = 2048, save_every = 100, seed = 0;
  float lr = 1e-4f, warmup_ratio = 0.1f;
  int schedule = 0;  // cosine, constant
  int device = 0, dtype = 0;
  int group_size = 8, prompts_per_step = 8, grpo_max_new = 256;
  float grpo_temperature = 1.0f;
  int reward = 0;  // think_answer, exact, choice
  std::string run_name = "run";
  // The config JSON (keys of engine/train_config.h). Errors (bad layer list) as pvm-style messages.
  bool to_json(nlohmann::json* out, std::string* error) const;
};

// Curves of a run: one plot per group, rebuilt from rows.
void fill_training_plots(const std::vector<MetricRow>& rows, Plot& loss, Plot& reward, Plot& gates, Plot& lr);

class TrainingView : public View {
 public:
  explicit TrainingView(StudioContext& ctx);
  ~TrainingView() override;
  void draw() override;
  void open_run(const std::string& dir);  // show a run's curves (past or live)
  std::string runs_root;

 private:
  void draw_form();
  void draw_run();
  void draw_runs();
  bool write_config(std::string* path, std::string* error);
  void launch(bool resume);
  void estimate();

  StudioContext& ctx_;
  TrainForm form_;
  FileBrowser browser_;
  ChildProcess trainer_, estimator_;
  std::string estimate_out_, estimate_log_;
  std::string run_dir_;
  std::unique_ptr<MetricsTail> tail_;
  RunStatus status_;
  Plot loss_, reward_, gates_, lr_;
  std::vector<RunInfo> runs_;
  double last_poll_ = -1e9, last_list_ = -1e9;
};

}  // namespace pvm::studio
