// VisMem (engine/vismem.h): the query constructor's mask, adapters, generation with the KV cache
// and batched groups against a full recompute without a cache, the probes, the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "engine/base/error.h"
#include "engine/base/paths.h"
#include "engine/base/version.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/memory_estimate.h"
#include "engine/pipeline.h"
#include "engine/probes.h"
#include "engine/pvm.h"
#include "engine/train.h"
#include "engine/train_vismem.h"
#include "engine/vismem.h"
#include "tests/test_train_util.h"
#include "test_util.h"

using namespace pvm;
namespace fs = std::filesystem;

namespace {

// The tiny model's operators are too small to split: one intra-op thread, as the CLI picks for small
// decoders (on a busy 2-core machine a split waits a whole time slice per barrier, 15x slower here).
struct OneThread {
  int prev = at::get_num_threads();
  OneThread() { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(prev); }
};

// Small VisMem settings (the paper's are K=8, N_s=8, N_l=16) on the tiny model.
VismemConfig tiny_vismem() {
  VismemConfig c;
  c.query_len = 3, c.short_len = 2, c.long_len = 3;
  c.qc_layers = 2, c.qc_heads = 4, c.qc_ff_mult = 2;
  c.lora_rank = 4, c.lora_alpha = 8;
  c.long_layers = 2;
  for (int64_t i = 0; i < 300; ++i) c.separator_ids.push_back(i);  // every text token: invocations anywhere
  c.init_token_id = 20;
  return c;
}

struct Fixture {
  ModelConfig cfg;
  Qwen3VLForConditionalGeneration m{nullptr};
  std::vector<std::array<int64_t, 3>> grids{{1, 4, 6}};
  std::vector<int64_t> ids;
  torch::Tensor pix;
  explicit Fixture(bool tie = false) : cfg(pvm::testing::tiny_config(tie)) {
    m = make_random_model(cfg, 7, torch::kFloat, torch::kCPU);
    ids = pvm::testing::one_image_prompt(cfg);
    pix = pvm::testing::random_pixel_rows(24, 3);
  }
  // Attach with every LoRA B random too, so both formers really change the backbone's passes.
  void attach(uint64_t seed = 3) {
    attach_vismem(*m, tiny_vismem(), seed);
    torch::NoGradGuard ng;
    auto gen = at::detail::createCPUGenerator(seed + 100);
    for (auto& p : m->named_parameters())
      if (p.key().find("lora_B") != std::string::npos)
        p.value().copy_(at::normal(0.0, 0.05, p.value().sizes(), gen, torch::TensorOptions().dtype(torch::kFloat)));
  }
  GenerationRequest request(int64_t max_new, int64_t G = 1) {
    GenerationRequest r;
    r.prompt_ids = ids;
    r.pixel_values = pix;
    r.grids = grids;
    r.max_new_tokens = max_new;
    r.num_sequences = G;
    r.stop_ids = {cfg.eos_token_ids[0]};
    r.vismem.enabled = true;
    r.vismem.invoke = "separators";
    r.vismem.max_invocations = 2;
    return r;
  }
};

// Per sequence, the logits each forward produced (row g of every forward, cloned before sampling).
struct LogitLog {
  std::vector<torch::Tensor> rows;  // [forwards] of [G, V + 4]
  void attach(GenerationRequest& r) {
    r.after_forward = [this](const ForwardOutput& o, bool) { rows.push_back(o.logits.select(1, 0).clone()); };
  }
};

// Every token of sequence g that a forward produced (the end tokens are inserted, not produced)
// has the logits the full recompute gives at the position before it.
void expect_matches_recompute(Fixture& f, const GenerationResult& res, const LogitLog& log, int64_t g, double tol) {
  const auto& toks = res.tokens[g];
  auto full = vismem_forward(f.m, f.ids, f.pix, f.grids, toks);
  ASSERT_EQ(full.insertions.size(), res.insertions[g].size()) << "sequence " << g;
  for (size_t i = 0; i < full.insertions.size(); ++i) {
    EXPECT_EQ(full.insertions[i].token_index, res.insertions[g][i].token_index);
    EXPECT_EQ(full.insertions[i].type, res.insertions[g][i].type);
  }
  int64_t fwd = 0, checked = 0;
  for (size_t k = 0; k < toks.size(); ++k) {
    const int64_t w = vismem_token_of(f.cfg, toks[k]);
    if (w == kShortEnd || w == kLongEnd) continue;  // structural
    ASSERT_LT(fwd, (int64_t)log.rows.size());
    auto& rows = log.rows[fwd++];
    auto cached = rows[rows.size(0) == 1 ? 0 : g];  // the prefill is one row for the whole group
    auto ref = full.logits[0][full.completion_pos[k] - 1];
    EXPECT_LT((cached - ref).abs().max().item<double>(), tol) << "sequence " << g << " token " << k;
    ++checked;
  }
  EXPECT_GT(checked, 4);
}

// Steering output rows on the tiny random model: an output row u * x gives a logit of about x wherever
// the final hidden state is close to the mean over the prompt (the tiny model's states are), with
// u = mean / |mean|^2.
torch::Tensor steer_direction(Qwen3VLForConditionalGenerationImpl& m, const std::vector<int64_t>& ids,
                              const torch::Tensor& pix, const std::vector<std::array<int64_t, 3>>& grids) {
  torch::NoGradGuard ng;
  ForwardInput in;
  in.input_ids = torch::tensor(ids, torch::kLong).view({1, -1});
  in.pixel_values = pix, in.grids = grids;
  auto mean = m.forward(in).hidden[0].mean(0);
  return mean / mean.pow(2).sum();
}

// Stage 2 needs the model's own invocations: the untied start rows of token_head steered to logits of
// about `short_logit` / `long_logit`. With `vision_off`, the lm_head rows of the vision tokens to -40
// too: a sampled <|video_pad|> cannot be teacher-forced.
void steer_starts(Qwen3VLForConditionalGenerationImpl& m, const std::vector<int64_t>& ids, const torch::Tensor& pix,
                  const std::vector<std::array<int64_t, 3>>& grids, double short_logit, double long_logit,
                  bool vision_off = false) {
  auto u = steer_direction(m, ids, pix, grids);
  torch::NoGradGuard ng;
  auto* vm = vismem_of(m);
  ASSERT_TRUE(vm->token_head.defined());
  vm->token_head[kShortStart].copy_(u * short_logit);
  vm->token_head[kLongStart].copy_(u * long_logit);
  const auto& c = m.cfg;
  if (vision_off)
    for (auto id : {c.image_token_id, c.video_token_id, c.vision_start_token_id, c.vision_end_token_id})
      m.lm_head_weight()[id].copy_(u * -40.0);
}

// The first start token of a completion, or -1.
int64_t first_start(const ModelConfig& c, const std::vector<int64_t>& ids) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t w = vismem_token_of(c, ids[i]);
    if (w == kShortStart || w == kLongStart) return (int64_t)i;
  }
  return -1;
}

}  // namespace

