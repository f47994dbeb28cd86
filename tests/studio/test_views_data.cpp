// Torch-free pieces of the views: training metrics parsing and following (hand-written
// metrics.jsonl, including a half-written last line and bad lines), run listing and status, the
// training form's config, session save/load round trip and its errors, token layout and hit
// testing, smoothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <imgui.h>

#include <algorithm>

#include "engine/base/error.h"
#include "engine/base/train_config.h"
#include "views/session_io.h"
#include "views/train_runs.h"
#include "views/ui_util.h"
#include "views/view_compare.h"
#include "views/view_training.h"

using namespace pvm::studio;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path p;
  explicit TempDir(const char* tag) {
    p = fs::temp_directory_path() / (std::string("pvm_studio_") + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
  std::string str() const { return p.string(); }
};

void append(const fs::path& f, const std::string& s) { std::ofstream(f, std::ios::app) << s; }

}  // namespace

TEST(TrainingMetrics, ParsesSftAndGrpoLines) {
  MetricRow r;
  std::string err;
  ASSERT_TRUE(parse_metric_line(
      R"({"step":3,"total_steps":100,"time":1700000000.5,"elapsed_s":12.5,"loss":2.25,"lr":5e-05,"grad_norm":0.75,)"
      R"("tokens_per_s":1234.5,"eta_s":400,"mem_bytes":123456789,"gate_alpha":{"8":0.01,"16":-0.02}})",
      "m:1", &r, &err))
      << err;
  EXPECT_EQ(r.step, 3);
  EXPECT_EQ(r.total_steps, 100);
  EXPECT_DOUBLE_EQ(r.loss, 2.25);
  EXPECT_DOUBLE_EQ(r.lr, 5e-05);
  EXPECT_DOUBLE_EQ(r.eta_s, 400);
  EXPECT_DOUBLE_EQ(r.mem_bytes, 123456789);
  ASSERT_EQ(r.gate_alpha.size(), 2u);
  EXPECT_DOUBLE_EQ(r.gate_alpha["16"], -0.02);
  EXPECT_FALSE(r.eval);
  EXPECT_TRUE(r.extra.empty());

  ASSERT_TRUE(parse_metric_line(R"({"step":4,"total_steps":100,"loss":0.5,"reward_mean":0.25,"reward_std":0.1,)"
                                R"("format_rate":0.9,"accuracy_rate":0.3,"completion_len_mean":88})",
                                "m:2", &r, &err));
  EXPECT_DOUBLE_EQ(r.extra["reward_mean"], 0.25);
  EXPECT_DOUBLE_EQ(r.extra["accuracy_rate"], 0.3);
  EXPECT_DOUBLE_EQ(r.extra["completion_len_mean"], 88);
  EXPECT_TRUE(std::isnan(r.grad_norm));  // absent numbers are NaN, not 0

  ASSERT_TRUE(parse_metric_line(R"({"step":10,"eval_loss":1.5,"time":5})", "m:3", &r, &err));
  EXPECT_TRUE(r.eval);
  EXPECT_DOUBLE_EQ(r.eval_loss, 1.5);

  EXPECT_FALSE(parse_metric_line("{\"step\":1,", "metrics.jsonl:7", &r, &err));
  EXPECT_NE(err.find("metrics.jsonl:7"), std::string::npos);
  EXPECT_FALSE(parse_metric_line(R"({"loss":1})", "m:8", &r, &err));
  EXPECT_NE(err.find("step"), std::string::npos);
  EXPECT_FALSE(parse_metric_line("[1,2]", "m:9", &r, &err));
}

