#include "engine/base/version.h"
#include "views/view_training.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/base/fs_util.h"
#include "imgui_stdlib.h"
#include "views/ui_util.h"
#include "views/view_log.h"

namespace pvm::studio {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const char* kModes[] = {"sft", "grpo"};
const char* kTrainable[] = {"pvm", "pvm+llm", "llm", "all"};
const char* kSchedules[] = {"cosine", "constant"};
const char* kDevices[] = {"cpu", "cuda"};
const char* kDtypes[] = {"f32", "bf16"};
const char* kRewards[] = {"think_answer", "exact", "choice"};

std::string format_eta(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  char b[32];
  const long t = long(s);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ldh %02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(b, sizeof b, "%ldm %02lds", t / 60, t % 60);
  return b;
}
}  // namespace

bool TrainForm::to_json(json* out, std::string* error) const {
  json j;
  j["mode"] = kModes[mode];
  if (!model.empty()) j["model"] = model;
  if (data.empty()) {
    *error = "training data: choose a JSONL file";
    return false;
  }
  j["data"] = data;
  if (!eval_data.empty()) j["eval_data"] = eval_data;
  j["trainable"] = kTrainable[trainable];
  if (!adapter.empty()) {
    j["adapter"] = adapter;
  } else if (trainable != 2) {
    std::vector<int64_t> layers;
    std::stringstream ss(pvm_layers);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(' '));
      if (item.empty()) continue;
      char* end = nullptr;
      const long v = std::strtol(item.c_str(), &end, 10);
      if (*end || v < 0) {
        *error = "PVM layers: '" + pvm_layers + "' is not a comma-separated list of layer indices";
        return false;
      }
      layers.push_back(v);
    }
    if (layers.empty() && trainable != 2) {
      *error = "PVM layers: give at least one layer (or start from an adapter)";
      return false;
    }
    j["pvm"] = {{"layers", layers}, {"hidden_size", pvm_hidden}};
  }
  if (steps < 0 || batch_size < 1 || grad_accum < 1 || max_length < 16 || !(lr > 0)) {
    *error = "steps >= 0, batch size >= 1, grad accum >= 1, max length >= 16 and LR > 0 are required";
    return false;
  }
  j["steps"] = steps;
  j["batch_size"] = batch_size;
  j["grad_accum"] = grad_accum;
  j["max_length"] = max_length;
  j["lr"] = lr;
  j["warmup_ratio"] = warmup_ratio;
  j["schedule"] = kSchedules[schedule];
  j["save_every"] = save_every;
  j["seed"] = seed;
  j["device"] = kDevices[device];
  j["dtype"] = kDtypes[dtype];
  if (mode == 1)
    j["grpo"] = {{"group_size", group_size},
                 {"prompts_per_step", prompts_per_step},
                 {"temperature", grpo_temperature},
                 {"max_new_tokens", grpo_max_new},
                 {"reward", kRewards[reward]}};
  *out = std::move(j);
  return true;
}

void fill_training_plots(const std::vector<MetricRow>& rows, Plot& loss, Plot& reward, Plot& gates, Plot& lr) {
  for (Plot* p : {&loss, &reward, &gates, &lr}) p->clear_series();
  auto series = [&](const char* name, ImU32 col, auto get, bool eval_rows = false) {
    PlotSeries s;
    s.name = name;
    s.color = col;
    for (const MetricRow& r : rows) {
      if (r.eval != eval_rows) continue;
      const double v = get(r);
      if (!std::isfinite(v)) continue;
      s.x.push_back(float(r.step));
      s.y.push_back(float(v));
    }
    return s;
  };
  auto add = [](Plot& p, PlotSeries s) {
    if (!s.x.empty()) p.add_series(std::move(s));
  };
  add(loss, series("loss", plot_palette(0), [](const MetricRow& r) { return r.loss; }));
  add(loss, series("eval loss", plot_palette(1), [](const MetricRow& r) { return r.eval_loss; }, true));
  // GRPO reward and rates; SFT runs have none, so the grad norm takes the panel.
  bool grpo = false;
  for (const MetricRow& r : rows) grpo |= r.extra.count("reward_mean") > 0;
  if (grpo) {
    int c = 0;
    for (const char* k : {"reward_mean", "format_rate", "accuracy_rate"})
      add(reward, series(k, plot_palette(c++), [k](const MetricRow& r) {
            auto it = r.extra.find(k);
            return it == r.extra.end() ? NAN : it->second;
          }));
    reward.set_title("reward and rates");
  } else {
    add(reward, series("grad norm", plot_palette(2), [](const MetricRow& r) { return r.grad_norm; }));
    reward.set_title("gradient norm (before clipping)");
  }
  std::vector<std::string> layers;
  for (const MetricRow& r : rows)
    for (const auto& [k, v] : r.gate_alpha)
      if (std::find(layers.begin(), layers.end(), k) == layers.end()) layers.push_back(k);
  std::sort(layers.begin(), layers.end(), [](const std::string& a, const std::string& b) {
    return std::atoi(a.c_str()) < std::atoi(b.c_str());
  });
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string k = layers[i];
    PlotSeries s = series(("layer " + k).c_str(), plot_ramp(layers.size() > 1 ? float(i) / (layers.size() - 1) : 0.5f),
                          [&](const MetricRow& r) {
                            auto it = r.gate_alpha.find(k);
                            return it == r.gate_alpha.end() ? NAN : it->second;
                          });
    add(gates, std::move(s));
  }
  add(lr, series("learning rate", plot_palette(3), [](const MetricRow& r) { return r.lr; }));
}

