// The GRPO objective on a tiny random model: the reward rises on a rule-checkable task, truncated
// completions get no gradient, metrics follow the rewards, and a run interrupted at any step
// (inside the inner epochs too) and resumed from state() equals the uninterrupted run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/tokenizer.h"
#include "engine/distributed.h"
#include "engine/loader.h"
#include "engine/train_grpo.h"
#include "engine/tensor_io.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"

using namespace pvm;
using namespace pvm::train;
using nlohmann::json;

namespace {

constexpr int64_t kImEnd = 307, kEndOfText = 305, kB = 'B';

// Byte-level BPE without merges: byte b has id b; chat specials at the tiny config's ids.
std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 63));  // cp < 0x800 here
  return s;
}
Tokenizer tiny_tokenizer() {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<uint32_t> cp(256);
  std::vector<bool> direct(256, false);
  for (int b : bs) direct[b] = true, cp[b] = b;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (!direct[b]) cp[b] = 256 + n++;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8(cp[b])] = b;
  json added = json::array();
  auto add = [&](int id, const char* s) {
    added.push_back({{"id", id}, {"content", s}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"single_word", false}});
  };
  add(300, "<|image_pad|>");
  add(301, "<|video_pad|>");
  add(302, "<|vision_start|>");
  add(303, "<|vision_end|>");
  add(304, "<|bos|>");
  add(305, "<|endoftext|>");
  add(306, "<|im_start|>");
  add(307, "<|im_end|>");
  json j{{"version", "1.0"},
         {"added_tokens", added},
         {"normalizer", nullptr},
         {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
         {"post_processor", nullptr},
         {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
         {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                    {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                    {"vocab", vocab}, {"merges", json::array()}}}};
  return Tokenizer::from_json(j.dump(), "tiny-tokenizer");
}

// A tiny random Qwen3-VL whose next-token distribution is close to a unigram we choose: every
// embedding carries a large constant in channel 0, so the final-normed hidden state is ~8 in
// channel 0 at every position and logit(v) ~ 8 * lm_head[v, 0]. Start: <|im_end|> ~28%, 'B' ~5%,
// the other 300-odd tokens share the rest.
Qwen3VLForConditionalGeneration tiny_policy(double stop_w = 0.6, double b_w = 0.4) {
  auto c = pvm::testing::tiny_config();
  auto m = make_random_model(c, 7, torch::kFloat, torch::kCPU);
  torch::NoGradGuard ng;
  m->model->language_model->embed_tokens->weight.select(1, 0).fill_(5.0);
  auto w = m->lm_head->weight;
  w.select(1, 0).zero_();
  w[kImEnd][0] = stop_w;
  w[kEndOfText][0] = stop_w - 2.0;
  w[kB][0] = b_w;
  // Vision tokens never sampled: generate() cannot feed a sampled <|image_pad|> back (it expects
  // image features for it), and a trained model never emits one.
  for (int64_t id = 300; id <= 303; ++id) w[id][0] = -3.0;
  return m;
}

std::string write_prompts(const std::string& dir, int n) {
  auto path = dir + "/prompts.jsonl";
  std::ofstream f(path);
  for (int i = 0; i < n; ++i) f << json{{"prompt", "Say B #" + std::to_string(i)}, {"solution", "B"}}.dump() << "\n";
  return path;
}

struct Setup {
  std::string dir;
  std::unique_ptr<Distributed> dist = Distributed::single();
  std::unique_ptr<TrainContext> ctx;
};

std::unique_ptr<Setup> make_setup(Qwen3VLForConditionalGeneration model, const std::string& dir, GrpoConfig g,
                                  int64_t grad_accum = 1) {
  auto s = std::make_unique<Setup>();
  s->dir = dir;
  s->ctx = std::make_unique<TrainContext>(tiny_tokenizer());
  auto& c = *s->ctx;
  c.cfg.mode = "grpo";
  c.cfg.data = write_prompts(dir, 12);
  c.cfg.seed = 5;
  c.cfg.grad_accum = grad_accum;
  c.cfg.grpo = g;
  c.cfg.source = "test";
  c.model = model;
  c.dist = s->dist.get();
  c.model_dir = dir + "/model";
  for (auto& p : model->parameters()) {
    p.set_requires_grad(true);
    c.trainable.push_back(p);
  }
  return s;
}

GrpoConfig small_grpo() {
  GrpoConfig g;
  g.group_size = 8;
  g.prompts_per_step = 4;
  g.max_new_tokens = 6;
  g.temperature = 1.0;
  return g;
}

// Reward 1 when 'B' is among the first three generated tokens.
rewards::Reward b_early(const GrpoRecord&, const std::string&, const std::vector<int64_t>& ids) {
  rewards::Reward r;
  for (size_t i = 0; i < ids.size() && i < 3; ++i)
    if (ids[i] == kB) r.correct = true;
  r.value = r.correct ? 1.0 : 0.0;
  return r;
}

void zero_grads(TrainContext& c) {
  for (auto& t : c.trainable) t.mutable_grad() = torch::Tensor();
}

}  // namespace