namespace {
// The trainer fixture's four images, each prompted "Say B" (the GRPO data of the training tests).
std::string write_say_b_data(const std::string& dir) {
  const std::string data = dir + "/grpo.jsonl";
  std::ofstream out(data);
  for (auto c : {"red", "green", "blue", "yellow"})
    out << nlohmann::json{{"prompt", "<image>Say B"}, {"images", {std::string("img/") + c + ".png"}}, {"solution", "B"}}.dump()
        << "\n";
  return data;
}

// The training fixture's model, steered on the data's first prompt (as the trainer builds it) so
// that <|im_end|> is likely: a truncated completion is not trained on, and without the steer whether
// any of a short test's completions ends inside its budget depends on the CPU's rounding.
struct SteeredPrompt {
  std::vector<int64_t> ids;
  torch::Tensor pix;
  std::vector<std::array<int64_t, 3>> grids;
};
SteeredPrompt steer_fixture_to_stop(Qwen3VLForConditionalGeneration& m, const PreprocessorConfig& pre, const Tokenizer& tok,
                                    const std::string& data, const std::string& model_dir) {
  SteeredPrompt s;
  auto rec = train::read_grpo_jsonl(data, train::BadLinePolicy{}).at(0);
  auto im = train::load_images(rec.images, pre).at(0);
  s.ids = train::tokenize_grpo_prompt(rec, tok, {im.num_tokens()}, "");
  s.pix = im.pixel_values;
  s.grids = {{im.grid_t, im.grid_h, im.grid_w}};
  auto u = steer_direction(*m, s.ids, s.pix, s.grids);
  torch::NoGradGuard ng;
  m->lm_head_weight()[m->config().eos_token_ids[0]].copy_(u * 4.0);
  save_model(m, model_dir, torch::kFloat);
  return s;
}
}  // namespace

TEST(Vismem, QueryConstructorReadsTheStatesWithoutChangingThem) {
  OneThread one_thread;
  ParamOptionsGuard g(torch::TensorOptions().dtype(torch::kFloat));
  auto c = tiny_vismem();
  QueryConstructor qc(64, c);
  init_weights(*qc, 1, 0.2);
  torch::NoGradGuard ng;
  qc->queries.normal_(0, 1);
  auto rows = torch::randn({2, 5, 64});
  auto valid = torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, torch::kBool).view({2, 5});
  auto a = qc->encode(rows, valid);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{2, 5 + c.query_len, 64}));
  qc->queries.normal_(0, 1);  // other queries: the state rows' outputs must not move
  auto b = qc->encode(rows, valid);
  EXPECT_TRUE(torch::equal(a.narrow(1, 0, 5), b.narrow(1, 0, 5)));
  EXPECT_GT((a.narrow(1, 5, c.query_len) - b.narrow(1, 5, c.query_len)).abs().max().item<double>(), 1e-3);
  // the queries do read the states: other states, other Q
  auto q1 = qc->forward(rows, valid), q2 = qc->forward(rows * 2, valid);
  EXPECT_GT((q1 - q2).abs().max().item<double>(), 1e-3);
  // a padded state row is not read: changing it leaves sequence 1's Q as it was
  auto rows2 = rows.clone();
  rows2[1][4].fill_(7.0);
  EXPECT_TRUE(torch::allclose(qc->forward(rows2, valid)[1], q1[1], 1e-6, 1e-6));
}

