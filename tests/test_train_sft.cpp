// SFT on tiny random models: loss falls, the PVM-only set leaves the backbone bit-identical,
// exact resume, checkpoints, activation checkpointing, and 2-process data parallel.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/base/error.h"
#include "engine/loader.h"
#include "engine/pvm.h"
#include "engine/memory_estimate.h"
#include "engine/train.h"
#include "engine/train_sft.h"
#include "tests/cli_util.h"
#include "tests/test_train_util.h"

using namespace pvm;
using namespace pvm::train;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> v;
  for (auto& j : pvm::testing::read_jsonl(run_dir + "/metrics.jsonl"))
    if (j.contains("loss")) v.push_back(j["loss"]);
  return v;
}

bool same_tensors(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b,
                  std::string* diff = nullptr) {
  if (a.size() != b.size()) return false;
  for (auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end() || !torch::equal(t, it->second)) {
      if (diff) *diff = k;
      return false;
    }
  }
  return true;
}

// The fixture's first three SFT rows, row 1 one token longer (unequal lengths: the batch pads).
struct Rows {
  std::vector<TokenizedExample> ex;
  std::vector<std::vector<ProcessedImage>> im;
  int64_t pad_id = 0;
};
Rows three_padded_rows(const pvm::testing::TrainFixture& f, TrainContext& ctx, const ModelConfig& mc) {
  SftDatasetOptions o;
  o.preprocessor = ctx.preprocessor;
  o.pad_id = mc.pad_token_id;
  SftDataset ds(f.data, ctx.tokenizer, o);
  Rows r;
  r.pad_id = o.pad_id;
  for (int i = 0; i < 3; ++i) {
    auto [e, imgs] = ds.load(i);
    if (i == 1) e.ids.push_back(65), e.labels.push_back(65);
    r.ex.push_back(e);
    r.im.push_back(imgs);
  }
  return r;
}

}  // namespace

