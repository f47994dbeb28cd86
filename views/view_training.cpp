#include "engine/base/version.h"
#include "views/view_training.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/base/fs_util.h"
#include "engine/base/paths.h"
#include "engine/base/train_config.h"
#include "imgui_stdlib.h"
#include "views/ui_util.h"
#include "engine/base/log_sink.h"

namespace pvm::studio {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

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

// Layers and Pair fields are typed as text ("8, 16,24"); the config gets a list. Text that is not a
// list of numbers goes in as it is, so the parser refuses it with its own message.
json list_from_text(const std::string& text) {
  std::string s = text;
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  if (s.empty()) return nullptr;
  json v = json::parse(s.front() == '[' ? s : "[" + s + "]", nullptr, false);
  return v.is_discarded() ? json(text) : v;
}

// The form's value of a field as the config holds it; null = omitted.
json config_value(const pvm::train::TrainField& f, const json& v) {
  using pvm::train::FieldType;
  if (f.type == FieldType::Layers || f.type == FieldType::Pair) return list_from_text(v.get<std::string>());
  if (f.type == FieldType::Text && v.get<std::string>().empty()) return nullptr;
  return v;
}

}  // namespace

std::string default_pvm_layers(int layers) {
  if (layers <= 1) return "0";
  std::vector<int> v;
  for (int q = 1; q <= 3; ++q) {
    const int l = std::clamp(layers * q / 4, 0, layers - 1);
    if (v.empty() || v.back() != l) v.push_back(l);
  }
  std::string t;
  for (int l : v) t += (t.empty() ? "" : ",") + std::to_string(l);
  return t;
}

std::string ScenesDataForm::dir(const std::string& runs_root) const {
  return runs_root + "/.data/scenes-n" + std::to_string(count) + "-s" + std::to_string(seed) + "-o" +
         std::to_string(min_objects) + "-" + std::to_string(max_objects);
}

TrainForm::TrainForm() {
  using pvm::train::FieldType;
  for (const auto& f : pvm::train::train_fields()) {
    json d = f.default_value();
    if (f.type == FieldType::Layers || f.type == FieldType::Pair) {
      std::string t;
      for (auto& x : d) t += (t.empty() ? "" : ", ") + x.dump();
      d = t;
    }
    values[f.key] = d;
  }
  values["steps"] = 200;
  values["pvm.layers"] = "8,16,24";
}

bool TrainForm::grpo() const { return values.at("mode") == "grpo"; }

bool TrainForm::pvm_fields_apply() const {
  return values.at("adapter").get<std::string>().empty() && values.at("trainable") != "llm";
}