TEST(Vismem, AttachingLeavesTheBaselineUnchangedAndTokensStartAsTheSeparator) {
  OneThread one_thread;
  Fixture f;
  torch::NoGradGuard ng;
  ForwardInput in;
  in.input_ids = torch::tensor(f.ids, torch::kLong).view({1, -1});
  in.pixel_values = f.pix, in.grids = f.grids, in.all_logits = true;
  auto before = f.m->forward(in).logits;
  f.attach();
  MemorySource src;
  auto* vm = vismem_of(*f.m);
  ASSERT_NE(vm, nullptr);
  vm->vision_input(*f.m, f.pix, f.grids, src);
  src.visual = torch::randn({6, 64});
  src.visual_pos = torch::zeros({3, 6}, torch::kLong);
  auto ms = vm->form(*f.m, src, false), ml = vm->form(*f.m, src, true);
  EXPECT_EQ(ms.sizes(), (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(ml.sizes(), (std::vector<int64_t>{3, 64}));
  // the formers' LoRA is set only inside their passes: the plain forward is bit-identical
  EXPECT_TRUE(torch::equal(f.m->forward(in).logits, before));
  in.extra_vocab = true;
  auto with = f.m->forward(in).logits;
  ASSERT_EQ(with.size(2), f.cfg.text.vocab_size + 4);
  EXPECT_TRUE(torch::equal(with.narrow(2, 0, f.cfg.text.vocab_size), before));
  // start rows = the separator's rows + N(0, 1e-3): its logit within noise of the separator's
  auto sep = f.m->model->language_model->embed_tokens->weight[20];
  EXPECT_LT((vm->token_embed - sep).abs().max().item<double>(), 6e-3);
  auto lg = with[0][-1];
  EXPECT_NEAR(lg[f.cfg.text.vocab_size + kShortStart].item<double>(), lg[20].item<double>(), 0.05);
}

TEST(Vismem, AdapterRoundTripAndWrongTypesAreRefused) {
  OneThread one_thread;
  Fixture f(/*tie=*/true);
  f.attach(4);
  auto dir = pvm::testing::temp_dir("vismem_adapter");
  save_vismem_adapter(*f.m, dir);
  Fixture g(/*tie=*/true);
  load_vismem_adapter(*g.m, dir);
  int64_t n = 0;
  auto pg = g.m->named_parameters();
  for (auto& p : f.m->named_parameters())
    if (p.key().rfind("vismem.", 0) == 0) {
      ASSERT_TRUE(pg.contains(p.key())) << p.key();
      EXPECT_TRUE(torch::equal(p.value(), pg[p.key()])) << p.key();
      ++n;
    }
  EXPECT_GT(n, 10);
  // the same generation from the loaded adapter
  auto r = f.request(10);
  auto a = generate(f.m, r), b = generate(g.m, r);
  EXPECT_EQ(a.tokens, b.tokens);
  // a PVM adapter is not a VisMem adapter, and the other way round
  auto pdir = pvm::testing::temp_dir("vismem_pvm");
  pvm::testing::attach_tiny_pvm(*g.m, {1}, 0.1);
  save_pvm_adapter(*g.m, pdir);
  try {
    load_vismem_adapter(*g.m, pdir);
    FAIL() << "a PVM adapter loaded as VisMem";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_type is \"pvm\", not \"vismem\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("adapter_config.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_pvm_adapter(*g.m, dir), Error);
  {
    std::ofstream(pdir + "/adapter_config.json") << R"({"peft_type": "LORA"})";
  }
  EXPECT_THROW(load_vismem_adapter(*g.m, pdir), Error);
  // a model of another size is refused before anything is attached
  auto other = pvm::testing::tiny_config();
  other.text.num_hidden_layers = 3;
  auto m3 = make_random_model(other, 1, torch::kFloat, torch::kCPU);
  EXPECT_THROW(load_vismem_adapter(*m3, dir), Error);
  EXPECT_EQ(vismem_of(*m3), nullptr);
  // the training memory estimate counts the adapter from its file: all of it in stage 1, the four
  // token rows in stage 2
  int64_t adapter_numel = 0, token_numel = 0;
  for (auto& p : f.m->named_parameters())
    if (p.key().rfind("vismem.", 0) == 0) {
      adapter_numel += p.value().numel();
      if (p.key().rfind("vismem.token_", 0) == 0) token_numel += p.value().numel();
    }
  train::TrainConfig tc;
  tc.mode = "vismem";
  tc.vismem.adapter = dir;
  tc.trainable = "vismem";
  const auto base = train::estimate_memory(train::TrainConfig{}, f.cfg);
  const auto s1 = train::estimate_memory(tc, f.cfg);
  EXPECT_EQ(s1.trainable_params, adapter_numel);
  EXPECT_EQ(s1.params, base.params + adapter_numel);
  tc.trainable = "vismem-policy";
  EXPECT_EQ(train::estimate_memory(tc, f.cfg).trainable_params, token_numel);
  EXPECT_GT(token_numel, 0);
  fs::remove_all(dir);
  fs::remove_all(pdir);
}

TEST(Vismem, CachedGenerationEqualsTheFullRecompute) {
  OneThread one_thread;
  for (bool tie : {false, true}) {
    Fixture f(tie);
    f.attach();
    auto r = f.request(14);
    r.vismem.p = 0.3;
    r.vismem.seed = 2;
    LogitLog log;
    log.attach(r);
    auto res = generate(f.m, r);
    ASSERT_FALSE(res.insertions[0].empty());
    // an invocation in the middle: tokens before and after it
    EXPECT_GT(res.insertions[0][0].token_index, 0);
    EXPECT_LT(res.insertions[0].back().token_index + 2, (int64_t)res.tokens[0].size());
    // each start token is followed by its end token
    for (auto& mi : res.insertions[0]) {
      const int64_t s = res.tokens[0][mi.token_index], e = res.tokens[0][mi.token_index + 1];
      EXPECT_EQ(vismem_token_of(f.cfg, e), vismem_token_of(f.cfg, s) + 1);
      EXPECT_EQ(mi.rows, mi.type == "long" ? 3 : 2);
    }
    torch::NoGradGuard ng;
    expect_matches_recompute(f, res, log, 0, 2e-4);
  }
}

TEST(Vismem, BatchedGroupEqualsEachSequenceAlone) {
  OneThread one_thread;
  Fixture f;
  f.attach();
  auto r = f.request(12, 3);
  r.sampling.do_sample = true;
  r.sampling.temperature = 1.0;
  r.sampling.seed = 5;
  r.vismem.p = 0.35;
  r.vismem.seed = 9;
  LogitLog log;
  log.attach(r);
  auto res = generate(f.m, r);
  // the sequences insert at different steps, so the others are padded in those forwards
  std::set<std::vector<int64_t>> when;
  for (auto& ins : res.insertions) {
    std::vector<int64_t> w;
    for (auto& mi : ins) w.push_back(mi.token_index);
    when.insert(w);
  }
  EXPECT_GT(when.size(), 1u);
  torch::NoGradGuard ng;
  for (int64_t g = 0; g < 3; ++g) expect_matches_recompute(f, res, log, g, 2e-4);
}

TEST(Vismem, ModelModeInvokesOnItsOwnStartTokensUpToTheLimit) {
  OneThread one_thread;
  Fixture f(/*tie=*/true);
  f.attach();
  auto r = f.request(12);
  r.vismem.enabled = false;
  auto base = generate(f.m, r);  // without VisMem the model never emits the extra tokens
  for (auto t : base.tokens[0]) EXPECT_LT(t, f.cfg.text.vocab_size);
  {
    // the long-term start row = 1.5 x the row of the baseline's first token: the greedy pick
    torch::NoGradGuard ng;
    vismem_of(*f.m)->token_embed[kLongStart].copy_(f.m->model->language_model->embed_tokens->weight[base.tokens[0][0]] * 1.5);
  }
  r.vismem.enabled = true;
  r.vismem.invoke = "model";
  r.vismem.max_invocations = 1;
  auto res = generate(f.m, r);
  ASSERT_EQ(res.insertions[0].size(), 1u);
  EXPECT_EQ(res.insertions[0][0].type, "long");
  EXPECT_EQ(res.insertions[0][0].token_index, 0);
  int64_t starts = 0;
  for (auto t : res.tokens[0]) starts += vismem_token_of(f.cfg, t) == kLongStart || vismem_token_of(f.cfg, t) == kShortStart;
  EXPECT_EQ(starts, 1);  // masked out after the limit
}

TEST(Vismem, ProbesMarkInvocationsAndWhatTheInsertedRowsAttendTo) {
  OneThread one_thread;
  Fixture f;
  f.attach();
  auto r = f.request(12);
  r.vismem.p = 0.4;
  r.vismem.seed = 2;
  ProbeRecorder rec(f.m, visual_positions(f.ids, f.cfg.image_token_id), ProbeOptions{}, f.grids, 2);
  rec.attach(r);
  auto res = generate(f.m, r);
  const auto& ins = res.insertions[0];
  ASSERT_FALSE(ins.empty());
  // one probe per produced token (not the inserted end tokens)
  EXPECT_EQ(rec.tokens().size(), res.tokens[0].size() - ins.size());
  size_t invoked = 0, inserted = 0;
  bool seen = false;
  for (auto& t : rec.tokens()) {
    if (!t.invoked.empty()) ++invoked;
    if (!t.inserted.empty()) seen = true;
    EXPECT_EQ(t.memory_mass.empty(), !seen);  // memory mass only once a memory exists
    for (float v : t.memory_mass) EXPECT_TRUE(v >= 0 && v <= 1 + 1e-5);
    for (auto& ip : t.inserted) {
      ++inserted;
      ASSERT_EQ(ip.visual.size(), (size_t)f.cfg.text.num_hidden_layers);
      for (size_t l = 0; l < ip.visual.size(); ++l) {
        EXPECT_NEAR(ip.visual[l] + ip.self[l] + ip.other[l], 1.0, 1e-4);
        EXPECT_GT(ip.visual[l], 0);  // a latent row sees the image
        EXPECT_GT(ip.self[l], 0);
      }
    }
    if (!t.inserted.empty()) {
      EXPECT_FALSE(t.memory_mass.empty());
    }
  }
  EXPECT_EQ(invoked, ins.size());
  EXPECT_EQ(inserted, ins.size());
  auto j = nlohmann::json::parse(ProbeRecorder::to_json(rec.tokens().back()));
  EXPECT_TRUE(j.contains("memory_mass"));
  // without VisMem the probe records carry none of the new keys
  r.vismem.enabled = false;
  ProbeRecorder base(f.m, visual_positions(f.ids, f.cfg.image_token_id), ProbeOptions{}, f.grids, 2);
  base.attach(r);
  generate(f.m, r);
  for (auto& t : base.tokens()) {
    auto jb = nlohmann::json::parse(ProbeRecorder::to_json(t));
    EXPECT_FALSE(jb.contains("invoked") || jb.contains("memory_mass") || jb.contains("inserted"));
  }
}

TEST(Vismem, CliInitAndGenerate) {
  OneThread one_thread;
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found";
  if (default_model_dir().empty()) GTEST_SKIP() << "assets/default-model not present";
  auto dir = pvm::testing::temp_dir("vismem_cli");
  auto ad = dir + "/adapter";
  auto r = pvm::testing::run_pvm("init-vismem --out " + ad + " --query-len 2 --short-len 2 --long-len 3 --lora-rank 4 --qc-heads 4 --quiet", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto cfg = nlohmann::json::parse(pvm::testing::slurp(ad + "/adapter_config.json"));
  EXPECT_EQ(cfg["adapter_type"], "vismem");
  EXPECT_FALSE(cfg["separator_ids"].empty());
  auto img = source_dir() + "/assets/samples/shapes.png";
  r = pvm::testing::run_pvm("generate --vismem " + ad + " --vismem-invoke separators --image " + img +
                                " --prompt Describe --max-new-tokens 12 --json --quiet",
                            dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("invocations"));
  // a PVM adapter given to --vismem: one line naming the file, exit 1
  r = pvm::testing::run_pvm("generate --vismem " + source_dir() + "/assets/default-model --prompt x --quiet", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("adapter"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  fs::remove_all(dir);
}

// Stage 1 through the trainer: only the constructor and formers move (tokens and backbone
// frozen), the checkpoint is a VisMem adapter, and a run stopped after one step and resumed ends
// bit-identical to the uninterrupted one.
TEST(Vismem, Stage1TrainsTheFormersAndResumesExactly) {
  OneThread one_thread;
  auto f = pvm::testing::make_train_fixture("vismem_train", 1);
  const std::string data = write_say_b_data(f.dir);
  const std::string init = f.dir + "/vm0";
  {
    auto pipe = Pipeline::open(f.model, LoadOptions{});
    auto& m = pipe.model.model;
    steer_fixture_to_stop(m, pipe.preprocessor, pipe.tokenizer, data, f.model);
    auto c = tiny_vismem();
    c.separator_ids.clear();
    for (int64_t b = 0; b < 256; ++b) c.separator_ids.push_back(b);
    c.init_token_id = '.';
    attach_vismem(*m, c, 1);
    torch::NoGradGuard ng;
    for (auto& p : m->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.05);
    save_vismem_adapter(*m, init);
  }
  // a smooth reward: the share of 'B' bytes (the base trajectory scores what it scores)
  train::set_vismem_reward_override([](const train::GrpoRecord&, const std::string&, const std::vector<int64_t>& ids) {
    rewards::Reward r;
    for (auto id : ids) r.value += (id == 'B' || id == 'b') ? 1.0 : 0.0;
    r.value = ids.empty() ? 0 : r.value / ids.size() + 0.01 * (double)ids.size();
    return r;
  });
  nlohmann::json cfg = {{"mode", "vismem"}, {"model", f.model}, {"data", data}, {"steps", 3}, {"lr", 1e-2},
                        {"warmup_steps", 0}, {"schedule", "constant"}, {"save_every", 0}, {"workers", 1}, {"seed", 3},
                        {"vismem", {{"adapter", init}, {"p", 0.5}, {"max_invocations", 2}}},
                        {"grpo", {{"group_size", 3}, {"prompts_per_step", 2}, {"max_new_tokens", 16}, {"temperature", 1.0}}}};
  auto a = cfg, b = cfg;
  a["out"] = f.dir + "/full";
  b["out"] = f.dir + "/split";
  ASSERT_EQ(pvm::testing::run_train_quiet(a, -1, ""), 0);
  ASSERT_EQ(pvm::testing::run_train_quiet(b, 1, ""), 0);
  ASSERT_EQ(pvm::testing::run_train_quiet(b, -1, b["out"]), 0);
  train::set_vismem_reward_override(nullptr);
  auto wa = load_tensors(a["out"].get<std::string>() + "/final/adapter.safetensors");
  auto wb = load_tensors(b["out"].get<std::string>() + "/final/adapter.safetensors");
  auto w0 = load_tensors(init + "/adapter.safetensors");
  ASSERT_EQ(wa.size(), w0.size());
  bool moved = false;
  for (auto& [k, t] : wa) {
    ASSERT_TRUE(wb.count(k)) << k;
    EXPECT_TRUE(torch::equal(t, wb[k])) << k;
    if (k.rfind("vismem.token_", 0) == 0) EXPECT_TRUE(torch::equal(t, w0[k])) << k << " is frozen in stage 1";
    else if (!torch::equal(t, w0[k])) moved = true;
  }
  EXPECT_TRUE(moved);
  auto ma = pvm::testing::read_jsonl(a["out"].get<std::string>() + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), 3u);
  for (auto k : {"reward_mean", "base_reward_mean", "reward_gain", "invocations_mean", "loss"}) EXPECT_TRUE(ma[0].contains(k)) << k;
  std::filesystem::remove_all(f.dir);
}

// Bad adapter configs and options: one error naming the file (or option) and the field, nothing attached.
TEST(Vismem, BadInputNamesTheFileAndField) {
  OneThread one_thread;
  Fixture f;
  f.attach();
  auto dir = pvm::testing::temp_dir("vismem_bad");
  save_vismem_adapter(*f.m, dir);
  detach_vismem(*f.m);
  const auto cfg_path = dir + "/adapter_config.json";
  const auto good = nlohmann::json::parse(pvm::testing::slurp(cfg_path));
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expect;
  };
  for (const Case& c : {Case{"query_len", nullptr, "query_len must be an integer"},
                        Case{"long_layers", 4, "long_layers must be in 1..3"},
                        Case{"lora_alpha", "x", "lora_alpha must be a number"},
                        Case{"separator_ids", nlohmann::json::array({1, 9999}), "separator id 9999"},
                        Case{"base_vocab_size", 7, "base_vocab_size 7"},
                        Case{"vismem_adapter_format", 99, "newer"}}) {
    auto j = good;
    j[c.key] = c.value;
    std::ofstream(cfg_path) << j.dump();
    try {
      load_vismem_adapter(*f.m, dir);
      ADD_FAILURE() << c.key << " accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(cfg_path), std::string::npos) << m;
      EXPECT_NE(m.find(c.expect), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_EQ(vismem_of(*f.m), nullptr) << c.key;
  }
  std::ofstream(cfg_path) << good.dump();
  {
    std::ofstream(dir + "/adapter.safetensors", std::ios::trunc) << "not safetensors";
  }
  EXPECT_THROW(load_vismem_adapter(*f.m, dir), Error);
  EXPECT_EQ(vismem_of(*f.m), nullptr);
  // generation options
  auto r = f.request(4);
  EXPECT_THROW(generate(f.m, r), Error);  // no adapter attached
  f.attach();
  r.vismem.invoke = "sometimes";
  EXPECT_THROW(generate(f.m, r), Error);
  fs::remove_all(dir);
}

// Stage 2's counterfactual re-runs (VismemGenerate::counterfactual): the model picks only short-term
// memories here, so "swap" must insert only long-term ones and "skip" none; before the invocation the
// tokens are the original's, and the swapped run is what the model computes with those memories.
TEST(Vismem, Stage2CounterfactualsSwapOrSkipTheMemories) {
  OneThread one_thread;
  Fixture f;
  f.attach();
  steer_starts(*f.m, f.ids, f.pix, f.grids, 4.0, -40.0, /*vision_off=*/true);
  const int64_t G = 6;
  auto r = f.request(14, G);
  r.sampling.do_sample = true;
  r.sampling.seed = 11;
  r.vismem.invoke = "model";
  r.vismem.max_invocations = 2;
  auto res = generate(f.m, r);
  std::vector<int64_t> inv;
  bool late = false;
  for (int64_t g = 0; g < G; ++g) {
    for (auto& mi : res.insertions[g]) EXPECT_EQ(mi.type, "short");
    if (res.insertions[g].empty()) continue;
    inv.push_back(g);
    late |= res.insertions[g][0].token_index >= 2;
  }
  ASSERT_GE(inv.size(), 2u);
  ASSERT_TRUE(late) << "no invocation after the first tokens";
  auto rerun = [&](const std::string& cf, LogitLog* log) {
    auto c = r;
    c.num_sequences = (int64_t)inv.size();
    c.vismem.counterfactual = cf;
    for (auto g : inv) c.vismem.replay.push_back(res.tokens[g]), c.vismem.streams.push_back(g);
    if (log) log->attach(c);
    return generate(f.m, c);
  };
  LogitLog log, sklog;
  auto sw = rerun("swap", &log);
  auto sk = rerun("skip", &sklog);
  for (size_t k = 0; k < inv.size(); ++k) {
    const auto& orig = res.tokens[inv[k]];
    const int64_t at = first_start(f.cfg, orig);
    ASSERT_GE(at, 0);
    for (const auto* cr : {&sw, &sk}) {
      ASSERT_GT((int64_t)cr->tokens[k].size(), at) << "sequence " << inv[k];
      EXPECT_TRUE(std::equal(orig.begin(), orig.begin() + at, cr->tokens[k].begin())) << "sequence " << inv[k];
    }
    // swap: the same invocation point, a long-term memory there and at every later invocation
    ASSERT_FALSE(sw.insertions[k].empty());
    EXPECT_EQ(sw.insertions[k][0].token_index, at);
    EXPECT_EQ(sw.tokens[k][at], vismem_token_id(f.cfg, kLongStart));
    for (auto& mi : sw.insertions[k]) EXPECT_EQ(mi.type, "long");
    // skip: no memory at all, an ordinary token where the start token was
    EXPECT_TRUE(sk.insertions[k].empty());
    for (auto t : sk.tokens[k]) EXPECT_LT(t, f.cfg.text.vocab_size);
    // ... drawn by the original's sampling stream: a sampler on stream inv[k], drawing once per
    // token over the re-run's own logits (start tokens masked from the invocation point on),
    // reproduces every token from there
    const int64_t V = f.cfg.text.vocab_size;
    Sampler ref(r.sampling, (uint64_t)inv[k]);
    std::vector<int64_t> ctx = f.ids;
    for (size_t i = 0; i < sk.tokens[k].size(); ++i) {
      ASSERT_LT(i, sklog.rows.size());
      auto lg = sklog.rows[i][sklog.rows[i].size(0) == 1 ? 0 : k].clone().contiguous();
      float* p = lg.data_ptr<float>();
      p[V + kShortEnd] = p[V + kLongEnd] = -std::numeric_limits<float>::infinity();
      if ((int64_t)i >= at) p[V + kShortStart] = p[V + kLongStart] = -std::numeric_limits<float>::infinity();
      const int64_t t = ref.next(p, V + kVismemTokens, ctx);
      if ((int64_t)i >= at) {
        EXPECT_EQ(t, sk.tokens[k][i]) << "sequence " << inv[k] << " token " << i;
      }
      ctx.push_back(sk.tokens[k][i]);
    }
  }
  torch::NoGradGuard ng;
  for (size_t k = 0; k < inv.size(); ++k) expect_matches_recompute(f, sw, log, (int64_t)k, 2e-4);
  // a re-run alone on its stream equals its row of the batched re-run
  auto c = r;
  c.num_sequences = 1;
  c.vismem.counterfactual = "skip";
  c.vismem.replay = {res.tokens[inv.back()]};
  c.vismem.streams = {(uint64_t)inv.back()};
  EXPECT_EQ(generate(f.m, c).tokens[0], sk.tokens.back());
  // bad counterfactual requests
  c.vismem.counterfactual = "maybe";
  EXPECT_THROW(generate(f.m, c), Error);
  c.vismem.counterfactual = "swap";
  c.vismem.replay.clear();
  EXPECT_THROW(generate(f.m, c), Error);
}

// The penalised reward R = r - type_penalty max(0, r_swap - r) - neg_penalty max(0, r_skip - r) on a
// controlled case: the reward sees only the memory types (long 1.0, short 0.2, none 0.5) and the
// model picks only short-term memories, so every invoking completion has r 0.2, r_swap 1.0, r_skip 0.5.
TEST(Vismem, Stage2PenalisedRewardOnAControlledCase) {
  OneThread one_thread;
  EXPECT_DOUBLE_EQ(train::vismem_penalised_reward(0.7, 0.3, 0.9, 0.5, 0.25), 0.7 - 0.25 * 0.2);  // skipping was better
  EXPECT_DOUBLE_EQ(train::vismem_penalised_reward(0.7, 0.3, 0.1, 0.5, 0.25), 0.7);               // the memory helped
  Fixture f;
  f.attach();
  steer_starts(*f.m, f.ids, f.pix, f.grids, 4.0, -40.0);
  const int64_t G = 6;
  auto r = f.request(14, G);
  r.sampling.do_sample = true;
  r.sampling.seed = 11;
  r.vismem.invoke = "model";
  r.vismem.max_invocations = 2;
  auto type_reward = [&](const std::vector<int64_t>& ids, bool) {
    rewards::Reward rw;
    rw.value = 0.5;
    const int64_t at = first_start(f.cfg, ids);
    if (at >= 0) rw.value = vismem_token_of(f.cfg, ids[at]) == kLongStart ? 1.0 : 0.2;
    return rw;
  };
  const double tp = 0.5, np = 0.25;
  auto out = train::vismem_stage2_group(f.m, r, type_reward, tp, np, grpo::Advantage::Grpo);
  ASSERT_EQ((int64_t)out.size(), G);
  int64_t invoked = 0;
  std::vector<double> R;
  for (auto& o : out) {
    if (o.invocations > 0) {
      ++invoked;
      EXPECT_DOUBLE_EQ(o.reward.value, 0.2);
      EXPECT_DOUBLE_EQ(o.r_swap, 1.0);
      EXPECT_DOUBLE_EQ(o.r_skip, 0.5);
      EXPECT_NEAR(o.R, 0.2 - tp * 0.8 - np * 0.3, 1e-12);
      EXPECT_GT(o.counterfactual_tokens, 0);
    } else {
      EXPECT_DOUBLE_EQ(o.r_swap, o.reward.value);
      EXPECT_DOUBLE_EQ(o.r_skip, o.reward.value);
      EXPECT_NEAR(o.R, 0.5, 1e-12);
      EXPECT_EQ(o.counterfactual_tokens, 0);
    }
    R.push_back(o.R);
  }
  ASSERT_GT(invoked, 0);
  ASSERT_LT(invoked, G);  // both kinds in the group: the advantages are not all 0
  double mean = 0, var = 0;
  for (double x : R) mean += x / G;
  for (double x : R) var += (x - mean) * (x - mean) / (G - 1);
  for (int64_t g = 0; g < G; ++g) EXPECT_NEAR(out[g].adv, (R[g] - mean) / (std::sqrt(var) + grpo::kStdEps), 1e-5) << g;
  // the rollouts are the plain model-mode generation's
  auto plain = generate(f.m, r);
  for (int64_t g = 0; g < G; ++g) EXPECT_EQ(out[g].ids, plain.tokens[g]);
}

// Stage 2 through the trainer: only the four token rows move (constructor and formers bit-identical),
// the run logs the penalty metrics, and a run stopped after one step and resumed ends bit-identical.
TEST(Vismem, Stage2TrainsOnlyTheTokenRowsAndResumesExactly) {
  OneThread one_thread;
  auto f = pvm::testing::make_train_fixture("vismem_train2", 1);
  const std::string data = write_say_b_data(f.dir);
  const std::string init = f.dir + "/vm0";
  {
    auto pipe = Pipeline::open(f.model, LoadOptions{});
    auto& m = pipe.model.model;
    const auto sp = steer_fixture_to_stop(m, pipe.preprocessor, pipe.tokenizer, data, f.model);
    const auto& ids = sp.ids;
    const auto& pix = sp.pix;
    const auto& grids = sp.grids;
    auto c = tiny_vismem();
    c.init_token_id = '.';
    attach_vismem(*m, c, 1);
    torch::NoGradGuard ng;
    for (auto& p : m->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.05);
    // the model invokes on its own: both start tokens likely
    steer_starts(*m, ids, pix, grids, 3.0, 3.0);
    save_vismem_adapter(*m, init);
  }
  // a smooth reward: the share of 'B' bytes, a little length, and a bonus for a long-term memory,
  // so the swap and skip re-runs score differently
  const int64_t long_start = vismem_token_id(pvm::testing::tiny_config(), kLongStart);
  train::set_vismem_reward_override([long_start](const train::GrpoRecord&, const std::string& text,
                                                 const std::vector<int64_t>& ids) {
    rewards::Reward r;
    for (char ch : text) r.value += (ch == 'B' || ch == 'b') ? 1.0 : 0.0;
    r.value = ids.empty() ? 0 : r.value / ids.size() + 0.01 * (double)ids.size();
    for (auto id : ids) r.value += id == long_start ? 0.3 : 0.0;
    return r;
  });
  nlohmann::json cfg = {{"mode", "vismem"}, {"model", f.model}, {"data", data}, {"steps", 3}, {"lr", 1e-2},
                        {"warmup_steps", 0}, {"schedule", "constant"}, {"save_every", 0}, {"workers", 1}, {"seed", 3},
                        {"vismem", {{"adapter", init}, {"stage", 2}, {"max_invocations", 2}, {"type_penalty", 0.5}, {"neg_penalty", 0.5}}},
                        {"grpo", {{"group_size", 4}, {"prompts_per_step", 2}, {"max_new_tokens", 16}, {"temperature", 1.0}}}};
  EXPECT_EQ(train::parse_train_config(cfg, "test").trainable, "vismem-policy");
  auto a = cfg, b = cfg;
  a["out"] = f.dir + "/full";
  b["out"] = f.dir + "/split";
  ASSERT_EQ(pvm::testing::run_train_quiet(a, -1, ""), 0);
  ASSERT_EQ(pvm::testing::run_train_quiet(b, 1, ""), 0);
  auto w1 = load_tensors(b["out"].get<std::string>() + "/checkpoints/step-000001/adapter.safetensors");  // after one step
  ASSERT_EQ(pvm::testing::run_train_quiet(b, -1, b["out"]), 0);
  train::set_vismem_reward_override(nullptr);
  auto wa = load_tensors(a["out"].get<std::string>() + "/final/adapter.safetensors");
  auto wb = load_tensors(b["out"].get<std::string>() + "/final/adapter.safetensors");
  auto w0 = load_tensors(init + "/adapter.safetensors");
  ASSERT_EQ(wa.size(), w0.size());
  ASSERT_TRUE(w0.count("vismem.token_head"));  // an untied model: both token tensors train
  int64_t moved = 0;
  for (auto& [k, t] : wa) {
    ASSERT_TRUE(wb.count(k)) << k;
    EXPECT_TRUE(torch::equal(t, wb[k])) << k;
    if (k.rfind("vismem.token_", 0) == 0) {
      moved += !torch::equal(t, w0[k]);
    } else {
      EXPECT_TRUE(torch::equal(t, w0[k])) << k << " is frozen in stage 2";
      EXPECT_TRUE(torch::equal(w1.at(k), w0[k])) << k << " is frozen in stage 2";
    }
  }
  EXPECT_EQ(moved, 2);
  auto ma = pvm::testing::read_jsonl(a["out"].get<std::string>() + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), 3u);
  double inv = 0;
  for (auto& m : ma) {
    for (auto k : {"reward_mean", "penalised_reward_mean", "invocations_mean", "invoked_rate", "long_share",
                   "swap_penalty_mean", "skip_penalty_mean", "swap_reward_mean", "skip_reward_mean", "loss"})
      EXPECT_TRUE(m.contains(k)) << k;
    EXPECT_LE(m["penalised_reward_mean"].get<double>(), m["reward_mean"].get<double>() + 1e-12);
    inv += m["invocations_mean"].get<double>();
  }
  EXPECT_GT(inv, 0);
  std::filesystem::remove_all(f.dir);
}

// Stage-2 config errors name the key.
TEST(Vismem, Stage2BadConfigNamesTheKey) {
  auto f = pvm::testing::make_train_fixture("vismem_cfg2", 1);
  nlohmann::json good = {{"mode", "vismem"}, {"model", f.model}, {"data", f.dir + "/d.jsonl"},
                         {"vismem", {{"adapter", f.dir + "/vm"}, {"stage", 2}}}};
  auto c = train::parse_train_config(good, "s2.json");
  EXPECT_EQ(c.trainable, "vismem-policy");
  EXPECT_EQ(c.vismem.type_penalty, 0.5);
  EXPECT_EQ(c.vismem.neg_penalty, 0.5);
  // the committed experiment loads as stage 2
  auto e = train::load_train_config(source_dir() + "/experiments/vismem/stage2.json",
                                    {"data=" + f.dir + "/d.jsonl", "vismem.adapter=" + f.dir + "/vm"}, "vismem");
  EXPECT_EQ(e.vismem.stage, 2);
  EXPECT_EQ(e.trainable, "vismem-policy");
  EXPECT_EQ(e.grpo.reward, "scene_description");
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    const char* expect;
  };
  for (const Case& k : {Case{[](nlohmann::json& j) { j["vismem"]["stage"] = 3; }, "vismem.stage"},
                        Case{[](nlohmann::json& j) { j["vismem"]["type_penalty"] = -1; }, "vismem.type_penalty"},
                        Case{[](nlohmann::json& j) { j["vismem"]["neg_penalty"] = "high"; }, "vismem.neg_penalty"},
                        Case{[](nlohmann::json& j) { j["vismem"]["max_invocations"] = 0; }, "vismem.max_invocations"},
                        Case{[](nlohmann::json& j) { j["trainable"] = "vismem"; }, "trainable"},
                        Case{[](nlohmann::json& j) { j["vismem"]["stage"] = 1, j["trainable"] = "vismem-policy"; }, "trainable"},
                        Case{[](nlohmann::json& j) { j["mode"] = "grpo", j.erase("vismem"), j["trainable"] = "vismem-policy"; },
                             "trainable"}}) {
    auto j = good;
    k.edit(j);
    try {
      train::parse_train_config(j, "s2.json");
      ADD_FAILURE() << j.dump() << " accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind("s2.json: ", 0), 0u) << m;
      EXPECT_NE(m.find(std::string(k.expect) + ":"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  std::filesystem::remove_all(f.dir);
}
