// Training view: a form for SFT / GRPO runs (data, trainable set, steps, LR, group size, ...), the
// memory estimate before launch (`pvm train estimate --config F`), launching `pvm train sft|grpo
// --config F --out RUN_DIR` as a child process, live curves from RUN_DIR/metrics.jsonl, a progress
// bar with ETA from status.json, stop (SIGTERM) and resume (--resume RUN_DIR), past runs under
// the runs folder (reopenable), and "load adapter" for a finished PVM-only run.
#pragma once
#include <map>
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

// The form: one value per key of the trainer's schema (engine/base/train_config.h, train_fields()),
// so every key `pvm train` takes is here, and the config it makes is checked by the CLI's parser.
struct TrainForm {
  TrainForm();  // the schema's defaults, with steps 200 and PVM layers 8,16,24 to start from
  // Key -> value as the schema types it (string, integer, number, bool); Layers and Pair fields
  // hold the text typed ("8, 16,24"), turned into a list when the config is made.
  std::map<std::string, nlohmann::json> values;
  bool show_more = false;  // the less common fields are shown

  bool grpo() const;              // the GRPO fields apply
  bool pvm_fields_apply() const;  // fresh PVM blocks: no adapter, and trainable is not "llm"
  // The config JSON: every field that applies (text fields left empty are omitted: their default).
  // Refused with the CLI's message ("training form: lr: must be in (0, 10], got -1") when
  // parse_train_config refuses it.
  bool to_json(nlohmann::json* out, std::string* error) const;
};

// Draws the form's fields from the schema: the common ones, the GRPO section in GRPO mode, the rest
// under "More settings". `browser` (may be null) serves the "..." buttons of path fields; `drawn`
// (may be null) receives the keys drawn, in order.
void draw_train_form_fields(TrainForm& f, FileBrowser* browser, std::vector<std::string>* drawn = nullptr);

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
  std::string run_name() const;  // the out folder's name: names its config and log files
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
