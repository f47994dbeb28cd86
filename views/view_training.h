// Training view: a form for SFT / GRPO runs (data, trainable set, steps, LR, group size, ...) whose
// model and PVM layers follow the loaded model, a scenes data set made for the run (`pvm scenes`) when
// there is no data file, the
// memory estimate before launch (`pvm train estimate --config F`), launching `pvm train sft|grpo
// --config F --out RUN_DIR` as a child process, live curves from RUN_DIR/metrics.jsonl, a progress
// bar with ETA from status.json, stop (SIGTERM) and resume (--resume RUN_DIR), past runs under
// the runs folder (reopenable), and "Load adapter & compare" for a finished PVM-only run.
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

// PVM layers for fresh blocks on a decoder of `layers` layers: the quarter points (L/4, L/2, 3L/4;
// 1,2,3 on the 4-layer default model, 9,18,27 on 36 layers), as text for the form.
std::string default_pvm_layers(int layers);

// A scenes data set made for a run (`pvm scenes`): count, seed, objects per scene.
struct ScenesDataForm {
  bool enabled = true;  // make it, instead of naming a data file
  int count = 200;
  int64_t seed = 1;
  int min_objects = 4, max_objects = 16;
  // runs_root/.data/scenes-n<count>-s<seed>-o<min>-<max>: the same settings reuse the same files.
  std::string dir(const std::string& runs_root) const;
};

class TrainingView : public View {
 public:
  explicit TrainingView(StudioContext& ctx);
  ~TrainingView() override;
  void draw() override;
  void open_run(const std::string& dir);  // show a run's curves (past or live)
  std::string runs_root;

  TrainForm& form() { return form_; }
  ScenesDataForm scenes;
  // The form's model, PVM layers and PVM width follow the loaded model (its folder; the loaded
  // adapter's layers and width, else default_pvm_layers of its depth) until the user edits them.
  void fit_to_model(const ModelInfo& m);
  // Launch as the button does (makes the scenes data first when asked); false with a logged reason.
  bool launch_new() { return launch(false); }
  bool working();                     // making data or training
  int trainer_exit_code() const { return trainer_.exit_code(); }
  const std::string& run_dir() const { return run_dir_; }
  // The run's final/ adapter into the Model view, then the Compare view (one click).
  bool load_adapter_and_compare();

 private:
  void draw_form();
  void draw_run();
  void draw_runs();
  std::string run_name() const;  // the out folder's name: names its config and log files
  TrainForm effective_form() const;  // the form with data pointed at the scenes data when made here
  bool write_config(std::string* path, std::string* error);
  bool launch(bool resume);
  bool start_trainer(const std::vector<std::string>& argv, const std::string& dir);
  void poll_launch();  // the scenes data made: start the trainer
  void estimate();

  StudioContext& ctx_;
  TrainForm form_;
  FileBrowser browser_;
  ChildProcess trainer_, estimator_, scenes_maker_;
  bool launch_after_scenes_ = false;
  std::string fitted_key_;                       // the model the defaults were fitted to
  std::map<std::string, nlohmann::json> fitted_; // the values set then (edited: left alone)
  std::string estimate_out_, estimate_log_;
  std::string run_dir_;
  std::unique_ptr<MetricsTail> tail_;
  RunStatus status_;
  Plot loss_, reward_, gates_, lr_;
  std::vector<RunInfo> runs_;
  double last_poll_ = -1e9, last_list_ = -1e9;
};

}  // namespace pvm::studio