bool TrainForm::to_json(json* out, std::string* error) const {
  json j = json::object();
  for (const auto& f : pvm::train::train_fields()) {
    const std::string sec = f.section();
    if ((sec == "pvm" && !pvm_fields_apply()) || (sec == "grpo" && !grpo())) continue;
    json v = config_value(f, values.at(f.key));
    if (v.is_null()) continue;
    if (sec == "pvm" && f.key != "pvm.layers" && !j.contains("pvm")) continue;  // no layers: no fresh blocks
    (sec.empty() ? j[f.key] : j[sec][f.name()]) = v;
  }
  try {
    pvm::train::parse_train_config(j, "training form");
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  *out = std::move(j);
  return true;
}

void draw_train_form_fields(TrainForm& form, FileBrowser* browser, std::vector<std::string>* drawn) {
  using pvm::train::FieldType;
  using pvm::train::PathKind;
  using pvm::train::TrainField;
  const float fs = ImGui::GetFontSize();
  auto field = [&](const TrainField& f) {
    json& v = form.values[f.key];
    ImGui::PushID(f.key.c_str());
    const bool off = f.section() == "pvm" && !form.pvm_fields_apply();
    ImGui::BeginDisabled(off);
    const char* label = f.key.c_str();
    ImGui::SetNextItemWidth(f.path != PathKind::None ? -fs * 7.5f : fs * 9);
    switch (f.type) {
      case FieldType::Choice: {
        int cur = 0;
        for (size_t i = 0; i < f.choices.size(); ++i)
          if (v == f.choices[i]) cur = int(i);
        if (ImGui::BeginCombo(label, f.choices[cur].c_str())) {
          for (size_t i = 0; i < f.choices.size(); ++i)
            if (ImGui::Selectable(f.choices[i].c_str(), int(i) == cur)) v = f.choices[i];
          ImGui::EndCombo();
        }
        break;
      }
      case FieldType::Int: {
        int64_t x = v.get<int64_t>();
        if (ImGui::InputScalar(label, ImGuiDataType_S64, &x)) v = x;
        break;
      }
      case FieldType::Real: {
        double x = v.get<double>();
        if (ImGui::InputDouble(label, &x, 0, 0, "%g")) v = x;
        break;
      }
      case FieldType::Bool: {
        bool x = v.get<bool>();
        if (ImGui::Checkbox(label, &x)) v = x;
        break;
      }
      case FieldType::Text:
      case FieldType::Layers:
      case FieldType::Pair: {
        std::string x = v.get<std::string>();
        const char* hint = f.key == "model" ? "(default model)" : f.key == "adapter" ? "(fresh PVM blocks)" : "(not set)";
        if (ImGui::InputTextWithHint(label, hint, &x)) v = x;
        break;
      }
    }
    std::string tip = f.help;
    const std::string range = f.range_text();
    if (!range.empty()) tip += "\n" + range;
    if (off) tip += "\n(applies to fresh PVM blocks: no adapter, trainable not llm)";
    item_tooltip(tip.c_str());
    if (f.path != PathKind::None) {
      ImGui::SameLine();
      if (ImGui::SmallButton("...") && browser) {
        const std::string cur = v.get<std::string>();
        browser->open(f.key, f.path == PathKind::File ? FileBrowser::Mode::OpenFile : FileBrowser::Mode::OpenDir,
                      cur.empty() ? pvm::source_dir() : cur, {}, [&v](const std::string& p, std::string*) {
                        v = p;
                        return true;
                      });
      }
    }
    ImGui::EndDisabled();
    ImGui::PopID();
    if (drawn) drawn->push_back(f.key);
  };
  const auto& fields = pvm::train::train_fields();
  for (const TrainField& f : fields)
    if (f.common && f.section() != "grpo") field(f);
  if (form.grpo()) {
    ImGui::Separator();
    ImGui::TextDisabled("GRPO");
    for (const TrainField& f : fields)
      if (f.common && f.section() == "grpo") field(f);
  }
  ImGui::SetNextItemOpen(form.show_more);
  form.show_more = ImGui::CollapsingHeader("More settings");
  if (form.show_more)
    for (const TrainField& f : fields)
      if (!f.common && (f.section() != "grpo" || form.grpo())) field(f);
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
  runs_root = pvm::default_runs_dir();
  form_.values["out"] = runs_root + "/run";
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

std::string TrainingView::run_name() const {
  return fs::path(form_.values.at("out").get<std::string>()).lexically_normal().filename().string();
}

bool TrainingView::write_config(std::string* path, std::string* error) {
  json j;
  if (!effective_form().to_json(&j, error)) return false;
  if (run_name().empty()) {
    *error = "out: choose a run folder";
    return false;
  }
  const std::string dir = runs_root + "/.configs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  *path = dir + "/" + run_name() + ".json";
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
  estimate_log_ = runs_root + "/.configs/" + run_name() + ".estimate.txt";
  estimate_out_ = "estimating ...";
  if (!estimator_.start({pvm_binary(), "train", "estimate", "--config", cfg}, estimate_log_, &err)) {
    estimate_out_.clear();
    log_error("%s", err.c_str());
  }
}

TrainForm TrainingView::effective_form() const {
  TrainForm f = form_;
  if (scenes.enabled) {
    const std::string d = scenes.dir(runs_root);
    f.values["data"] = d + (f.grpo() ? "/grpo.jsonl" : "/sft.jsonl");
  }
  return f;
}

bool TrainingView::launch(bool resume) {
  std::string err;
  std::vector<std::string> argv = {pvm_binary(), "train", form_.values.at("mode").get<std::string>()};
  std::string dir = resume ? run_dir_ : form_.values.at("out").get<std::string>();
  if (resume) {
    argv.insert(argv.end(), {"--resume", dir});
    return start_trainer(argv, dir);
  }
  std::error_code ec;
  if (fs::exists(dir + "/status.json", ec)) {
    log_error("%s already holds a run: pick another out folder, or open it and press Resume", dir.c_str());
    return false;
  }
  std::string cfg;
  if (!write_config(&cfg, &err)) {
    log_error("%s", err.c_str());
    return false;
  }
  const std::string data_dir = scenes.dir(runs_root);
  if (scenes.enabled && !fs::exists(data_dir + "/dataset.json", ec)) {
    // A fresh install has no data: `pvm scenes` makes it first, then the trainer starts (draw()).
    if (scenes.count < 1 || scenes.min_objects < 1 || scenes.max_objects > 16 || scenes.min_objects > scenes.max_objects) {
      log_error("scenes data: count must be >= 1 and objects a range within 1..16");
      return false;
    }
    fs::create_directories(runs_root + "/.logs", ec);
    const std::vector<std::string> mk = {pvm_binary(), "scenes", "--out", data_dir, "--count", std::to_string(scenes.count),
                                         "--seed", std::to_string(scenes.seed), "--objects",
                                         std::to_string(scenes.min_objects) + "-" + std::to_string(scenes.max_objects),
                                         "--quiet"};
    if (!scenes_maker_.start(mk, runs_root + "/.logs/" + fs::path(data_dir).filename().string() + ".log", &err)) {
      log_error("%s", err.c_str());
      return false;
    }
    log_info("making the scenes data for the run: %d scenes (seed %lld, %d-%d objects) in %s", scenes.count,
             (long long)scenes.seed, scenes.min_objects, scenes.max_objects, data_dir.c_str());
    launch_after_scenes_ = true;
    return true;
  }
  argv.insert(argv.end(), {"--config", cfg, "--out", dir});
  return start_trainer(argv, dir);
}

bool TrainingView::start_trainer(const std::vector<std::string>& argv, const std::string& dir) {
  std::string err;
  std::error_code ec;
  fs::create_directories(runs_root + "/.logs", ec);
  const std::string logp = runs_root + "/.logs/" + fs::path(dir).filename().string() + ".log";
  if (!trainer_.start(argv, logp, &err)) {
    log_error("%s", err.c_str());
    return false;
  }
  std::string cmd;
  for (auto& a : argv) cmd += a + " ";
  log_info("training started (pid %d): %s; output in %s", int(trainer_.pid()), cmd.c_str(), logp.c_str());
  open_run(dir);
  return true;
}

void TrainingView::poll_launch() {
  if (!launch_after_scenes_ || scenes_maker_.running()) return;
  launch_after_scenes_ = false;
  if (scenes_maker_.exit_code() == 0) {
    log_info("scenes data ready: %s", scenes.dir(runs_root).c_str());
    launch(false);
  } else {
    log_error("making the scenes data failed (exit %d): see %s/.logs/", scenes_maker_.exit_code(), runs_root.c_str());
  }
}

bool TrainingView::working() {
  poll_launch();
  return scenes_maker_.running() || launch_after_scenes_ || trainer_.running();
}

void TrainingView::fit_to_model(const ModelInfo& m) {
  if (!m.loaded) return;
  std::string key = m.dir + "|" + m.adapter + "|" + std::to_string(m.layers);
  for (int l : m.pvm_layers) key += "," + std::to_string(l);
  if (key == fitted_key_) return;
  fitted_key_ = key;
  std::map<std::string, json> want;
  // The default model and the in-memory random one train as "" (the default model); a folder as itself.
  const bool folder = m.dir.rfind("random:", 0) != 0 && fs::path(m.dir).lexically_normal() != fs::path(pvm::default_model_dir()).lexically_normal();
  want["model"] = folder ? m.dir : "";
  if (!m.pvm_layers.empty()) {
    std::string t;
    for (int l : m.pvm_layers) t += (t.empty() ? "" : ",") + std::to_string(l);
    want["pvm.layers"] = t;
    want["pvm.hidden_size"] = int64_t(m.pvm_hidden > 0 ? m.pvm_hidden : 512);
  } else {
    want["pvm.layers"] = default_pvm_layers(m.layers);
    want["pvm.hidden_size"] = int64_t(std::clamp(m.hidden / 2, 16, 512));
  }
  for (auto& [k, v] : want) {
    // A value the user typed since the last fit stays.
    auto it = fitted_.find(k);
    if (it != fitted_.end() && form_.values[k] != it->second) continue;
    form_.values[k] = v;
    fitted_[k] = v;
  }
}

bool TrainingView::load_adapter_and_compare() {
  const std::string dir = run_dir_ + "/final";
  if (run_dir_.empty() || !fs::exists(dir + "/adapter_config.json")) {
    log_error("%s: no adapter (only a finished PVM-only run has final/adapter_config.json)", dir.c_str());
    return false;
  }
  if (!ctx_.request_load_adapter) return false;
  ctx_.request_load_adapter(dir);
  return true;
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
               trainer_.exit_code() ? (" (its output: " + runs_root + "/.logs/)").c_str() : "");
    if (estimator_.pid() > 0 && !estimator_.running()) {
      std::ifstream f(estimate_log_);
      std::stringstream ss;
      ss << f.rdbuf();
      estimate_out_ = ss.str();
      if (estimator_.exit_code()) estimate_out_ = "estimate failed (exit " + std::to_string(estimator_.exit_code()) + "):\n" + estimate_out_;
    }
  }
  fit_to_model(ctx_.ui->model);
  poll_launch();
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
  const float fs = ImGui::GetFontSize();
  ImGui::Checkbox("make a scenes data set for the run", &scenes.enabled);
  item_tooltip("A fresh install has no training data: 'pvm scenes' writes images, descriptions (SFT) and questions\n"
               "(GRPO) under the runs folder's .data/, once per setting; the data field is then ignored.");
  if (scenes.enabled) {
    ImGui::Indent();
    ImGui::SetNextItemWidth(fs * 6);
    ImGui::InputInt("scenes##tr", &scenes.count, 50, 500);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(fs * 5);
    ImGui::InputScalar("seed##tr", ImGuiDataType_S64, &scenes.seed);
    int objs[2] = {scenes.min_objects, scenes.max_objects};
    ImGui::SetNextItemWidth(fs * 7);
    if (ImGui::InputInt2("objects per scene", objs)) scenes.min_objects = objs[0], scenes.max_objects = objs[1];
    ImGui::TextDisabled("%s", scenes.dir(runs_root).c_str());
    ImGui::Unindent();
  }
  draw_train_form_fields(form_, &browser_);
  // The same check as `pvm train`, so a bad value shows here before anything is launched.
  json cfg;
  std::string err;
  if (!effective_form().to_json(&cfg, &err)) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.42f, 0.40f, 1));
    ImGui::TextWrapped("%s", err.c_str());
    ImGui::PopStyleColor();
  }
  const bool training = trainer_.pid() > 0 || launch_after_scenes_;
  if (ImGui::Button("Estimate memory")) estimate();
  item_tooltip("Runs 'pvm train estimate --config F': parameters, optimizer state and activations, before launch.");
  ImGui::SameLine();
  ImGui::BeginDisabled(training);
  if (ImGui::Button("Launch")) launch(false);
  ImGui::EndDisabled();
  if (launch_after_scenes_) {
    ImGui::SameLine();
    ImGui::TextDisabled("making the scenes data ...");
  }
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
  ImGui::BeginDisabled(!adapter || live);
  if (ImGui::Button("Load adapter & compare")) load_adapter_and_compare();
  ImGui::EndDisabled();
  item_tooltip(adapter ? "Load final/ of this run on the loaded model and generate baseline vs PVM in the Compare view."
                       : "Only a finished PVM-only run has an adapter.");
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