TrainingView::TrainingView(StudioContext& ctx)
    : View("Training", Slot::CenterBottom, true), ctx_(ctx), loss_("train_loss"), reward_("train_reward"),
      gates_("train_gate_alpha"), lr_("train_lr") {
  runs_root = (pvm::source_dir() + "/runs");
  loss_.set_title("loss");
  gates_.set_title("gate_alpha per PVM layer");
  lr_.set_title("learning rate");
  for (Plot* p : {&loss_, &reward_, &gates_, &lr_}) p->set_axis_labels("step", "");
}

TrainingView::~TrainingView() = default;

void TrainingView::open_run(const std::string& dir) {
  run_dir_ = dir;
  tail_ = std::make_unique<MetricsTail>(dir + "/metrics.jsonl");
  tail_->poll();
  status_ = read_run_status(dir);
  fill_training_plots(tail_->rows(), loss_, reward_, gates_, lr_);
  if (tail_->bad_lines()) log_warn("%s (%d bad lines skipped)", tail_->first_error().c_str(), tail_->bad_lines());
}

bool TrainingView::write_config(std::string* path, std::string* error) {
  json j;
  if (!form_.to_json(&j, error)) return false;
  const std::string dir = runs_root + "/.configs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  *path = dir + "/" + form_.run_name + ".json";
  try {
    pvm::atomic_write_file(*path, j.dump(2) + "\n");
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  return true;
}

void TrainingView::estimate() {
  std::string cfg, err;
  if (!write_config(&cfg, &err)) {
    log_error("%s", err.c_str());
    return;
  }
  estimate_log_ = runs_root + "/.configs/" + form_.run_name + ".estimate.txt";
  estimate_out_ = "estimating ...";
  if (!estimator_.start({pvm_binary(), "train", "estimate", "--config", cfg}, estimate_log_, &err)) {
    estimate_out_.clear();
    log_error("%s", err.c_str());
  }
}

void TrainingView::launch(bool resume) {
  std::string err;
  std::vector<std::string> argv = {pvm_binary(), "train", kModes[form_.mode]};
  std::string dir = resume ? run_dir_ : runs_root + "/" + form_.run_name;
  if (resume) {
    argv.insert(argv.end(), {"--resume", dir});
  } else {
    std::error_code ec;
    if (fs::exists(dir + "/status.json", ec)) {
      log_error("%s already holds a run: pick another run name, or open it and press Resume", dir.c_str());
      return;
    }
    std::string cfg;
    if (!write_config(&cfg, &err)) {
      log_error("%s", err.c_str());
      return;
    }
    argv.insert(argv.end(), {"--config", cfg, "--out", dir});
  }
  std::error_code ec;
  fs::create_directories(runs_root + "/.logs", ec);
  const std::string logp = runs_root + "/.logs/" + fs::path(dir).filename().string() + ".log";
  if (!trainer_.start(argv, logp, &err)) {
    log_error("%s", err.c_str());
    return;
  }
  std::string cmd;
  for (auto& a : argv) cmd += a + " ";
  log_info("training started (pid %d): %s; output in %s", int(trainer_.pid()), cmd.c_str(), logp.c_str());
  open_run(dir);
}

void TrainingView::draw() {
  const double now = ImGui::GetTime();
  // Poll files twice a second, not every frame.
  if (now - last_poll_ > 0.5) {
    last_poll_ = now;
    if (tail_ && tail_->poll()) fill_training_plots(tail_->rows(), loss_, reward_, gates_, lr_);
    if (!run_dir_.empty()) status_ = read_run_status(run_dir_);
    const bool was = trainer_.pid() > 0;
    if (was && !trainer_.running())
      log_info("trainer exited with code %d%s", trainer_.exit_code(),
               trainer_.exit_code() ? " (see runs/.logs/ for its output)" : "");
    if (estimator_.pid() > 0 && !estimator_.running()) {
      std::ifstream f(estimate_log_);
      std::stringstream ss;
      ss << f.rdbuf();
      estimate_out_ = ss.str();
      if (estimator_.exit_code()) estimate_out_ = "estimate failed (exit " + std::to_string(estimator_.exit_code()) + "):\n" + estimate_out_;
    }
  }
  if (now - last_list_ > 3.0) {
    last_list_ = now;
    runs_ = list_runs(runs_root);
  }
  const float fs = ImGui::GetFontSize();
  const float left_w = std::min(fs * 24, ImGui::GetContentRegionAvail().x * 0.42f);
  ImGui::BeginChild("##train_form", ImVec2(left_w, 0), true);
  draw_form();
  ImGui::Separator();
  draw_runs();
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("##train_run", ImVec2(0, 0), false);
  draw_run();
  ImGui::EndChild();
  browser_.draw();
}

void TrainingView::draw_form() {
  TrainForm& f = form_;
  const float fs = ImGui::GetFontSize();
  const float w = fs * 7;
  ImGui::SetNextItemWidth(w);
  ImGui::Combo("mode", &f.mode, kModes, 2);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 8);
  ImGui::InputText("run name", &f.run_name);
  auto path_row = [&](const char* label, std::string& v, FileBrowser::Mode m, std::vector<std::string> ext,
                      const char* hint) {
    ImGui::PushID(label);
    ImGui::SetNextItemWidth(-fs * 7.5f);
    ImGui::InputTextWithHint(label, hint, &v);
    ImGui::SameLine();
    if (ImGui::SmallButton("..."))
      browser_.open(label, m, v.empty() ? pvm::source_dir() : v, std::move(ext),
                    [&v](const std::string& p, std::string*) {
                      v = p;
                      return true;
                    });
    ImGui::PopID();
  };
  path_row("data", f.data, FileBrowser::Mode::OpenFile, {".jsonl"}, "train.jsonl");
  path_row("eval data", f.eval_data, FileBrowser::Mode::OpenFile, {".jsonl"}, "(optional)");
  path_row("model", f.model, FileBrowser::Mode::OpenDir, {}, "(default model)");
  path_row("from adapter", f.adapter, FileBrowser::Mode::OpenDir, {}, "(fresh PVM blocks)");
  ImGui::SetNextItemWidth(w);
  ImGui::Combo("trainable", &f.trainable, kTrainable, 4);
  item_tooltip("pvm: only the PVM blocks (result: an adapter). pvm+llm / llm: the language model too. all: everything.");
  if (f.adapter.empty()) {
    ImGui::SetNextItemWidth(w);
    ImGui::InputText("PVM layers", &f.pvm_layers);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(fs * 4);
    ImGui::InputInt("hidden", &f.pvm_hidden, 0);
  }
  ImGui::SetNextItemWidth(w);
  ImGui::InputInt("steps", &f.steps, 0);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 4);
  ImGui::InputInt("batch", &f.batch_size, 0);
  ImGui::SetNextItemWidth(w);
  ImGui::InputFloat("LR", &f.lr, 0, 0, "%.2e");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 4);
  ImGui::InputInt("accum", &f.grad_accum, 0);
  ImGui::SetNextItemWidth(w);
  ImGui::Combo("schedule", &f.schedule, kSchedules, 2);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 4);
  ImGui::InputFloat("warmup", &f.warmup_ratio, 0, 0, "%.2f");
  ImGui::SetNextItemWidth(w);
  ImGui::InputInt("max length", &f.max_length, 0);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 4);
  ImGui::InputInt("seed", &f.seed, 0);
  ImGui::SetNextItemWidth(w);
  ImGui::InputInt("save every", &f.save_every, 0);
  ImGui::SetNextItemWidth(w);
  ImGui::Combo("device", &f.device, kDevices, 2);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 4);
  ImGui::Combo("dtype", &f.dtype, kDtypes, 2);
  if (f.mode == 1) {
    ImGui::SetNextItemWidth(w);
    ImGui::InputInt("group size", &f.group_size, 0);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(fs * 4);
    ImGui::InputInt("prompts", &f.prompts_per_step, 0);
    ImGui::SetNextItemWidth(w);
    ImGui::InputFloat("temperature", &f.grpo_temperature, 0, 0, "%.2f");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(fs * 4);
    ImGui::InputInt("max new", &f.grpo_max_new, 0);
    ImGui::SetNextItemWidth(w);
    ImGui::Combo("reward", &f.reward, kRewards, 3);
  }
  const bool training = trainer_.pid() > 0;
  if (ImGui::Button("Estimate memory")) estimate();
  item_tooltip("Runs 'pvm train estimate --config F': parameters, optimizer state and activations, before launch.");
  ImGui::SameLine();
  ImGui::BeginDisabled(training);
  if (ImGui::Button("Launch")) launch(false);
  ImGui::EndDisabled();
  if (!estimate_out_.empty()) {
    ImGui::PushFont(nullptr);
    ImGui::TextWrapped("%s", estimate_out_.c_str());
    ImGui::PopFont();
  }
}