TEST(TrainSft, LossFallsOnALearnableTask) {
  auto f = pvm::testing::make_train_fixture("train_sft_loss", 16);
  auto run_dir = f.dir + "/run";
  auto cfg = pvm::testing::train_config_json(f, run_dir);
  cfg["steps"] = 120;
  cfg["batch_size"] = 8;
  cfg["lr"] = 5e-3;
  cfg["log_every"] = 1;
  ASSERT_EQ(pvm::testing::run_train_quiet(cfg), 0);
  auto l = losses(run_dir);
  ASSERT_EQ(l.size(), 120u);
  double first = (l[0] + l[1]) / 2, last = (l[118] + l[119]) / 2;
  EXPECT_LT(last, first * 0.5) << "first " << first << " last " << last;
  // Below what the answer prior alone allows: the first answer token (one of 4 colours) costs
  // ln 4 per sample without the image, so the model must be reading the image.
  auto lines = pvm::testing::read_jsonl(run_dir + "/metrics.jsonl");
  const double prior_bound = 8 * std::log(4.0) / lines.back()["label_tokens"].get<double>();
  EXPECT_LT(last, 0.5 * prior_bound) << "final loss " << last << " prior-only bound " << prior_bound;
  // The run directory is complete.
  for (auto name : {"config.json", "manifest.json", "status.json", "metrics.jsonl", "checkpoints/latest", "final/config.json",
                    "final/model.safetensors", "final/tokenizer.json", "final/trainer_state.json"})
    EXPECT_TRUE(fs::exists(run_dir + "/" + name)) << name;
  auto status = json::parse(std::ifstream(run_dir + "/status.json"));
  EXPECT_EQ(status["state"], "finished");
  EXPECT_EQ(status["step"], 120);
  auto manifest = json::parse(std::ifstream(run_dir + "/manifest.json"));
  EXPECT_EQ(manifest["base_model_hash"].get<std::string>().size(), 24u);
  EXPECT_EQ(manifest["data_hash"].get<std::string>().rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(manifest["versions"]["libtorch"], TORCH_VERSION);
  auto m = pvm::testing::read_jsonl(run_dir + "/metrics.jsonl").back();
  for (auto k : {"step", "total_steps", "time", "elapsed_s", "loss", "lr", "grad_norm", "tokens_per_s", "eta_s", "mem_bytes", "gate_alpha"})
    EXPECT_TRUE(m.contains(k)) << k;
  EXPECT_GT(m["tokens_per_s"].get<double>(), 0);
  // The final folder opens as a model.
  auto loaded = load_model(run_dir + "/final", {});
  EXPECT_EQ(loaded.config.text.hidden_size, 64);
}

TEST(TrainSft, PvmSetChangesOnlyPvmParameters) {
  auto f = pvm::testing::make_train_fixture("train_sft_pvm", 8);
  auto run_dir = f.dir + "/run";
  auto cfg = pvm::testing::train_config_json(f, run_dir);
  cfg["trainable"] = "pvm";
  cfg["pvm"] = {{"layers", {1, 3}}, {"hidden_size", 32}};
  cfg["steps"] = 3;
  cfg["lr"] = 1e-2;
  cfg["weight_decay"] = 0.1;
  cfg["save_every"] = 1;
  cfg["keep_checkpoints"] = 2;
  ASSERT_EQ(pvm::testing::run_train_quiet(cfg), 0);
  // Adapter checkpoints only, the last two kept, no temporary folder left behind.
  std::vector<std::string> entries;
  for (auto& e : fs::directory_iterator(run_dir + "/checkpoints")) entries.push_back(e.path().filename().string());
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"latest", "step-000002", "step-000003"}));
  EXPECT_TRUE(fs::exists(run_dir + "/final/adapter.safetensors"));
  EXPECT_FALSE(fs::exists(run_dir + "/final/model.safetensors"));
  auto adapter = pvm::testing::params_of(run_dir + "/final/adapter.safetensors");
  EXPECT_EQ(adapter.size(), 2u * 15u);
  // Load base + adapter: backbone bit-identical to the base file, PVM weights moved from init.
  auto base = pvm::testing::params_of(f.model + "/model.safetensors");
  auto lm = load_model(f.model, {});
  load_pvm_adapter(*lm.model, run_dir + "/final");
  int64_t changed_pvm = 0;
  for (auto& p : lm.model->named_parameters(true)) {
    if (p.key().find(".pvm_block.") != std::string::npos) continue;
    ASSERT_TRUE(base.count(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(base[p.key()], p.value())) << p.key();
  }
  // Against a fresh attach with the same seed: every PVM tensor trained (gate_alpha included).
  auto fresh = load_model(f.model, {});
  TextConfig fields = fresh.config.text;
  fields.pvm_layers = {1, 3};
  fields.pvm_hidden_size = 32;
  attach_pvm(*fresh.model, fields, 0);
  auto fp = fresh.model->named_parameters(true);
  for (auto& [k, t] : adapter)
    if (!torch::equal(t, fp[k])) ++changed_pvm;
  EXPECT_EQ(changed_pvm, (int64_t)adapter.size());
  auto m = pvm::testing::read_jsonl(run_dir + "/metrics.jsonl").back();
  ASSERT_TRUE(m["gate_alpha"].contains("1"));
  EXPECT_NE(m["gate_alpha"]["1"].get<double>(), 0.0);
  // The frozen backbone is never part of the optimizer state.
  auto opt = pvm::testing::params_of(run_dir + "/final/optimizer.safetensors");
  for (auto& [k, t] : opt) EXPECT_TRUE(k == "rng.cpu" || k.find(".pvm_block.") != std::string::npos) << k;
}