TEST(TrainingMetrics, TailFollowsAGrowingFileAndWaitsForHalfLines) {
  TempDir d("tail");
  const fs::path f = d.p / "metrics.jsonl";
  MetricsTail t(f.string());
  EXPECT_FALSE(t.poll());  // no file yet
  append(f, "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"lo");  // the trainer is mid-write
  EXPECT_TRUE(t.poll());
  ASSERT_EQ(t.rows().size(), 1u);
  EXPECT_FALSE(t.poll());  // nothing new
  append(f, "ss\":2.5}\nnot json\n\n{\"step\":3,\"loss\":2.0}\n");
  EXPECT_TRUE(t.poll());
  ASSERT_EQ(t.rows().size(), 3u);
  EXPECT_DOUBLE_EQ(t.rows()[1].loss, 2.5);
  EXPECT_EQ(t.rows()[2].step, 3);
  EXPECT_EQ(t.bad_lines(), 1);
  EXPECT_NE(t.first_error().find("metrics.jsonl:3"), std::string::npos) << t.first_error();
  // A rewritten (shorter) file starts over.
  std::ofstream(f) << "{\"step\":1,\"loss\":9}\n";
  EXPECT_TRUE(t.poll());
  ASSERT_EQ(t.rows().size(), 1u);
  EXPECT_DOUBLE_EQ(t.rows()[0].loss, 9);
}

TEST(TrainingMetrics, CurvesFromRows) {
  std::vector<MetricRow> rows;
  std::string err;
  for (int i = 1; i <= 5; ++i) {
    MetricRow r;
    ASSERT_TRUE(parse_metric_line("{\"step\":" + std::to_string(i) + ",\"loss\":" + std::to_string(1.0 / i) +
                                      ",\"lr\":0.001,\"grad_norm\":1,\"reward_mean\":" + std::to_string(0.1 * i) +
                                      ",\"format_rate\":0.5,\"accuracy_rate\":0.2,\"gate_alpha\":{\"16\":0.1,\"8\":0.2}}",
                                  "x", &r, &err))
        << err;
    rows.push_back(r);
  }
  MetricRow ev;
  ASSERT_TRUE(parse_metric_line(R"({"step":5,"eval_loss":0.4})", "x", &ev, &err));
  rows.push_back(ev);
  Plot loss("l"), reward("r"), gates("g"), lr("lr");
  fill_training_plots(rows, loss, reward, gates, lr);
  ASSERT_EQ(loss.series_count(), 2u);  // loss + eval loss
  EXPECT_EQ(loss.series(0).x.size(), 5u);
  EXPECT_EQ(loss.series(1).x.size(), 1u);
  EXPECT_FLOAT_EQ(loss.series(0).y[3], 0.25f);
  ASSERT_EQ(reward.series_count(), 3u);  // GRPO: reward, format, accuracy
  EXPECT_EQ(reward.series(0).name, "reward_mean");
  ASSERT_EQ(gates.series_count(), 2u);
  EXPECT_EQ(gates.series(0).name, "layer 8");  // numeric order, not string order
  EXPECT_EQ(lr.series_count(), 1u);
}

TEST(TrainingRuns, ListsRunsWithStatusAndAdapter) {
  TempDir d("runs");
  fs::create_directories(d.p / "a" / "final");
  std::ofstream(d.p / "a" / "status.json") << R"({"state":"finished","step":10,"total_steps":10,"pid":1,"message":""})";
  std::ofstream(d.p / "a" / "config.json") << R"({"mode":"sft"})";
  std::ofstream(d.p / "a" / "final" / "adapter_config.json") << "{}";
  fs::create_directories(d.p / "b");
  std::ofstream(d.p / "b" / "status.json") << "{broken";
  std::ofstream(d.p / "b" / "metrics.jsonl") << "";
  fs::create_directories(d.p / "not_a_run");
  fs::create_directories(d.p / ".configs");
  std::ofstream(d.p / ".configs" / "status.json") << "{}";
  auto runs = list_runs(d.str());
  ASSERT_EQ(runs.size(), 2u);
  const RunInfo* a = runs[0].name == "a" ? &runs[0] : &runs[1];
  const RunInfo* b = runs[0].name == "a" ? &runs[1] : &runs[0];
  EXPECT_TRUE(a->status.ok);
  EXPECT_EQ(a->status.state, "finished");
  EXPECT_EQ(a->status.total_steps, 10);
  EXPECT_EQ(a->mode, "sft");
  EXPECT_TRUE(a->has_final);
  EXPECT_TRUE(a->final_is_adapter);
  EXPECT_FALSE(b->status.ok);
  EXPECT_NE(b->status.error.find("status.json"), std::string::npos);
  EXPECT_TRUE(list_runs((d.p / "missing").string()).empty());
}

TEST(TrainingForm, ConfigJsonAndValidation) {
  TrainForm f;
  nlohmann::json j;
  std::string err;
  EXPECT_FALSE(f.to_json(&j, &err));  // no data file
  EXPECT_NE(err.find("data"), std::string::npos);
  f.values["data"] = "train.jsonl";
  f.values["pvm.layers"] = "8, 16,24";
  ASSERT_TRUE(f.to_json(&j, &err)) << err;
  EXPECT_EQ(j["mode"], "sft");
  EXPECT_EQ(j["pvm"]["layers"], nlohmann::json::array({8, 16, 24}));
  EXPECT_EQ(j["trainable"], "pvm");
  EXPECT_FALSE(j.contains("grpo"));
  f.values["mode"] = "grpo";
  f.values["grpo.group_size"] = 4;
  ASSERT_TRUE(f.to_json(&j, &err));
  EXPECT_EQ(j["grpo"]["group_size"], 4);
  f.values["pvm.layers"] = "8,x";
  EXPECT_FALSE(f.to_json(&j, &err));
  EXPECT_NE(err.find("8,x"), std::string::npos);
  f.values["pvm.layers"] = "8";
  f.values["lr"] = 0.0;
  EXPECT_FALSE(f.to_json(&j, &err));
}

// The form is the trainer's schema: with GRPO on and every field shown it draws each key of
// train_fields() once and nothing else, and holds a value for each.
TEST(TrainingForm, FieldsAreTheTrainerSchema) {
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.DisplaySize = ImVec2(1000, 2000);
  io.DeltaTime = 1.0f / 60.0f;
  io.IniFilename = nullptr;
  unsigned char* px;
  int w, h;
  io.Fonts->GetTexDataAsRGBA32(&px, &w, &h);
  TrainForm f;
  f.values["mode"] = "grpo";
  f.show_more = true;
  std::vector<std::string> drawn;
  ImGui::NewFrame();
  ImGui::Begin("host");
  draw_train_form_fields(f, nullptr, &drawn);
  ImGui::End();
  ImGui::Render();
  ImGui::DestroyContext();
  std::vector<std::string> keys;
  for (const auto& field : pvm::train::train_fields()) keys.push_back(field.key);
  std::sort(drawn.begin(), drawn.end());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(drawn, keys);
  std::vector<std::string> held;
  for (const auto& [k, v] : f.values) held.push_back(k);
  EXPECT_EQ(held, keys);
}

// A bad value is refused by the same parser as `pvm train --set`, with the same message (after the
// source: "training form" vs the CLI's config name).
TEST(TrainingForm, BadValueRefusedWithTheCliMessage) {
  struct Case {
    std::string key;
    nlohmann::json value;
    std::string set;
  };
  const std::vector<Case> cases = {{"lr", -1.0, "lr=-1"},
                                   {"grpo.group_size", 1, "grpo.group_size=1"},
                                   {"warmup_ratio", 1.5, "warmup_ratio=1.5"},
                                   {"pvm.layers", "8,x", "pvm.layers=8,x"},
                                   {"betas", "0.9, 1.5", "betas=[0.9,1.5]"},
                                   {"dtype", "bf16", "dtype=bf16"}};
  auto after_source = [](const std::string& e) { return e.substr(e.find(": ") + 2); };
  for (const Case& c : cases) {
    TrainForm f;
    f.values["data"] = "train.jsonl";
    f.values["mode"] = "grpo";
    f.values[c.key] = c.value;
    nlohmann::json j;
    std::string form_err, cli_err;
    EXPECT_FALSE(f.to_json(&j, &form_err)) << c.key;
    try {
      pvm::train::load_train_config("", {"data=train.jsonl", "pvm.layers=[8,16,24]", c.set}, "grpo");
    } catch (const pvm::Error& e) {
      cli_err = e.what();
    }
    ASSERT_FALSE(cli_err.empty()) << c.set;
    EXPECT_EQ(form_err.rfind("training form: ", 0), 0u) << form_err;
    EXPECT_EQ(after_source(form_err), after_source(cli_err)) << c.key;
  }
}

TEST(TrainingChild, RunsAndReportsExitCode) {
  TempDir d("child");
  ChildProcess c;
  std::string err;
  ASSERT_TRUE(c.start({"/bin/sh", "-c", "echo hello; exit 3"}, (d.p / "log.txt").string(), &err)) << err;
  for (int i = 0; i < 500 && c.running(); ++i) usleep(10000);
  EXPECT_EQ(c.exit_code(), 3);
  std::ifstream f(d.p / "log.txt");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "hello");
  ASSERT_TRUE(c.start({"/bin/sleep", "30"}, (d.p / "log2.txt").string(), &err));
  EXPECT_TRUE(c.running());
  EXPECT_TRUE(c.terminate());
  for (int i = 0; i < 500 && c.running(); ++i) usleep(10000);
  EXPECT_EQ(c.exit_code(), 128 + 15);  // SIGTERM
  EXPECT_FALSE(c.start({"/nonexistent/binary"}, (d.p / "log3.txt").string(), &err) && [&] {
    for (int i = 0; i < 500 && c.running(); ++i) usleep(10000);
    return c.exit_code() == 0;
  }());
}