TEST(TrainGrpo, TinyTokenizerRoundTrips) {
  auto tok = tiny_tokenizer();
  auto ids = tok.encode("Say B<|im_end|>");
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(ids[4], kB);
  EXPECT_EQ(ids[5], kImEnd);
  EXPECT_EQ(tok.decode(ids, true), "Say B");
}

TEST(TrainGrpo, MeanRewardRises) {
  auto dir = pvm::testing::temp_dir("grpo_learn");
  auto s = make_setup(tiny_policy(), dir, small_grpo());
  auto& c = *s->ctx;
  // Only the LM head trains here (Adam moves every weight by ~lr per step; on the whole tiny
  // model that scrambles the hand-set distribution faster than GRPO can shape it).
  c.trainable = {c.model->lm_head->weight};
  auto obj = make_grpo_objective(c, b_early);
  if (std::getenv("GRPO_SEED")) c.cfg.seed = std::atoi(std::getenv("GRPO_SEED"));
  torch::optim::Adam opt(c.trainable, torch::optim::AdamOptions(0.05));
  std::vector<double> curve;
  for (int64_t step = 0; step < 12; ++step) {
    zero_grads(c);
    auto st = obj->compute(step);
    opt.step();
    curve.push_back(st.metrics.at("reward_mean").get<double>());
    EXPECT_TRUE(std::isfinite(st.loss));
  }
  std::string line;
  for (double r : curve) line += std::to_string(r).substr(0, 5) + " ";
  std::printf("reward curve: %s\n", line.c_str());
  // curve[0] is the untouched policy (P('B' among the first 3 tokens) ~ 12%).
  const double last = (curve[9] + curve[10] + curve[11]) / 3;
  EXPECT_LT(curve[0], 0.3) << line;
  EXPECT_GT(last, curve[0] + 0.5) << line;
  std::filesystem::remove_all(dir);
}