TEST(TrainSft, VisualLrScaleScalesOnlyTheVisionSteps) {
  // One AdamW step from the same start with visual_lr_scale 1, 0.25 and 0: the first Adam step is
  // lr * g / (|g| + eps) per element, so model.visual.* moves exactly 0.25 times as far (or not at
  // all) while every language-model tensor takes the identical step.
  auto f = pvm::testing::make_train_fixture("train_sft_vis_lr", 8);
  auto base = pvm::testing::params_of(f.model + "/model.safetensors");
  std::map<double, std::map<std::string, torch::Tensor>> after;
  for (double s : {1.0, 0.25, 0.0}) {
    auto run_dir = f.dir + "/run" + std::to_string(int(s * 100));
    auto cfg = pvm::testing::train_config_json(f, run_dir);
    cfg["trainable"] = "all";
    cfg["steps"] = 1;
    cfg["lr"] = 1e-3;
    cfg["weight_decay"] = 0.1;
    cfg["visual_lr_scale"] = s;
    ASSERT_EQ(pvm::testing::run_train_quiet(cfg), 0);
    after[s] = pvm::testing::params_of(run_dir + "/final/model.safetensors");
  }
  int64_t visual = 0, text = 0;
  for (auto& [k, t0] : base) {
    auto d1 = after[1.0][k] - t0, dq = after[0.25][k] - t0, d0 = after[0.0][k] - t0;
    if (k.rfind("model.visual.", 0) == 0) {
      ++visual;
      EXPECT_TRUE(torch::allclose(dq, 0.25 * d1, 1e-4, 1e-7)) << k;
      EXPECT_EQ(d0.abs().max().item<float>(), 0.f) << k;
    } else {
      ++text;
      EXPECT_TRUE(torch::equal(after[0.25][k], after[1.0][k])) << k;
      EXPECT_TRUE(torch::equal(after[0.0][k], after[1.0][k])) << k;
    }
    if (k == "model.visual.merger.linear_fc1.weight") {
      EXPECT_GT(d1.abs().max().item<float>(), 1e-4);
    }
  }
  EXPECT_GT(visual, 10);
  EXPECT_GT(text, 10);
}

TEST(TrainSft, ResumeIsBitIdentical) {
  auto f = pvm::testing::make_train_fixture("train_sft_resume", 12);
  for (std::string set : {"pvm", "all"}) {
    SCOPED_TRACE(set);
    auto cfg = pvm::testing::train_config_json(f, "");
    cfg["trainable"] = set;
    if (set == "pvm") cfg["pvm"] = {{"layers", {2}}, {"hidden_size", 32}};
    cfg["steps"] = 6;
    cfg["schedule"] = "cosine";
    cfg["warmup_steps"] = 2;
    cfg["weight_decay"] = 0.01;
    cfg["grad_accum"] = 2;
    cfg["save_every"] = 0;
    auto a = cfg, b = cfg;
    a["out"] = f.dir + "/full-" + set;
    b["out"] = f.dir + "/split-" + set;
    ASSERT_EQ(pvm::testing::run_train_quiet(a), 0);
    ASSERT_EQ(pvm::testing::run_train_quiet(b, 3), 0);  // "killed" after step 3: checkpoint + stopped
    auto st = json::parse(std::ifstream(b["out"].get<std::string>() + "/status.json"));
    EXPECT_EQ(st["state"], "stopped");
    EXPECT_EQ(st["step"], 3);
    EXPECT_FALSE(fs::exists(b["out"].get<std::string>() + "/final"));
    // A fresh run refuses to overwrite it.
    EXPECT_THROW(pvm::testing::run_train_quiet(b), pvm::Error);
    // Resumed with the same stop step, it takes no step (no new metrics line, still stopped at 3).
    const auto lines_at_3 = pvm::testing::read_jsonl(b["out"].get<std::string>() + "/metrics.jsonl").size();
    ASSERT_EQ(pvm::testing::run_train_quiet(b, 3, b["out"]), 0);
    EXPECT_EQ(pvm::testing::read_jsonl(b["out"].get<std::string>() + "/metrics.jsonl").size(), lines_at_3);
    EXPECT_EQ(json::parse(std::ifstream(b["out"].get<std::string>() + "/status.json"))["step"], 3);
    EXPECT_FALSE(fs::exists(b["out"].get<std::string>() + "/final"));
    ASSERT_EQ(pvm::testing::run_train_quiet(b, -1, b["out"]), 0);
    const std::string wfile = set == "pvm" ? "/final/adapter.safetensors" : "/final/model.safetensors";
    std::string diff;
    EXPECT_TRUE(same_tensors(pvm::testing::params_of(a["out"].get<std::string>() + wfile),
                             pvm::testing::params_of(b["out"].get<std::string>() + wfile), &diff))
        << diff;
    EXPECT_TRUE(same_tensors(pvm::testing::params_of(a["out"].get<std::string>() + "/final/optimizer.safetensors"),
                             pvm::testing::params_of(b["out"].get<std::string>() + "/final/optimizer.safetensors"), &diff))
        << diff;
    auto ma = pvm::testing::read_jsonl(a["out"].get<std::string>() + "/metrics.jsonl");
    auto mb = pvm::testing::read_jsonl(b["out"].get<std::string>() + "/metrics.jsonl");
    ASSERT_EQ(ma.size(), 6u);
    ASSERT_EQ(mb.size(), 6u);
    for (size_t i = 0; i < 6; ++i)
      for (auto k : {"step", "loss", "lr", "grad_norm", "tokens", "label_tokens", "gate_alpha"})
        EXPECT_EQ(ma[i][k], mb[i][k]) << "line " << i << " " << k;
  }
}