namespace {
UiState sample_state() {
  UiState ui;
  ui.model.dir = "random:qwen3-vl-tiny";
  ui.model.layers = 2;
  ui.model.pvm_layers = {1};
  ui.grid = GridInfo{2, 3, 96, 64};
  GenerateSettings& s = ui.settings;
  s.prompt = "Describe.\nAll of it.";
  s.system = "sys";
  s.sampling.temperature = 0.7f;
  s.sampling.seed = 42;
  s.max_new_tokens = 3;
  s.image.width = 3, s.image.height = 2;
  s.image.rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90};
  s.image.source = "scene:7";
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < 3; ++i) {
      TokenRec t;
      t.id = 100 + i;
      t.piece = i == 2 ? "<|im_end|>" : (i ? " b\n" : "a\"");
      t.special = i == 2;
      t.mass = {0.5f / (i + 1), 0.25f};
      t.mass_nosink = {0.4f / (i + 1), 0.2f};
      t.heat = {{0.1f, 0.2f, 0.3f, 0.1f, 0.2f, 0.1f}, {1, 0, 0, 0, 0, 0}};
      if (k) t.pvm_gate = {0.5f}, t.pvm_ratio = {0.1f * i}, t.pvm_entropy = {1.5f}, t.pvm_heat = {{0, 0, 0, 1, 0, 0}};
      t.lens_first = i;
      ui.side[k].tokens.push_back(t);
      if (!t.special) ui.side[k].text += t.piece;
    }
    ui.side[k].finish = "stop";
    ui.side[k].tokens_per_s = 12.5;
  }
  return ui;
}
}  // namespace

