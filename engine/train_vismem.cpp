#include "engine/train_vismem.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <mutex>

#include "engine/base/chat_template.h"
#include "engine/base/error.h"
#include "engine/base/rewards.h"
#include "engine/generate.h"
#include "engine/grpo.h"
#include "engine/vismem.h"

namespace pvm::train {

using nlohmann::json;

namespace {

std::mutex g_override_mu;
GrpoRewardFn g_override;

uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class VismemObjective : public Objective {
 public:
  explicit VismemObjective(TrainContext& ctx) : ctx_(ctx) {
    const auto& g = ctx.cfg.grpo;
    const std::string src = ctx.cfg.source.empty() ? "config" : ctx.cfg.source;
    if (!vismem_of(*ctx.model)) throw Error(src + ": vismem: the model has no VisMem adapter");
    if (ctx.cfg.vismem.stage != 1 && ctx.cfg.vismem.stage != 2) throw Error(src + ": vismem.stage: must be 1 or 2");
    stage2_ = ctx.cfg.vismem.stage == 2;
    adv_mode_ = grpo::parse_advantage(g.advantage);
    if (g.prompts_per_step % ctx.world != 0)
      throw Error(src + ": grpo.prompts_per_step must be a multiple of the number of processes");
    kind_ = rewards::parse_kind(g.reward);
    {
      std::lock_guard<std::mutex> lk(g_override_mu);
      override_ = g_override;
    }
    BadLinePolicy pol;
    pol.fatal = ctx.cfg.bad_lines == "fatal";
    if (ctx.rank != 0) pol.warn = [](const std::string&) {};
    auto all = read_grpo_jsonl(ctx.cfg.data, pol);
    ImageValidator images(ctx.preprocessor);
    int64_t bad = 0;
    for (auto& r : all) {
      try {
        for (auto& p : r.images) images.tokens(p);
        records_.push_back(std::move(r));
      } catch (const Error& e) {
        pol.report(r.where + ": " + e.what());
        ++bad;
      }
    }
    pol.summary(ctx.cfg.data, bad, (int64_t)all.size());
    if (records_.empty()) throw file_error(ctx.cfg.data, "no usable sample");
    sampler_ = Sampler((int64_t)records_.size(), g.prompts_per_step, ctx.cfg.seed);
    for (auto id : chat_stop_ids(ctx.tokenizer)) stop_.push_back(id);
    for (auto id : ctx.model->config().eos_token_ids)
      if (std::find(stop_.begin(), stop_.end(), id) == stop_.end()) stop_.push_back(id);
  }

  int64_t steps_per_epoch() const override {
    const int64_t P = ctx_.cfg.grpo.prompts_per_step;
    return std::max<int64_t>(1, ((int64_t)records_.size() + P - 1) / P);
  }

  StepStats compute(int64_t step) override {
    const auto& g = ctx_.cfg.grpo;
    const auto& vc = ctx_.cfg.vismem;
    auto& m = ctx_.model;
    const auto& mc = m->config();
    const int64_t G = g.group_size, P = g.prompts_per_step, Pl = P / ctx_.world;
    auto batch = sampler_.next_batch();
    struct Seq {
      size_t prompt;
      std::vector<int64_t> ids;
      bool truncated;
      // holds a vision token (<|image_pad|>, ...): generation embedded it as text, teacher forcing
      // would read it as an image slot; kept out of the loss like a truncated completion
      bool invalid = false;
      double reward, adv;
      int64_t invocations;
    };
    struct Prompt {
      std::vector<int64_t> ids;
      torch::Tensor pixels;
      std::vector<std::array<int64_t, 3>> grids;
    };
    std::vector<Prompt> prompts;
    std::vector<Seq> seqs;
    // sums: n, reward, base reward (stage 2: penalised reward), correct, invocations, truncated, len,
    // policy tokens; stage 2 also: invoked, long invocations, swap penalty, skip penalty, and over the
    // completions that invoked: r_swap, r_skip, r; both: invalid (a vision token, not truncated)
    std::vector<double> v(16, 0.0);
    int64_t tokens = 0;
    for (int64_t j = ctx_.rank * Pl; j < (ctx_.rank + 1) * Pl; ++j) {
      const auto& rec = records_.at(batch.at(j));
      auto imgs = load_images(rec.images, ctx_.preprocessor);
      Prompt p;
      std::vector<int64_t> ntok;
      std::vector<torch::Tensor> px;
      for (auto& im : imgs) {
        ntok.push_back(im.num_tokens());
        px.push_back(im.pixel_values);
        p.grids.push_back({im.grid_t, im.grid_h, im.grid_w});
      }
      if (!px.empty()) p.pixels = torch::cat(px, 0);
      p.ids = tokenize_grpo_prompt(rec, ctx_.tokenizer, ntok, g.system);
      GenerationRequest req;
      req.prompt_ids = p.ids;
      req.pixel_values = p.pixels;
      req.grids = p.grids;
      req.max_new_tokens = g.max_new_tokens;
      req.stop_ids = stop_;
      auto text_of = [&](const std::vector<int64_t>& ids, bool stopped) {
        std::vector<int32_t> t;
        for (size_t k = 0; k + (stopped ? 1 : 0) < ids.size(); ++k)
          if (vismem_token_of(mc, ids[k]) < 0) t.push_back((int32_t)ids[k]);
        return ctx_.tokenizer.decode(t, true);
      };
      auto score = [&](const std::vector<int64_t>& ids, bool stopped) {
        auto text = text_of(ids, stopped);
        return override_ ? override_(rec, text, ids) : rewards::score(kind_, text, rec.solution);
      };
      req.sampling.do_sample = g.temperature > 0;
      req.sampling.temperature = g.temperature > 0 ? g.temperature : 1.0;
      req.sampling.top_p = g.top_p;
      req.sampling.seed = mix(mix(ctx_.cfg.seed ^ 0x564d454dull) + (uint64_t)step * 1000003ull + (uint64_t)j);
      req.num_sequences = G;
      req.vismem.enabled = true;
      req.vismem.max_invocations = vc.max_invocations;
      if (stage2_) {
        req.vismem.invoke = "model";
        std::vector<VismemRollout> group;
        {
          torch::NoGradGuard ng;
          group = vismem_stage2_group(m, req, score, vc.type_penalty, vc.neg_penalty, adv_mode_);
        }
        tokens += (int64_t)p.ids.size() * 3;
        for (auto& o : group) {
          Seq q;
          q.prompt = prompts.size();
          q.ids = o.ids;
          q.truncated = o.truncated;
          q.invalid = holds_vision_token(q.ids);
          q.reward = o.reward.value;
          q.adv = o.adv;
          q.invocations = o.invocations;
          const double swap_pen = std::max(0.0, o.r_swap - q.reward), skip_pen = std::max(0.0, o.r_skip - q.reward);
          v[0] += 1, v[1] += q.reward, v[2] += o.R, v[3] += o.reward.correct, v[4] += q.invocations;
          v[5] += q.truncated, v[6] += (double)q.ids.size();
          if (!q.truncated && !q.invalid) v[7] += policy_tokens(q.ids);
          v[15] += q.invalid && !q.truncated;
          v[8] += q.invocations > 0, v[9] += o.long_invocations, v[10] += swap_pen, v[11] += skip_pen;
          if (q.invocations > 0) v[12] += o.r_swap, v[13] += o.r_skip, v[14] += q.reward;
          tokens += (int64_t)q.ids.size() + o.counterfactual_tokens;
          seqs.push_back(std::move(q));
        }
        prompts.push_back(std::move(p));
        continue;
      }
      GenerationResult base, res;
      {
        torch::NoGradGuard ng;
        // the base model's own trajectory (greedy, no memory): the reward's reference
        GenerationRequest greedy = req;
        greedy.sampling = SamplingParams{};
        greedy.num_sequences = 1;
        greedy.vismem = VismemGenerate{};
        base = generate(m, greedy);
        req.vismem.invoke = "separators";
        req.vismem.p = vc.p;
        req.vismem.long_fraction = vc.long_fraction;
        req.vismem.seed = req.sampling.seed;
        res = generate(m, req);
      }
      const double r_base = score(base.tokens[0], base.finish[0] == "stop").value;
      tokens += (int64_t)p.ids.size() * 2 + (int64_t)base.tokens[0].size();
      for (int64_t i = 0; i < G; ++i) {
        Seq q;
        q.prompt = prompts.size();
        q.ids = res.tokens[i];
        q.truncated = res.finish[i] != "stop";
        q.invalid = holds_vision_token(q.ids);
        auto rw = score(q.ids, !q.truncated);
        q.reward = rw.value;
        q.adv = q.reward - r_base;
        q.invocations = (int64_t)res.insertions[i].size();
        v[0] += 1, v[1] += q.reward, v[2] += r_base, v[3] += rw.correct, v[4] += q.invocations;
        v[5] += q.truncated, v[6] += (double)q.ids.size();
        if (!q.truncated && !q.invalid) v[7] += policy_tokens(q.ids);
        v[15] += q.invalid && !q.truncated;
        tokens += (int64_t)q.ids.size();
        seqs.push_back(std::move(q));
      }
      prompts.push_back(std::move(p));
    }
    ctx_.dist->all_reduce_sum(v);
    const double total_tokens = std::max(1.0, v[7]);
    // teacher forcing per completion (each forms its own memories); gradients accumulate
    double loss_sum = 0;
    for (auto& q : seqs) {
      if (q.truncated || q.invalid || q.adv == 0 || q.ids.empty()) continue;
      if (!stage2_ && q.invocations == 0) continue;  // stage 1: no memory, no gradient
      const auto& p = prompts[q.prompt];
      auto f = vismem_forward(m, p.ids, p.pixels, p.grids, q.ids, /*all_logits=*/false, /*pvm=*/true);
      // targets: stage 1 the tokens the model chose besides the engine's; stage 2 also the start
      // tokens (the end tokens are structural in both). Stage 2 masks the logits as sampling did.
      std::vector<int64_t> at, target;
      std::vector<uint8_t> starts_off;  // stage 2: the start tokens were masked at this target
      int64_t invoked = 0;
      for (size_t k = 0; k < q.ids.size(); ++k) {
        const int64_t w = vismem_token_of(mc, q.ids[k]);
        const bool start = w == kShortStart || w == kLongStart;
        if (w < 0 || (stage2_ && start)) {
          at.push_back(f.completion_pos[k] - 1), target.push_back(q.ids[k]);
          starts_off.push_back(invoked >= vc.max_invocations);
        }
        invoked += start;
      }
      if (at.empty()) continue;
      auto dev = f.hidden.device();
      auto h = f.hidden[0].index_select(0, torch::tensor(at, torch::kLong).to(dev));  // [n, H]
      auto* vm = vismem_of(*m);
      auto head = torch::cat({m->lm_head_weight(), vm->token_head.defined() ? vm->token_head : vm->token_embed}, 0);
      auto logits = torch::matmul(h, head.t()).to(torch::kFloat);  // [n, V + 4]
      if (stage2_) {
        const int64_t V = mc.text.vocab_size, n = (int64_t)at.size();
        auto mask = torch::zeros({n, V + kVismemTokens}, torch::kBool);
        mask.narrow(1, V + kShortEnd, 1).fill_(true);
        mask.narrow(1, V + kLongEnd, 1).fill_(true);
        auto off = torch::tensor(std::vector<int64_t>(starts_off.begin(), starts_off.end()), torch::kLong).to(torch::kBool);
        mask.narrow(1, V + kShortStart, 1).copy_(off.view({-1, 1}));
        mask.narrow(1, V + kLongStart, 1).copy_(off.view({-1, 1}));
        logits = logits.masked_fill(mask.to(dev), -std::numeric_limits<float>::infinity());
      }
      auto lp = torch::log_softmax(logits, -1)
                    .gather(1, torch::tensor(target, torch::kLong).to(dev).view({-1, 1}))
                    .squeeze(1);  // [n]
      auto loss = -(lp.sum() * q.adv) / total_tokens;
      if (!loss.requires_grad()) continue;  // a memory at the very end: nothing read it
      loss.backward();
      loss_sum += loss.item<double>();
      tokens += (int64_t)f.ids.size();
    }
    std::vector<double> l{loss_sum};
    ctx_.dist->all_reduce_sum(l);
    StepStats st;
    st.loss = l[0];
    st.tokens = tokens;
    const double n = std::max(1.0, v[0]);
    st.metrics["reward_mean"] = v[1] / n;
    if (stage2_) {
      const double ni = std::max(1.0, v[8]);
      st.metrics["penalised_reward_mean"] = v[2] / n;
      st.metrics["invoked_rate"] = v[8] / n;                         // completions with a memory
      st.metrics["long_share"] = v[4] > 0 ? v[9] / v[4] : 0.0;      // long-term among the memories
      st.metrics["swap_penalty_mean"] = v[10] / n;                   // max(0, r_swap - r), unweighted
      st.metrics["skip_penalty_mean"] = v[11] / n;                   // max(0, r_skip - r), unweighted
      st.metrics["invoked_reward_mean"] = v[14] / ni;                // r, r_swap, r_skip over the
      st.metrics["swap_reward_mean"] = v[12] / ni;                   // completions that invoked
      st.metrics["skip_reward_mean"] = v[13] / ni;
    } else {
      st.metrics["base_reward_mean"] = v[2] / n;
      st.metrics["reward_gain"] = (v[1] - v[2]) / n;
    }
    st.metrics["accuracy_rate"] = v[3] / n;
    st.metrics["invocations_mean"] = v[4] / n;
    st.metrics["truncated_rate"] = v[5] / n;
    st.metrics["invalid_rate"] = v[15] / n;  // stopped, but holding a vision token (not trained on)
    st.metrics["completion_len_mean"] = v[6] / n;
    next_step_ = step + 1;
    return st;
  }

  json state() const override { return json{{"sampler", sampler_.state()}, {"next_step", next_step_}}; }

  void restore(const json& s) override {
    try {
      sampler_.restore(s.at("sampler"));
      next_step_ = s.value("next_step", (int64_t)0);
    } catch (const json::exception& e) {
      throw Error(std::string("trainer state: vismem: ") + e.what());
    }
  }

 private:
  // Tokens of a completion the model chose: stage 1 not the engine's start and end tokens; stage 2
  // the start tokens too (only the end tokens are the engine's).
  double policy_tokens(const std::vector<int64_t>& ids) const {
    double n = 0;
    for (auto id : ids) {
      const int64_t w = vismem_token_of(ctx_.model->config(), id);
      n += w < 0 || (stage2_ && (w == kShortStart || w == kLongStart));
    }
    return n;
  }

  bool holds_vision_token(const std::vector<int64_t>& ids) const {
    const auto& c = ctx_.model->config();
    for (auto id : ids)
      if (id == c.image_token_id || id == c.video_token_id || id == c.vision_start_token_id || id == c.vision_end_token_id)
        return true;
    return false;
  }

  TrainContext& ctx_;
  bool stage2_ = false;
  grpo::Advantage adv_mode_ = grpo::Advantage::Grpo;
  rewards::Kind kind_;
  GrpoRewardFn override_;
  std::vector<GrpoRecord> records_;
  Sampler sampler_;
  std::vector<int64_t> stop_;
  int64_t next_step_ = 0;
};

}  // namespace

std::unique_ptr<Objective> make_vismem_objective(TrainContext& ctx) { return std::make_unique<VismemObjective>(ctx); }

double vismem_penalised_reward(double r, double r_swap, double r_skip, double type_penalty, double neg_penalty) {
  return r - type_penalty * std::max(0.0, r_swap - r) - neg_penalty * std::max(0.0, r_skip - r);
}

std::vector<VismemRollout> vismem_stage2_group(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req,
                                               const VismemScoreFn& score, double type_penalty, double neg_penalty,
                                               grpo::Advantage advantage) {
  const auto& opt = req.vismem;
  if (!opt.enabled || opt.invoke != "model" || opt.counterfactual != "none")
    throw Error("VisMem stage 2 rollouts: expected VisMem on, invocation \"model\", no counterfactual");
  auto res = generate(m, req);
  const int64_t G = req.num_sequences;
  std::vector<VismemRollout> out(G);
  std::vector<int64_t> invoked;  // sequences with a memory: only they have counterfactuals
  for (int64_t g = 0; g < G; ++g) {
    auto& o = out[g];
    o.ids = res.tokens[g];
    o.truncated = res.finish[g] != "stop";
    o.invocations = (int64_t)res.insertions[g].size();
    for (auto& mi : res.insertions[g]) o.long_invocations += mi.type == "long";
    o.reward = score(o.ids, !o.truncated);
    o.r_swap = o.r_skip = o.reward.value;
    if (o.invocations > 0) invoked.push_back(g);
  }
  if (!invoked.empty()) {
    for (const std::string cf : {"swap", "skip"}) {
      GenerationRequest c = req;  // the same prompt, sampling and seed; the caller's observers watch only the rollout
      c.on_token = nullptr, c.configure = nullptr, c.after_forward = nullptr, c.on_insert = nullptr;
      c.num_sequences = (int64_t)invoked.size();
      c.vismem.counterfactual = cf;
      c.vismem.replay.clear();
      c.vismem.streams.clear();
      for (auto g : invoked) {
        c.vismem.replay.push_back(out[g].ids);
        c.vismem.streams.push_back(opt.streams.empty() ? (uint64_t)g : opt.streams[g]);
      }
      auto cr = generate(m, c);
      for (size_t k = 0; k < invoked.size(); ++k) {
        auto& o = out[invoked[k]];
        const double r = score(cr.tokens[k], cr.finish[k] == "stop").value;
        (cf == "swap" ? o.r_swap : o.r_skip) = r;
        o.counterfactual_tokens += (int64_t)cr.tokens[k].size();
      }
    }
  }
  std::vector<float> R(G);
  for (int64_t g = 0; g < G; ++g) {
    auto& o = out[g];
    o.R = vismem_penalised_reward(o.reward.value, o.r_swap, o.r_skip, type_penalty, neg_penalty);
    R[g] = (float)o.R;
  }
  auto adv = grpo::group_advantages(torch::tensor(R, torch::kFloat), G, advantage);
  for (int64_t g = 0; g < G; ++g) out[g].adv = adv[g].item<double>();
  return out;
}

void set_vismem_reward_override(GrpoRewardFn fn) {
  std::lock_guard<std::mutex> lk(g_override_mu);
  g_override = std::move(fn);
}

}  // namespace pvm::train