TEST(TrainSft, GradientCheckpointingGivesTheSameGradients) {
  auto f = pvm::testing::make_train_fixture("train_ckpt", 4);
  for (std::string set : {"all", "pvm"}) {
    SCOPED_TRACE(set);
    std::vector<std::map<std::string, torch::Tensor>> grads;
    for (bool ckpt : {false, true}) {
      auto lm = load_model(f.model, {});
      TextConfig fields = lm.config.text;
      fields.pvm_layers = {1, 2};
      fields.pvm_hidden_size = 32;
      attach_pvm(*lm.model, fields, 5);
      {  // gate 0 would hide the PVM path from the backbone's gradients
        torch::NoGradGuard ng;
        for (auto& l : lm.model->model->language_model->layer_list)
          if (l->pvm_block) l->pvm_block->gate_alpha.fill_(0.3);
      }
      TrainContext ctx(Tokenizer::load(f.model + "/tokenizer.json"));
      ctx.cfg.grad_checkpointing = ckpt;
      ctx.model = lm.model;
      ctx.preprocessor = PreprocessorConfig::load(f.model + "/preprocessor_config.json");
      auto names = select_trainable(*lm.model, set);
      std::set<std::string> on(names.begin(), names.end());
      for (auto& p : lm.model->named_parameters(true)) p.value().set_requires_grad(on.count(p.key()) > 0);
      auto rows = three_padded_rows(f, ctx, lm.config);
      auto b = collate(rows.ex, rows.im, rows.pad_id);
      auto loss = sft_loss_sum(ctx, b);
      loss.backward();
      std::map<std::string, torch::Tensor> g;
      for (auto& p : lm.model->named_parameters(true))
        if (p.value().grad().defined()) g[p.key()] = p.value().grad().clone();
      grads.push_back(g);
    }
    ASSERT_EQ(grads[0].size(), grads[1].size());
    EXPECT_GT(grads[0].size(), 0u);
    for (auto& [k, g] : grads[0]) {
      ASSERT_TRUE(grads[1].count(k)) << k;
      EXPECT_TRUE(torch::allclose(g, grads[1][k], 1e-5, 1e-7)) << k << " max diff "
                                                                << (g - grads[1][k]).abs().max().item<double>();
    }
    if (set == "all") {  // the vision tower gets gradients through the checkpointed PVM layers too
      EXPECT_TRUE(grads[1].count("model.visual.merger.linear_fc2.weight"));
      EXPECT_GT(grads[1]["model.visual.merger.linear_fc2.weight"].abs().sum().item<double>(), 0);
    }
  }
}