TEST(SessionIo, RoundTrip) {
  TempDir d("session");
  UiState ui = sample_state();
  const std::string dir = (d.p / "s").string();
  save_session(dir, ui, "blind_painter", {{"dilution", {{"log_x", true}}}});
  for (const char* f : {"session.json", "image.png", "answer_baseline.txt", "answer_pvm.txt", "trace_baseline.jsonl",
                        "trace_pvm.jsonl"})
    EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f;
  LoadedSession s = load_session(dir);
  EXPECT_EQ(s.preset, "blind_painter");
  EXPECT_EQ(s.views["dilution"]["log_x"], true);
  EXPECT_TRUE(s.ui.restored);
  EXPECT_EQ(s.ui.settings.prompt, ui.settings.prompt);
  EXPECT_EQ(s.ui.settings.system, "sys");
  EXPECT_EQ(s.ui.settings.sampling.seed, 42);
  EXPECT_FLOAT_EQ(s.ui.settings.sampling.temperature, 0.7f);
  EXPECT_EQ(s.ui.settings.image.rgb, ui.settings.image.rgb);  // PNG is lossless
  EXPECT_EQ(s.ui.settings.image.source, "scene:7");
  EXPECT_EQ(s.ui.grid.rows, 2);
  EXPECT_EQ(s.ui.grid.cols, 3);
  EXPECT_EQ(s.ui.model.pvm_layers, std::vector<int>{1});
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(s.ui.side[k].tokens.size(), 3u);
    EXPECT_EQ(s.ui.side[k].text, ui.side[k].text);
    EXPECT_EQ(s.ui.side[k].finish, "stop");
    for (int i = 0; i < 3; ++i) {
      const TokenRec &a = ui.side[k].tokens[i], &b = s.ui.side[k].tokens[i];
      EXPECT_EQ(a.id, b.id);
      EXPECT_EQ(a.piece, b.piece);
      EXPECT_EQ(a.special, b.special);
      EXPECT_EQ(a.mass, b.mass);
      EXPECT_EQ(a.mass_nosink, b.mass_nosink);
      EXPECT_EQ(a.heat, b.heat);
      EXPECT_EQ(a.pvm_gate, b.pvm_gate);
      EXPECT_EQ(a.pvm_ratio, b.pvm_ratio);
      EXPECT_EQ(a.pvm_heat, b.pvm_heat);
      EXPECT_EQ(a.lens_first, b.lens_first);
    }
  }
  std::ifstream ab(fs::path(dir) / "answer_pvm.txt");
  std::string text((std::istreambuf_iterator<char>(ab)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "a\" b\n");
}