void TrainingView::draw_runs() {
  ImGui::TextDisabled("Runs in %s", runs_root.c_str());
  if (runs_.empty()) ImGui::TextDisabled("(none yet)");
  for (const RunInfo& r : runs_) {
    char label[256];
    std::snprintf(label, sizeof label, "%s  [%s%s%s] %lld/%lld", r.name.c_str(), r.mode.empty() ? "?" : r.mode.c_str(),
                  r.status.ok ? ", " : "", r.status.ok ? r.status.state.c_str() : "", (long long)r.status.step,
                  (long long)r.status.total_steps);
    if (ImGui::Selectable(label, r.dir == run_dir_)) open_run(r.dir);
  }
}

void TrainingView::draw_run() {
  if (run_dir_.empty()) {
    ImGui::TextDisabled("Fill the form and Launch, or open a past run on the left.");
    return;
  }
  const bool live = trainer_.pid() > 0;
  ImGui::Text("%s", fs::path(run_dir_).filename().c_str());
  ImGui::SameLine();
  ImGui::TextDisabled("%s", status_.ok ? (status_.state + (status_.message.empty() ? "" : ": " + status_.message)).c_str()
                                       : "no status.json yet");
  const MetricRow* last = nullptr;
  if (tail_)
    for (auto it = tail_->rows().rbegin(); it != tail_->rows().rend(); ++it)
      if (!it->eval) {
        last = &*it;
        break;
      }
  const int64_t step = status_.ok ? status_.step : last ? last->step : 0;
  const int64_t total = status_.ok && status_.total_steps ? status_.total_steps : last ? last->total_steps : 0;
  char over[96];
  std::snprintf(over, sizeof over, "step %lld / %lld, ETA %s", (long long)step, (long long)total,
                last ? format_eta(last->eta_s).c_str() : "-");
  ImGui::ProgressBar(total > 0 ? float(double(step) / double(total)) : 0.0f, ImVec2(-ImGui::GetFontSize() * 16, 0), over);
  ImGui::SameLine();
  ImGui::BeginDisabled(!live);
  if (ImGui::Button("Stop")) {
    if (trainer_.terminate()) log_info("SIGTERM sent to the trainer (pid %d): it saves a checkpoint and stops", int(trainer_.pid()));
  }
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::BeginDisabled(live || !status_.ok || status_.state == "finished" || status_.state == "running");
  if (ImGui::Button("Resume")) launch(true);
  ImGui::EndDisabled();
  ImGui::SameLine();
  const bool adapter = fs::exists(run_dir_ + "/final/adapter_config.json");
  ImGui::BeginDisabled(!adapter);
  if (ImGui::Button("Load adapter")) {
    if (ctx_.request_load_adapter) ctx_.request_load_adapter(run_dir_ + "/final");
  }
  ImGui::EndDisabled();
  item_tooltip(adapter ? "Load final/ of this run into the Model view." : "Only a finished PVM-only run has an adapter.");
  if (last) {
    ImGui::TextDisabled("loss %.4f  lr %.2e  grad norm %.3f  %.0f tok/s  mem %s", last->loss, last->lr, last->grad_norm,
                        last->tokens_per_s, std::isfinite(last->mem_bytes) ? format_bytes(int64_t(last->mem_bytes)).c_str() : "-");
  }
  if (tail_ && tail_->bad_lines()) ImGui::TextColored(ImVec4(0.98f, 0.78f, 0.3f, 1), "%d bad metrics lines skipped", tail_->bad_lines());
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float gap = ImGui::GetStyle().ItemSpacing.x;
  const ImVec2 cell(std::floor((avail.x - gap) * 0.5f), std::floor((avail.y - ImGui::GetStyle().ItemSpacing.y) * 0.5f));
  if (cell.x < 40 || cell.y < 40) return;
  Plot* plots[4] = {&loss_, &reward_, &gates_, &lr_};
  for (int i = 0; i < 4; ++i) {
    if (i % 2) ImGui::SameLine();
    ImGui::BeginChild(i == 0 ? "##tl" : i == 1 ? "##tr" : i == 2 ? "##tg" : "##tlr", cell, false, ImGuiWindowFlags_NoScrollbar);
    plots[i]->draw();
    ImGui::EndChild();
  }
}

}  // namespace pvm::studio