// An attention option of SFT (set on the config) against its definition: the loss of a padded batch
// of three rows equals, row by row, an uncached forward that `decorate` gives the option's mask or
// bias (from the row's ids and its first labelled token), with and without checkpointing (equal
// gradients: the recompute rebuilds it), and differs from the loss without the option.
static void expect_sft_loss_is_the_per_row_forward(
    const std::string& name, const std::function<void(TrainConfig&)>& set,
    const std::function<void(ForwardInput&, int64_t start, const ModelConfig&)>& decorate) {
  auto f = pvm::testing::make_train_fixture(name, 4);
  auto lm = load_model(f.model, {});
  TrainContext ctx(Tokenizer::load(f.model + "/tokenizer.json"));
  ctx.model = lm.model;
  ctx.preprocessor = PreprocessorConfig::load(f.model + "/preprocessor_config.json");
  auto [ex, im, pad_id] = three_padded_rows(f, ctx, lm.config);
  double want = 0;
  for (size_t r = 0; r < ex.size(); ++r) {
    torch::NoGradGuard ng;
    auto one = collate({ex[r]}, {im[r]}, pad_id);
    const int64_t S = one.input_ids.size(1);
    int64_t start = S;
    for (int64_t s = 0; s < S; ++s)
      if (ex[r].labels[s] != kIgnoreIndex) { start = s; break; }
    ASSERT_LT(start + 4, S) << "row " << r << ": the answer must be long enough to matter";
    ForwardInput in;
    in.input_ids = one.input_ids;
    in.pixel_values = one.pixel_values;
    in.grids = one.grids;
    in.all_logits = true;
    decorate(in, start, lm.config);
    auto logp = torch::log_softmax(lm.model->forward(in, nullptr, {}).logits[0], -1);  // [S, V]
    for (int64_t s = 1; s < S; ++s)
      if (ex[r].labels[s] != kIgnoreIndex) want -= logp[s - 1][ex[r].ids[s]].item<double>();
  }
  auto b = collate(ex, im, pad_id);
  const double plain = sft_loss_sum(ctx, b).item<double>();
  // with gradients, so the checkpointed recompute runs in backward
  for (auto& p : lm.model->parameters()) p.set_requires_grad(true);
  auto& w = lm.model->model->language_model->layer_list[0]->self_attn->q_proj->weight;
  std::vector<torch::Tensor> grads;
  for (bool ckpt : {false, true}) {
    set(ctx.cfg);
    ctx.cfg.grad_checkpointing = ckpt;
    for (auto& p : lm.model->parameters()) p.mutable_grad() = torch::Tensor();
    auto loss = sft_loss_sum(ctx, b);
    const double got = loss.item<double>();
    EXPECT_NEAR(got, want, 1e-3 * std::abs(want)) << (ckpt ? "checkpointed" : "plain");
    EXPECT_GT(std::abs(got - plain), 1e-3) << "the option changed nothing";
    loss.backward();
    grads.push_back(w.grad().clone());
  }
  EXPECT_TRUE(torch::allclose(grads[0], grads[1], 1e-5, 1e-7)) << (grads[0] - grads[1]).abs().max().item<double>();
}

TEST(TrainSft, HistoryWindowLossIsTheMaskedForwardPerRow) {
  expect_sft_loss_is_the_per_row_forward(
      "train_window", [](TrainConfig& c) { c.history_window = 2; },
      [](ForwardInput& in, int64_t start, const ModelConfig&) {
        in.key_allowed = history_window_mask(torch::tensor({start}, torch::kLong), in.input_ids.size(1), 2);
      });
}

TEST(TrainSft, VisualRestoreLossIsTheBiasedForwardPerRow) {
  for (const double k : {2.0, -2.0}) {  // restored, and faded faster (K < 0)
    expect_sft_loss_is_the_per_row_forward(
        k > 0 ? "train_restore" : "train_fade", [k](TrainConfig& c) { c.visual_restore = k; },
        [k](ForwardInput& in, int64_t start, const ModelConfig& mc) {
          auto image_keys = in.input_ids == mc.image_token_id;
          ASSERT_GT(image_keys.sum().item<int64_t>(), 0);
          in.key_bias = visual_restore_bias(image_keys, torch::tensor({start}, torch::kLong), k);
        });
  }
}