TEST(SessionIo, ErrorsNameTheFile) {
  TempDir d("session_bad");
  const std::string dir = (d.p / "s").string();
  try {
    load_session(dir);
    FAIL() << "missing folder accepted";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
  }
  save_session(dir, sample_state(), "", nlohmann::json::object());
  // Truncate a trace in the middle of its last line.
  const fs::path tr = fs::path(dir) / "trace_pvm.jsonl";
  const auto size = fs::file_size(tr);
  fs::resize_file(tr, size - 10);
  try {
    load_session(dir);
    FAIL() << "truncated trace accepted";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("trace_pvm.jsonl:3"), std::string::npos) << e.what();
  }
  // A trace with a line missing: the count in session.json no longer matches.
  save_session(dir, sample_state(), "", nlohmann::json::object());
  {
    std::ifstream f(fs::path(dir) / "trace_baseline.jsonl");
    std::string l1, l2;
    std::getline(f, l1);
    std::getline(f, l2);
    f.close();
    std::ofstream(fs::path(dir) / "trace_baseline.jsonl") << l1 << "\n" << l2 << "\n";
  }
  EXPECT_THROW(load_session(dir), pvm::Error);
  std::ofstream(fs::path(dir) / "session.json") << "{\"pvm_studio_session\":1}";
  try {
    load_session(dir);
    FAIL();
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("session.json"), std::string::npos) << e.what();
  }
  std::ofstream(fs::path(dir) / "session.json") << "not json";
  EXPECT_THROW(load_session(dir), pvm::Error);
}

TEST(TokenLayout, WrapsNewlinesAndHits) {
  std::vector<TokenRec> toks(6);
  const char* pieces[] = {"aaaa", "bb", "cccc", "\n", "dd\nee", "f"};
  for (int i = 0; i < 6; ++i) toks[i].piece = pieces[i];
  TokenLayout L;
  L.reset(10.0f, 2.0f);  // 10 px wide, 1 px per byte
  auto measure = [](const char* b, const char* e) { return float(e - b); };
  L.extend(std::vector<TokenRec>(toks.begin(), toks.begin() + 3), measure);
  // "aaaa" at x 0, "bb" at 4, "cccc" does not fit (6+4 > 10)? 6+4 = 10: fits exactly.
  ASSERT_EQ(L.spans.size(), 3u);
  EXPECT_FLOAT_EQ(L.spans[2].x, 6);
  EXPECT_FLOAT_EQ(L.spans[2].y, 0);
  L.extend(toks, measure);  // continues where it stopped
  // "\n" -> new line; "dd" on line 1, newline, "ee" on line 2, "f" after it.
  ASSERT_EQ(L.spans.size(), 6u);
  EXPECT_EQ(L.spans[3].token, 4);
  EXPECT_FLOAT_EQ(L.spans[3].y, 2);
  EXPECT_FLOAT_EQ(L.spans[4].y, 4);
  EXPECT_EQ(L.spans[4].token, 4);
  EXPECT_FLOAT_EQ(L.spans[5].x, 2);
  EXPECT_EQ(L.text.substr(L.spans[4].off, L.spans[4].len), "ee");
  EXPECT_EQ(L.spans[L.hit(1, 0.5f)].token, 0);
  EXPECT_EQ(L.spans[L.hit(7, 1)].token, 2);
  EXPECT_EQ(L.spans[L.hit(2.5f, 4.2f)].token, 5);
  EXPECT_EQ(L.hit(9, 4.5f), -1);  // right of the last span
  EXPECT_EQ(L.hit(1, 100), -1);
  // A long word wraps only when something precedes it on the line.
  TokenLayout M;
  M.reset(5.0f, 1.0f);
  std::vector<TokenRec> w(2);
  w[0].piece = "xx";
  w[1].piece = "yyyyyyy";
  M.extend(w, measure);
  EXPECT_FLOAT_EQ(M.spans[1].x, 0);
  EXPECT_FLOAT_EQ(M.spans[1].y, 1);
}

TEST(UiUtil, SmoothAndMean) {
  std::vector<float> y = {1, 2, 3, NAN, 5};
  auto s = smooth(y, 3);
  EXPECT_FLOAT_EQ(s[0], 1.5f);
  EXPECT_FLOAT_EQ(s[1], 2.0f);
  EXPECT_FLOAT_EQ(s[2], 2.5f);  // NaN skipped
  EXPECT_FLOAT_EQ(s[3], 4.0f);
  EXPECT_EQ(smooth(y, 1).size(), 5u);
  std::vector<float> a = {1, 2}, b = {3, NAN, 7};
  auto m = mean_of({&a, &b}, 3);
  EXPECT_FLOAT_EQ(m[0], 2);
  EXPECT_FLOAT_EQ(m[1], 2);
  EXPECT_FLOAT_EQ(m[2], 7);
  EXPECT_EQ(format_count(8767123696), "8,767,123,696");
  EXPECT_EQ(format_bytes(1500000), "1.5 MB");
}