TEST(TrainGrpo, MetricsFollowTheRewards) {
  auto dir = pvm::testing::temp_dir("grpo_metrics");
  auto s = make_setup(tiny_policy(), dir, small_grpo(), /*grad_accum=*/3);
  auto& c = *s->ctx;
  std::vector<double> seen;
  std::vector<size_t> lens;
  int truncated = 0;
  auto fn = [&](const GrpoRecord& rec, const std::string& text, const std::vector<int64_t>& ids) {
    EXPECT_EQ(rec.solution, "B");
    // The decoded text never holds the stop token; a stopped completion ends with one.
    EXPECT_EQ(text.find("<|im_end|>"), std::string::npos);
    bool stopped = !ids.empty() && (ids.back() == kImEnd || ids.back() == kEndOfText);
    truncated += !stopped;
    EXPECT_TRUE(stopped || ids.size() == 6u);
    lens.push_back(ids.size());
    rewards::Reward r;
    r.value = (double)(ids.size() % 3);  // any spread
    r.format = ids.size() > 2;
    r.correct = ids.size() == 1;
    seen.push_back(r.value);
    return r;
  };
  auto obj = make_grpo_objective(c, fn);
  auto st = obj->compute(0);
  ASSERT_EQ(seen.size(), 32u);
  double mean = 0, fmt = 0, acc = 0, len = 0, mx = 0;
  for (size_t i = 0; i < seen.size(); ++i) {
    mean += seen[i] / 32, fmt += (lens[i] > 2) / 32.0, acc += (lens[i] == 1) / 32.0, len += lens[i] / 32.0;
    mx = std::max(mx, (double)lens[i]);
  }
  auto& m = st.metrics;
  EXPECT_NEAR(m.at("reward_mean").get<double>(), mean, 1e-9);
  EXPECT_NEAR(m.at("format_rate").get<double>(), fmt, 1e-9);
  EXPECT_NEAR(m.at("accuracy_rate").get<double>(), acc, 1e-9);
  EXPECT_NEAR(m.at("completion_len_mean").get<double>(), len, 1e-9);
  EXPECT_EQ(m.at("completion_len_max").get<double>(), mx);
  EXPECT_NEAR(m.at("truncated_rate").get<double>(), truncated / 32.0, 1e-9);
  EXPECT_GT(truncated, 0);  // the budget of 6 tokens truncates some
  EXPECT_LT(truncated, 32);
  for (auto k : {"reward_std", "clip_frac", "zero_std_groups", "ratio_mean"}) EXPECT_TRUE(m.contains(k)) << k;
  EXPECT_FALSE(m.contains("kl"));  // beta 0
  EXPECT_EQ(m.at("clip_frac").get<double>(), 0.0);  // first pass: ratio 1
  EXPECT_NEAR(m.at("ratio_mean").get<double>(), 1.0, 1e-6);
  // Gradients reached the policy (lm_head) and the step's loss is finite.
  EXPECT_TRUE(c.model->lm_head->weight.grad().defined());
  EXPECT_GT(c.model->lm_head->weight.grad().abs().sum().item<double>(), 0);
  std::filesystem::remove_all(dir);
}

TEST(TrainGrpo, TruncatedCompletionsGetNoGradient) {
  auto dir = pvm::testing::temp_dir("grpo_trunc");
  auto g = small_grpo();
  g.max_new_tokens = 3;
  auto s = make_setup(tiny_policy(/*stop_w=*/-3.0), dir, g);  // stop tokens nearly impossible
  auto& c = *s->ctx;
  auto obj = make_grpo_objective(c, b_early);
  auto st = obj->compute(0);
  EXPECT_EQ(st.metrics.at("truncated_rate").get<double>(), 1.0);
  EXPECT_GT(st.metrics.at("reward_std").get<double>(), 0.0);  // rewards differ, yet nothing may learn
  EXPECT_EQ(st.loss, 0.0);
  for (auto& t : c.trainable) EXPECT_TRUE(!t.grad().defined() || t.grad().abs().sum().item<double>() == 0);
  std::filesystem::remove_all(dir);
}

TEST(TrainGrpo, BadConfigIsRejected) {
  auto dir = pvm::testing::temp_dir("grpo_bad");
  for (auto edit : std::vector<std::function<void(GrpoConfig&)>>{[](GrpoConfig& g) { g.reward = "magic"; },
                                                                 [](GrpoConfig& g) { g.advantage = "ppo"; },
                                                                 [](GrpoConfig& g) { g.loss_agg = "sum"; },
                                                                 [](GrpoConfig& g) { g.group_size = 0; }}) {
    auto g = small_grpo();
    edit(g);
    auto s = make_setup(tiny_policy(), dir, g);
    EXPECT_THROW(make_grpo_objective(*s->ctx, nullptr), pvm::Error);
  }
  auto s = make_setup(tiny_policy(), dir, small_grpo());
  s->ctx->cfg.data = dir + "/missing.jsonl";
  EXPECT_THROW(make_grpo_objective(*s->ctx, nullptr), pvm::Error);
  std::filesystem::remove_all(dir);
}