TEST(TrainSft, GradCheckpointedRunMatchesPlainRun) {
  auto f = pvm::testing::make_train_fixture("train_ckpt_run", 8);
  auto cfg = pvm::testing::train_config_json(f, f.dir + "/plain");
  cfg["steps"] = 2;
  auto c2 = cfg;
  c2["out"] = f.dir + "/ckpt";
  c2["grad_checkpointing"] = true;
  ASSERT_EQ(pvm::testing::run_train_quiet(cfg), 0);
  ASSERT_EQ(pvm::testing::run_train_quiet(c2), 0);
  auto la = losses(f.dir + "/plain"), lb = losses(f.dir + "/ckpt");
  ASSERT_EQ(la.size(), 2u);
  ASSERT_EQ(lb.size(), 2u);
  EXPECT_NEAR(la[1], lb[1], 1e-5);
}

TEST(TrainSft, MemoryEstimateScalesWithTheSetup) {
  auto f = pvm::testing::make_train_fixture("train_mem", 1);
  auto mc = load_config(f.model + "/config.json");
  auto cfg = parse_train_config(pvm::testing::train_config_json(f, ""), "t");
  auto all = estimate_memory(cfg, mc);
  cfg.trainable = "pvm";
  cfg.pvm.layers = {3};
  cfg.pvm.hidden_size = 32;
  auto pvm = estimate_memory(cfg, mc);
  EXPECT_LT(pvm.optimizer, all.optimizer / 5);
  EXPECT_EQ(all.optimizer, all.trainable_params * 8);
  EXPECT_EQ(all.weights, all.params * 4);
  cfg.trainable = "all";
  cfg.batch_size = 16;
  auto big = estimate_memory(cfg, mc);
  EXPECT_GT(big.activations, all.activations * 3);
  cfg.grad_checkpointing = true;
  EXPECT_LT(estimate_memory(cfg, mc).activations, big.activations);
  EXPECT_GT(all.available, 0);  // MemAvailable is readable on Linux
  EXPECT_NE(all.to_string().find("optimizer"), std::string::npos);
}

// ---- 2-process data parallel over loopback (spawns the pvm CLI) ----

