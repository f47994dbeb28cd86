#include "engine/train_vismem.h"

#include <algorithm>
#include <cstdio>
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
    if (ctx.cfg.vismem.stage != 1) throw Error(src + ": vismem.stage: only stage 1 is implemented");
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
    // sums: n, reward, base reward, correct, invocations, truncated, len, policy tokens
    std::vector<double> v(8, 0.0);
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
      GenerationResult base, res;
      {
        torch::NoGradGuard ng;
        // the base model's own trajectory (greedy, no memory): the reward's reference
        base = generate(m, req);
        req.sampling.do_sample = g.temperature > 0;
        req.sampling.temperature = g.temperature > 0 ? g.temperature : 1.0;
        req.sampling.top_p = g.top_p;
        req.sampling.seed = mix(mix(ctx_.cfg.seed ^ 0x564d454dull) + (uint64_t)step * 1000003ull + (uint64_t)j);
        req.num_sequences = G;
        req.vismem.enabled = true;
        req.vismem.invoke = "separators";
        req.vismem.p = vc.p;
        req.vismem.long_fraction = vc.long_fraction;
        req.vismem.max_invocations = vc.max_invocations;
        req.vismem.seed = req.sampling.seed;
        res = generate(m, req);
      }
      auto score = [&](const std::vector<int64_t>& ids, bool stopped) {
        auto text = text_of(ids, stopped);
        return override_ ? override_(rec, text, ids) : rewards::score(kind_, text, rec.solution);
      };
      const double r_base = score(base.tokens[0], base.finish[0] == "stop").value;
      tokens += (int64_t)p.ids.size() * 2 + (int64_t)base.tokens[0].size();
      for (int64_t i = 0; i < G; ++i) {
        Seq q;
        q.prompt = prompts.size();
        q.ids = res.tokens[i];
        q.truncated = res.finish[i] != "stop";
        auto rw = score(q.ids, !q.truncated);
        q.reward = rw.value;
        q.adv = q.reward - r_base;
        q.invocations = (int64_t)res.insertions[i].size();
        v[0] += 1, v[1] += q.reward, v[2] += r_base, v[3] += rw.correct, v[4] += q.invocations;
        v[5] += q.truncated, v[6] += (double)q.ids.size();
        if (!q.truncated) v[7] += policy_tokens(q.ids);
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
      if (q.truncated || q.adv == 0 || q.ids.empty() || q.invocations == 0) continue;  // no memory: no gradient
      const auto& p = prompts[q.prompt];
      auto f = vismem_forward(m, p.ids, p.pixels, p.grids, q.ids, /*all_logits=*/false, /*pvm=*/true);
      std::vector<int64_t> at, target;
      for (size_t k = 0; k < q.ids.size(); ++k)
        if (vismem_token_of(mc, q.ids[k]) < 0) at.push_back(f.completion_pos[k] - 1), target.push_back(q.ids[k]);
      if (at.empty()) continue;
      auto dev = f.hidden.device();
      auto h = f.hidden[0].index_select(0, torch::tensor(at, torch::kLong).to(dev));  // [n, H]
      auto* vm = vismem_of(*m);
      auto head = torch::cat({m->lm_head_weight(), vm->token_head.defined() ? vm->token_head : vm->token_embed}, 0);
      auto lp = torch::log_softmax(torch::matmul(h, head.t()).to(torch::kFloat), -1)
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
    st.metrics["base_reward_mean"] = v[2] / n;
    st.metrics["reward_gain"] = (v[1] - v[2]) / n;
    st.metrics["accuracy_rate"] = v[3] / n;
    st.metrics["invocations_mean"] = v[4] / n;
    st.metrics["truncated_rate"] = v[5] / n;
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
  // Tokens of a completion the model chose (the engine's start and end tokens are not).
  double policy_tokens(const std::vector<int64_t>& ids) const {
    double n = 0;
    for (auto id : ids) n += vismem_token_of(ctx_.model->config(), id) < 0;
    return n;
  }

  TrainContext& ctx_;
  rewards::Kind kind_;
  GrpoRewardFn override_;
  std::vector<GrpoRecord> records_;
  Sampler sampler_;
  std::vector<int64_t> stop_;
  int64_t next_step_ = 0;
};

}  // namespace

std::unique_ptr<Objective> make_vismem_objective(TrainContext& ctx) { return std::make_unique<VismemObjective>(ctx); }

void set_vismem_reward_override(GrpoRewardFn fn) {
  std::lock_guard<std::mutex> lk(g_override_mu);
  g_override = std::move(fn);
}

}  // namespace pvm::train