// Kill after `stop_at` steps, resume from state() (through its JSON text, as the trainer's file
// does) with the weights at that point, and compare with the uninterrupted run bit for bit.
// inner_epochs 2 makes odd stops land inside a rollout (the cache path); beta > 0 adds the KL
// reference, rebuilt from the base folder on resume.
TEST(TrainGrpo, ResumeEqualsUninterruptedRun) {
  auto dir = pvm::testing::temp_dir("grpo_resume");
  {
    auto m0 = tiny_policy();
    save_model(m0, dir + "/model", torch::kFloat);
  }
  auto g = small_grpo();
  g.inner_epochs = 2;
  g.beta = 0.05;
  g.prompts_per_step = 2;
  const int64_t total = 5;
  auto load = [&]() { return load_model(dir + "/model", LoadOptions{}).model; };
  auto sgd_step = [](TrainContext& c) {
    torch::NoGradGuard ng;
    for (auto& t : c.trainable)
      if (t.grad().defined()) t.sub_(0.05 * t.grad());
  };
  // Uninterrupted.
  std::vector<std::vector<torch::Tensor>> ref_params;
  std::vector<json> ref_metrics;
  {
    auto s = make_setup(load(), dir, g);
    auto obj = make_grpo_objective(*s->ctx, b_early);
    for (int64_t step = 0; step < total; ++step) {
      zero_grads(*s->ctx);
      auto st = obj->compute(step);
      sgd_step(*s->ctx);
      ref_metrics.push_back(st.metrics);
      std::vector<torch::Tensor> ps;
      for (auto& t : s->ctx->trainable) ps.push_back(t.detach().clone());
      ref_params.push_back(ps);
    }
    EXPECT_GT(ref_metrics[0].at("reward_std").get<double>(), 0.0);  // there is something to learn
    EXPECT_GT(ref_metrics[1].at("clip_frac").get<double>() + ref_metrics[1].at("kl").get<double>(), 0.0);
  }
  for (int64_t stop_at : {1, 2, 3}) {
    std::string saved;
    std::vector<torch::Tensor> weights;
    {
      auto s = make_setup(load(), dir, g);
      auto obj = make_grpo_objective(*s->ctx, b_early);
      for (int64_t step = 0; step < stop_at; ++step) {
        zero_grads(*s->ctx);
        obj->compute(step);
        sgd_step(*s->ctx);
      }
      saved = obj->state().dump();
      for (auto& t : s->ctx->trainable) weights.push_back(t.detach().clone());
      EXPECT_EQ(json::parse(saved).contains("cache"), stop_at % 2 == 1) << stop_at;
    }
    auto s = make_setup(load(), dir, g);
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < weights.size(); ++i) s->ctx->trainable[i].copy_(weights[i]);
    }
    auto obj = make_grpo_objective(*s->ctx, b_early);
    obj->restore(json::parse(saved));
    for (int64_t step = stop_at; step < total; ++step) {
      zero_grads(*s->ctx);
      auto st = obj->compute(step);
      sgd_step(*s->ctx);
      EXPECT_EQ(st.metrics.dump(), ref_metrics[step].dump()) << "stop " << stop_at << " step " << step;
      for (size_t i = 0; i < s->ctx->trainable.size(); ++i)
        ASSERT_TRUE(torch::equal(s->ctx->trainable[i], ref_params[step][i])) << "stop " << stop_at << " step " << step;
    }
  }
  std::filesystem::remove_all(dir);
}