namespace {
std::string pvm_binary() {
  if (const char* b = std::getenv("PVM_BIN"); b && *b) return b;
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string self(buf, n);
  std::string p = self.substr(0, self.find_last_of('/') + 1) + "pvm";
  return fs::exists(p) ? p : "";
}

pid_t spawn(const std::string& bin, const std::vector<std::string>& args, const std::vector<std::string>& env,
            const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    for (auto& e : env) putenv(const_cast<char*>(e.c_str()));
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST(TrainDistributed, TwoProcessesEqualOneProcess) {
  if (!Distributed::available()) GTEST_SKIP() << "this build has no c10d/Gloo";
  auto bin = pvm_binary();
  if (bin.empty()) GTEST_SKIP() << "pvm binary not found (set PVM_BIN)";
  auto f = pvm::testing::make_train_fixture("train_ddp", 8);
  auto cfg = pvm::testing::train_config_json(f, "");
  cfg["trainable"] = "all";
  cfg["steps"] = 3;
  cfg["batch_size"] = 4;
  cfg["lr"] = 1e-3;
  cfg["threads"] = 1;
  cfg.erase("out");
  std::ofstream(f.dir + "/cfg.json") << cfg.dump();
  const std::string one = f.dir + "/one", two = f.dir + "/two";
  // One process: the same global batch of 4 as two micro-batches of 2, so every forward has the
  // shapes a rank sees and the gradient sums are the same two-term float sums (Adam turns tiny
  // float differences of near-zero gradients into visible parameter differences).
  auto p1 = spawn(bin, {"train", "sft", "--config", f.dir + "/cfg.json", "--out", one, "--no-progress", "--set", "grad_accum=2"},
                  {}, f.dir + "/one.log");
  ASSERT_EQ(wait_for(p1), 0) << slurp(f.dir + "/one.log");
  const int port = 20000 + (int)(::getpid() % 20000);
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r)
    pids.push_back(spawn(bin, {"train", "sft", "--config", f.dir + "/cfg.json", "--out", two, "--no-progress"},
                         {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r), "WORLD_SIZE=2",
                          "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)},
                         f.dir + "/two" + std::to_string(r) + ".log"));
  for (int r = 0; r < 2; ++r) ASSERT_EQ(wait_for(pids[r]), 0) << slurp(f.dir + "/two" + std::to_string(r) + ".log");
  auto a = pvm::testing::params_of(one + "/final/model.safetensors"), b = pvm::testing::params_of(two + "/final/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  double maxdiff = 0;
  for (auto& [k, t] : a) maxdiff = std::max(maxdiff, (t - b[k]).abs().max().item<double>());
  EXPECT_LT(maxdiff, 1e-6);
  // Something was trained (the comparison is not vacuous).
  auto base = pvm::testing::params_of(f.model + "/model.safetensors");
  EXPECT_FALSE(torch::equal(base["lm_head.weight"], a["lm_head.weight"]));
  auto ma = pvm::testing::read_jsonl(one + "/metrics.jsonl"), mb = pvm::testing::read_jsonl(two + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), 3u);
  ASSERT_EQ(mb.size(), 3u);  // rank 0 alone writes
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(ma[i]["loss"].get<double>(), mb[i]["loss"].get<double>(), 1e-5);
  auto man = json::parse(std::ifstream(two + "/manifest.json"));
  EXPECT_EQ(man["world_size"], 2);
  EXPECT_EQ(man["backend"], "gloo");
}

// `pvm train --stop-after N`: the first N steps of the configured schedule, a resumable checkpoint,
// and no further step when resumed with the same bound; a bad bound is one clear line.
TEST(TrainSft, CliStopAfterRunsPartOfTheScheduleAndResumes) {
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto f = pvm::testing::make_train_fixture("train_sft_cli_stop", 8);
  const std::string run_dir = f.dir + "/run";
  auto cfg = pvm::testing::train_config_json(f, run_dir);
  cfg["steps"] = 5;
  cfg["schedule"] = "cosine";
  const std::string cfg_path = f.dir + "/run.json";
  std::ofstream(cfg_path) << cfg.dump();

  auto bad = pvm::testing::run_pvm("train sft --config " + cfg_path + " --stop-after 0 --no-progress", f.dir);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("option --stop-after: out of range: '0' (must be in 1.."), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(run_dir + "/checkpoints"));

  auto r = pvm::testing::run_pvm("train sft --config " + cfg_path + " --stop-after 2 --no-progress", f.dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // The last line comes from the run's outcome: where it stopped and what to resume.
  EXPECT_NE(r.err.find("pvm train: stopped at step 2 of 5; checkpoint saved (resume with --resume " + run_dir + ")\n"),
            std::string::npos)
      << r.err;
  auto st = json::parse(std::ifstream(run_dir + "/status.json"));
  EXPECT_EQ(st["state"], "stopped");
  EXPECT_EQ(st["step"], 2);
  auto m = pvm::testing::read_jsonl(run_dir + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1]["total_steps"], 5);  // the schedule still spans all 5 steps

  r = pvm::testing::run_pvm("train sft --resume " + run_dir + " --stop-after 2 --no-progress", f.dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(pvm::testing::read_jsonl(run_dir + "/metrics.jsonl").size(), 2u);

  r = pvm::testing::run_pvm("train sft --resume " + run_dir + " --no-progress", f.dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("pvm train: done"), std::string::npos) << r.err;
  EXPECT_EQ(pvm::testing::read_jsonl(run_dir + "/metrics.jsonl").size(), 5u);
  EXPECT_TRUE(fs::exists(run_dir + "/final/model.safetensors"));
}