// The same through the trainer (train::run): image prompts, PVM blocks on, inner epochs, KL
// reference; a run stopped inside a rollout and resumed from its checkpoint ends bit-identical to
// the uninterrupted one (the resumed part uses the cached rollout, then new rollouts against the
// KL reference rebuilt from the base folder), and metrics.jsonl carries the GRPO metrics.
TEST(TrainGrpo, TrainerRunWithImagesResumesExactly) {
  auto f = pvm::testing::make_train_fixture("grpo_run", 1);
  {
    // The fixture's ids: <|endoftext|> 304, <|im_end|> 305 (tiny_config's eos).
    auto m = load_model(f.model, LoadOptions{}).model;
    torch::NoGradGuard ng;
    m->model->language_model->embed_tokens->weight.select(1, 0).fill_(5.0);
    auto w = m->lm_head->weight;
    w.select(1, 0).zero_();
    w[305][0] = 0.6;
    w[kB][0] = 0.4;
    for (int64_t id = 300; id <= 303; ++id) w[id][0] = -3.0;
    save_model(m, f.model, torch::kFloat);
  }
  const std::string data = f.dir + "/grpo.jsonl";
  {
    std::ofstream out(data);
    for (auto c : {"red", "green", "blue", "yellow", "red", "blue"})
      out << json{{"prompt", "<image>Say B"}, {"images", {std::string("img/") + c + ".png"}}, {"solution", "B"}}.dump()
          << "\n";
  }
  json cfg = {{"mode", "grpo"},
              {"model", f.model},
              {"data", data},
              {"steps", 6},
              {"lr", 1e-2},
              {"warmup_steps", 0},
              {"schedule", "constant"},
              {"save_every", 0},
              {"workers", 1},
              {"seed", 3},
              {"trainable", "pvm+llm"},
              {"pvm", {{"layers", {2}}, {"hidden_size", 32}}},
              {"grpo",
               {{"group_size", 4}, {"prompts_per_step", 2}, {"max_new_tokens", 5}, {"inner_epochs", 2}, {"beta", 0.05}}}};
  // b_early plus a little length: equal rewards across a whole group (no advantage, no update) are
  // then rare for any sampling stream, so whether the policy moves does not depend on the CPU's rounding
  set_grpo_reward_override([](const GrpoRecord& rec, const std::string& text, const std::vector<int64_t>& ids) {
    auto r = b_early(rec, text, ids);
    r.value += 0.05 * (double)ids.size();
    return r;
  });
  auto a = cfg, b = cfg;
  a["out"] = f.dir + "/full";
  b["out"] = f.dir + "/split";
  ASSERT_EQ(pvm::testing::run_train_quiet(a, -1, ""), 0);
  ASSERT_EQ(pvm::testing::run_train_quiet(b, 3, ""), 0);  // stopped after step 3: inside rollout 1 (pass 1 of 2 next)
  ASSERT_EQ(pvm::testing::run_train_quiet(b, -1, b["out"]), 0);
  set_grpo_reward_override(nullptr);
  auto ma = pvm::testing::read_jsonl(a["out"].get<std::string>() + "/metrics.jsonl");
  auto mb = pvm::testing::read_jsonl(b["out"].get<std::string>() + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), 6u);
  ASSERT_EQ(mb.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    for (auto k : {"reward_mean", "reward_std", "format_rate", "accuracy_rate", "completion_len_mean",
                   "completion_len_max", "truncated_rate", "clip_frac", "kl", "loss", "grad_norm", "gate_alpha"}) {
      ASSERT_TRUE(ma[i].contains(k)) << k;
      EXPECT_EQ(ma[i][k], mb[i][k]) << "line " << i << " " << k;
    }
  }
  EXPECT_GT(ma[1]["kl"].get<double>(), 0.0);  // the policy moved away from the reference
  auto wa = load_tensors(a["out"].get<std::string>() + "/final/model.safetensors");
  auto wb = load_tensors(b["out"].get<std::string>() + "/final/model.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  bool moved = false;
  auto w0 = load_tensors(f.model + "/model.safetensors");
  for (auto& [k, t] : wa) {
    ASSERT_TRUE(wb.count(k)) << k;
    EXPECT_TRUE(torch::equal(t, wb[k])) << k;
    if (w0.count(k) && !torch::equal(t, w0[k])) moved = true;
  }
  EXPECT_TRUE(moved);
  std::filesystem::remove_all(f.dir);
}
