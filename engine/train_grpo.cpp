#include "engine/train_grpo.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "engine/base/base64.h"
#include "engine/base/chat_template.h"
#include "engine/base/error.h"
#include "engine/generate.h"
#include "engine/grpo.h"
#include "engine/loader.h"
#include "engine/nn.h"
#include "engine/pvm.h"

namespace pvm::train {

using nlohmann::json;

namespace {

std::mutex g_override_mu;
GrpoRewardFn g_override;

// ---- exact binary round trip through JSON (f32 log-probs, i32 ids) ----
template <class T>
std::string pack(const std::vector<T>& v) {
  return base64_encode(v.data(), v.size() * sizeof(T));
}
template <class T>
std::vector<T> unpack(const std::string& s) {
  const std::string b = base64_decode(s, "trainer state: grpo cache");
  if (b.size() % sizeof(T)) throw Error("trainer state: grpo cache: truncated array");
  std::vector<T> v(b.size() / sizeof(T));
  if (!b.empty()) std::memcpy(v.data(), b.data(), b.size());
  return v;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Every rank gets every rank's string (all-reduce of zero-padded byte buffers).
std::vector<std::string> all_gather_strings(Distributed& d, const std::string& mine) {
  const int W = d.world(), R = d.rank();
  if (W == 1) return {mine};
  std::vector<double> lens(W, 0.0);
  lens[R] = (double)mine.size();
  d.all_reduce_sum(lens);
  int64_t total = 0;
  std::vector<int64_t> off(W + 1, 0);
  for (int i = 0; i < W; ++i) off[i + 1] = off[i] + (int64_t)lens[i];
  total = off[W];
  auto buf = torch::zeros({std::max<int64_t>(total, 1)}, torch::kInt);  // int32: exact sums on every backend
  auto a = buf.accessor<int32_t, 1>();
  for (size_t k = 0; k < mine.size(); ++k) a[off[R] + (int64_t)k] = (uint8_t)mine[k];
  std::vector<torch::Tensor> ts{buf};
  d.all_reduce_sum(ts);
  auto b = ts[0].accessor<int32_t, 1>();
  std::vector<std::string> out(W);
  for (int i = 0; i < W; ++i) {
    out[i].resize(off[i + 1] - off[i]);
    for (int64_t k = off[i]; k < off[i + 1]; ++k) out[i][k - off[i]] = (char)b[k];
  }
  return out;
}

struct Seq {
  int64_t slot = 0;  // prompt slot in the global rollout batch (0..P-1)
  int64_t index = 0;  // completion index in its group (0..G-1)
  std::vector<int64_t> ids;  // generated ids, the stop token included when stopped
  bool truncated = false;
  // Holds a vision token (<|image_pad|>, <|vision_start|>, ...): during generation it was embedded
  // as plain text, but a teacher-forced forward would read it as an image slot, so the log-probs
  // cannot be reproduced. Kept out of the loss like a truncated completion.
  bool invalid = false;
  bool masked() const { return truncated || invalid; }
  double reward = 0;
  bool format = false, correct = false;
  float adv = 0;
  std::vector<float> old_lp, ref_lp;  // per completion token, from pass 0
};

struct LocalPrompt {
  int64_t slot = 0, record = 0;
  std::vector<int64_t> ids;
  std::vector<ProcessedImage> images;
};

class GrpoObjective : public Objective {
 public:
  GrpoObjective(TrainContext& ctx, GrpoRewardFn fn) : ctx_(ctx), reward_fn_(std::move(fn)) {
    const auto& g = ctx.cfg.grpo;
    const std::string src = ctx.cfg.source.empty() ? "config" : ctx.cfg.source;
    kind_ = rewards::parse_kind(g.reward);
    adv_mode_ = grpo::parse_advantage(g.advantage);
    loss_opt_.agg = grpo::parse_loss_agg(g.loss_agg);
    loss_opt_.eps_low = g.eps_low;
    loss_opt_.eps_high = g.eps_high;
    loss_opt_.beta = g.beta;
    loss_opt_.max_completion_length = g.max_new_tokens;
    if (g.group_size < 1 || g.prompts_per_step < 1 || g.max_new_tokens < 1 || g.inner_epochs < 1)
      throw Error(src + ": grpo: group_size, prompts_per_step, max_new_tokens and inner_epochs must be >= 1");
    if (g.prompts_per_step % ctx.world != 0)
      throw Error(src + ": grpo.prompts_per_step (" + std::to_string(g.prompts_per_step) +
                  ") must be a multiple of the number of processes (" + std::to_string(ctx.world) + ")");
    BadLinePolicy pol;
    pol.fatal = ctx.cfg.bad_lines == "fatal";
    if (ctx.rank != 0) pol.warn = [](const std::string&) {};
    {
      // The same policy as SFT for missing and corrupt images: every image decoded and checked now.
      int64_t line_skips = 0;
      BadLinePolicy counting = pol;
      counting.warn = [&](const std::string& m) {
        ++line_skips;
        if (pol.warn) pol.warn(m);
        else std::fprintf(stderr, "warning: %s (line skipped)\n", m.c_str());
      };
      auto all = read_grpo_jsonl(ctx.cfg.data, counting);
      ImageValidator images(ctx.preprocessor);
      int64_t bad = line_skips;
      for (auto& r : all) {
        try {
          for (auto& p : r.images) images.tokens(p);
          records_.push_back(std::move(r));
        } catch (const Error& e) {
          pol.report(r.where + ": " + e.what());
          ++bad;
        }
      }
      pol.summary(ctx.cfg.data, bad, (int64_t)all.size() + line_skips);
      if (records_.empty()) throw file_error(ctx.cfg.data, "no usable sample");
    }
    sampler_ = Sampler((int64_t)records_.size(), g.prompts_per_step, ctx.cfg.seed);
    for (auto id : chat_stop_ids(ctx.tokenizer)) stop_ids_.push_back(id);
    const auto& mc = ctx.model->config();
    vision_ids_ = {mc.image_token_id, mc.video_token_id, mc.vision_start_token_id, mc.vision_end_token_id};
    for (auto id : ctx.model->config().eos_token_ids)
      if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  }

  int64_t steps_per_epoch() const override {
    const int64_t P = ctx_.cfg.grpo.prompts_per_step;
    return std::max<int64_t>(1, ((int64_t)records_.size() + P - 1) / P) * ctx_.cfg.grpo.inner_epochs;
  }

  StepStats compute(int64_t step) override {
    const auto& g = ctx_.cfg.grpo;
    const int64_t K = g.inner_epochs, r = step / K, pass = step % K;
    StepStats st;
    int64_t tokens = 0;
    if (roll_index_ != r) {
      if (pass != 0)
        throw Error("grpo: step " + std::to_string(step) + " is pass " + std::to_string(pass) + " of rollout " +
                    std::to_string(r) + " but that rollout is not cached (trainer state lost?)");
      ensure_reference();  // before the first update of this run
      tokens += new_rollout(r);
    } else if (prompts_.empty()) {
      ensure_reference();
      prepare_prompts();  // after a resume inside a rollout
    }
    tokens += optimise_pass(pass, st);
    if (pass == 0 && K > 1) cache_rollout();
    next_step_ = step + 1;
    st.tokens = tokens;
    for (auto& [k, v] : roll_metrics_.items()) st.metrics[k] = v;
    st.metrics["rollout"] = r;
    st.metrics["inner_epoch"] = pass;
    return st;
  }

  json state() const override {
    json s{{"sampler", sampler_.state()}, {"rollout", roll_index_}, {"next_step", next_step_}};
    const int64_t K = ctx_.cfg.grpo.inner_epochs;
    if (K > 1 && roll_index_ >= 0 && next_step_ / K == roll_index_ && !cache_.is_null()) s["cache"] = cache_;
    return s;
  }

  void restore(const json& s) override {
    try {
      sampler_.restore(s.at("sampler"));
      next_step_ = s.value("next_step", (int64_t)0);
      restored_ = true;
      roll_index_ = -1;
      prompts_.clear();
      seqs_.clear();
      cache_ = json();
      if (!s.contains("cache")) return;
      const auto& c = s.at("cache");
      cache_ = c;
      roll_index_ = c.at("index").get<int64_t>();
      roll_prompts_ = c.at("prompts").get<std::vector<int64_t>>();
      roll_metrics_ = c.at("metrics");
      total_tokens_ = c.at("total_tokens").get<double>();
      const int64_t P = ctx_.cfg.grpo.prompts_per_step, Pl = P / ctx_.world;
      if ((int64_t)roll_prompts_.size() != P) throw Error("trainer state: grpo cache holds a different prompts_per_step");
      for (auto& j : c.at("seqs")) {
        Seq q;
        q.slot = j.at("slot").get<int64_t>();
        if (q.slot < ctx_.rank * Pl || q.slot >= (ctx_.rank + 1) * Pl) continue;
        q.index = j.at("i").get<int64_t>();
        for (auto v : unpack<int32_t>(j.at("ids").get<std::string>())) q.ids.push_back(v);
        q.truncated = j.at("trunc").get<bool>();
        q.invalid = j.at("invalid").get<bool>();
        q.reward = j.at("reward").get<double>();
        q.format = j.at("format").get<bool>();
        q.correct = j.at("correct").get<bool>();
        q.adv = j.at("adv").get<float>();
        q.old_lp = unpack<float>(j.at("old").get<std::string>());
        q.ref_lp = unpack<float>(j.at("ref").get<std::string>());
        seqs_.push_back(std::move(q));
      }
      std::sort(seqs_.begin(), seqs_.end(),
                [](const Seq& a, const Seq& b) { return a.slot != b.slot ? a.slot < b.slot : a.index < b.index; });
      if ((int64_t)seqs_.size() != Pl * ctx_.cfg.grpo.group_size)
        throw Error("trainer state: grpo cache does not hold this rank's completions");
    } catch (const json::exception& e) {
      throw Error(std::string("trainer state: grpo: ") + e.what());
    }
  }

 private:
  // This rank's prompts of the current rollout: tokenised, images decoded.
  void prepare_prompts() {
    const int64_t P = ctx_.cfg.grpo.prompts_per_step, Pl = P / ctx_.world;
    prompts_.clear();
    for (int64_t j = ctx_.rank * Pl; j < (ctx_.rank + 1) * Pl; ++j) {
      LocalPrompt p;
      p.slot = j;
      p.record = roll_prompts_.at(j);
      const auto& rec = records_.at(p.record);
      p.images = load_images(rec.images, ctx_.preprocessor);
      std::vector<int64_t> ntok;
      for (auto& im : p.images) ntok.push_back(im.num_tokens());
      p.ids = tokenize_grpo_prompt(rec, ctx_.tokenizer, ntok, ctx_.cfg.grpo.system);
      prompts_.push_back(std::move(p));
    }
  }

  // Generate, decode and reward this rank's groups; advantages; global metrics. Returns tokens.
  int64_t new_rollout(int64_t r) {
    const auto& g = ctx_.cfg.grpo;
    const int64_t G = g.group_size;
    roll_prompts_ = sampler_.next_batch();
    roll_index_ = r;
    cache_ = json();
    prepare_prompts();
    seqs_.clear();
    int64_t tokens = 0;
    GrpoRewardFn fn = reward_fn_;
    for (auto& p : prompts_) {
      GenerationRequest req;
      req.prompt_ids = p.ids;
      if (!p.images.empty()) {
        std::vector<torch::Tensor> px;
        for (auto& im : p.images) {
          px.push_back(im.pixel_values);
          req.grids.push_back({im.grid_t, im.grid_h, im.grid_w});
        }
        req.pixel_values = torch::cat(px, 0);
      }
      req.max_new_tokens = g.max_new_tokens;
      req.stop_ids = stop_ids_;
      req.sampling.do_sample = g.temperature > 0;
      req.sampling.temperature = g.temperature > 0 ? g.temperature : 1.0;
      req.sampling.top_p = g.top_p;
      req.sampling.seed = splitmix(splitmix(ctx_.cfg.seed ^ 0x47525030ull) + (uint64_t)r * 1000003ull + (uint64_t)p.slot);
      req.num_sequences = G;
      req.pvm = true;
      GenerationResult res;
      {
        torch::NoGradGuard ng;
        res = generate(ctx_.model, req);
      }
      tokens += (int64_t)p.ids.size();
      const auto& rec = records_.at(p.record);
      for (int64_t i = 0; i < G; ++i) {
        Seq q;
        q.slot = p.slot;
        q.index = i;
        q.ids = res.tokens.at(i);
        q.truncated = res.finish.at(i) != "stop";
        for (auto id : q.ids)
          if (std::find(vision_ids_.begin(), vision_ids_.end(), id) != vision_ids_.end()) q.invalid = true;
        tokens += (int64_t)q.ids.size();
        std::vector<int32_t> text_ids;
        for (size_t k = 0; k < q.ids.size(); ++k) {
          bool stop_tok = !q.truncated && k + 1 == q.ids.size();
          if (!stop_tok) text_ids.push_back((int32_t)q.ids[k]);
        }
        const std::string text = ctx_.tokenizer.decode(text_ids, /*skip_special=*/true);
        rewards::Reward rw = fn ? fn(rec, text, q.ids) : rewards::score(kind_, text, rec.solution);
        q.reward = rw.value;
        q.format = rw.format;
        q.correct = rw.correct;
        seqs_.push_back(std::move(q));
      }
    }
    std::vector<float> rv;
    for (auto& q : seqs_) rv.push_back((float)q.reward);
    auto adv = grpo::group_advantages(torch::tensor(rv, torch::kFloat), G, adv_mode_);
    for (size_t i = 0; i < seqs_.size(); ++i) seqs_[i].adv = adv[(int64_t)i].item<float>();
    compute_rollout_metrics();
    return tokens;
  }

  void compute_rollout_metrics() {
    const int64_t G = ctx_.cfg.grpo.group_size;
    // sums: n, reward, format, correct, len, truncated, group-std sum, zero-std groups, groups,
    // loss tokens, invalid
    std::vector<double> v(11, 0.0);
    double len_max = 0;
    for (size_t i = 0; i < seqs_.size(); ++i) {
      auto& q = seqs_[i];
      v[0] += 1, v[1] += q.reward, v[2] += q.format, v[3] += q.correct, v[4] += (double)q.ids.size();
      v[5] += q.truncated, v[10] += q.invalid && !q.truncated;
      if (!q.masked()) v[9] += (double)q.ids.size();
      len_max = std::max(len_max, (double)q.ids.size());
    }
    for (size_t s = 0; s + G <= seqs_.size(); s += G) {
      double m = 0, ss = 0;
      for (int64_t i = 0; i < G; ++i) m += seqs_[s + i].reward;
      m /= G;
      for (int64_t i = 0; i < G; ++i) ss += (seqs_[s + i].reward - m) * (seqs_[s + i].reward - m);
      const double sd = G > 1 ? std::sqrt(ss / (G - 1)) : 0.0;
      v[6] += sd, v[7] += (ss == 0), v[8] += 1;
    }
    ctx_.dist->all_reduce_sum(v);
    std::vector<double> mx(ctx_.world, 0.0);
    mx[ctx_.rank] = len_max;
    ctx_.dist->all_reduce_sum(mx);
    const double n = std::max(1.0, v[0]), groups = std::max(1.0, v[8]);
    roll_metrics_ = json::object();
    roll_metrics_["reward_mean"] = v[1] / n;
    roll_metrics_["reward_std"] = v[6] / groups;  // mean within-group sample std (TRL's reward_std)
    roll_metrics_["zero_std_groups"] = v[7] / groups;
    roll_metrics_["format_rate"] = v[2] / n;
    roll_metrics_["accuracy_rate"] = v[3] / n;
    roll_metrics_["completion_len_mean"] = v[4] / n;
    roll_metrics_["completion_len_max"] = *std::max_element(mx.begin(), mx.end());
    roll_metrics_["truncated_rate"] = v[5] / n;
    roll_metrics_["invalid_rate"] = v[10] / n;  // stopped, but holding a vision token (not trained on)
    total_tokens_ = v[9];
  }

  // One optimisation pass over the cached rollout. Returns forward tokens.
  int64_t optimise_pass(int64_t pass, StepStats& st) {
    const auto& g = ctx_.cfg.grpo;
    const int64_t G = g.group_size;
    const bool beta = g.beta > 0;
    const bool need_old = g.inner_epochs > 1;
    grpo::LossOptions o = loss_opt_;
    o.total_tokens = std::max(1.0, total_tokens_);
    o.total_sequences = (double)(g.prompts_per_step * G);
    std::vector<size_t> sel;
    for (size_t i = 0; i < seqs_.size(); ++i)
      if (!seqs_[i].masked() && !seqs_[i].ids.empty() && (beta || seqs_[i].adv != 0.f)) sel.push_back(i);
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(ctx_.cfg.grad_accum, (int64_t)sel.size()));
    // sums: loss, clipped, clipped_low, clipped_high, kl, ratio, tokens
    std::vector<double> acc(7, 0.0);
    int64_t tokens = 0;
    const int64_t pad = ctx_.model->config().pad_token_id;
    for (int64_t part = 0; part < parts && !sel.empty(); ++part) {
      const size_t b0 = sel.size() * part / parts, b1 = sel.size() * (part + 1) / parts;
      if (b1 == b0) continue;
      std::vector<TokenizedExample> ex;
      std::vector<std::vector<ProcessedImage>> imgs;
      std::vector<int64_t> plen;
      for (size_t k = b0; k < b1; ++k) {
        auto& q = seqs_[sel[k]];
        auto& p = prompts_.at(q.slot - prompts_.front().slot);
        TokenizedExample e;
        e.ids = p.ids;
        e.ids.insert(e.ids.end(), q.ids.begin(), q.ids.end());
        e.labels.assign(p.ids.size(), kIgnoreIndex);
        e.labels.insert(e.labels.end(), q.ids.begin(), q.ids.end());
        ex.push_back(std::move(e));
        imgs.push_back(p.images);
        plen.push_back((int64_t)p.ids.size());
      }
      auto batch = collate(ex, imgs, pad);
      const int64_t B = batch.batch(), S = batch.input_ids.size(1);
      auto mask = torch::zeros({B, S}, torch::kBool);
      std::vector<float> av;
      for (int64_t b = 0; b < B; ++b) {
        auto& q = seqs_[sel[b0 + b]];
        mask[b].narrow(0, plen[b], (int64_t)q.ids.size()).fill_(true);
        av.push_back(q.adv);
      }
      auto lp = token_logprobs(ctx_, batch, mask);  // [B, S] f32, 0 off the mask
      auto dev = lp.device();
      torch::Tensor old, ref;
      auto gather = [&](std::vector<float> Seq::*field) {
        auto t = torch::zeros({B, S}, torch::kFloat);
        for (int64_t b = 0; b < B; ++b) {
          auto& vec = seqs_[sel[b0 + b]].*field;
          if ((int64_t)vec.size() != (int64_t)seqs_[sel[b0 + b]].ids.size())
            throw Error("grpo: cached log-probs do not match the completion");
          t[b].narrow(0, plen[b], (int64_t)vec.size()).copy_(torch::from_blob(vec.data(), {(int64_t)vec.size()}, torch::kFloat));
        }
        return t.to(dev);
      };
      auto scatter = [&](const torch::Tensor& t, std::vector<float> Seq::*field) {
        auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
        for (int64_t b = 0; b < B; ++b) {
          auto& q = seqs_[sel[b0 + b]];
          auto row = c[b].narrow(0, plen[b], (int64_t)q.ids.size()).contiguous();
          (q.*field).assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
        }
      };
      if (pass == 0) {
        old = lp.detach();
        if (need_old) scatter(old, &Seq::old_lp);
      } else {
        old = gather(&Seq::old_lp);
      }
      if (beta) {
        if (pass == 0) {
          torch::NoGradGuard ng;
          ref = token_logprobs(*ref_ctx_, batch, mask);
          scatter(ref, &Seq::ref_lp);
        } else {
          ref = gather(&Seq::ref_lp);
        }
      }
      auto out = grpo::policy_loss(lp, old, ref, torch::tensor(av, torch::kFloat).to(dev), mask.to(dev).to(torch::kFloat), o);
      out.loss.backward();
      acc[0] += out.loss.item<double>();
      acc[1] += out.clipped, acc[2] += out.clipped_low, acc[3] += out.clipped_high;
      acc[4] += out.kl_sum, acc[5] += out.ratio_sum, acc[6] += out.tokens;
      tokens += batch.tokens;
    }
    ctx_.dist->all_reduce_sum(acc);
    // Tokens not forwarded (zero advantage, beta 0) have ratio 1, no clipping, no KL.
    const double all_tokens = std::max(1.0, total_tokens_);
    st.loss = acc[0];
    st.metrics["clip_frac"] = acc[1] / all_tokens;
    st.metrics["clip_low_frac"] = acc[2] / all_tokens;
    st.metrics["clip_high_frac"] = acc[3] / all_tokens;
    st.metrics["ratio_mean"] = (acc[5] + (total_tokens_ - acc[6])) / all_tokens;
    if (beta) st.metrics["kl"] = acc[4] / all_tokens;
    return tokens;
  }

  // Rollout (all ranks' completions, by global slot) for exact resume inside inner epochs.
  void cache_rollout() {
    json mine = json::array();
    for (auto& q : seqs_) {
      std::vector<int32_t> ids(q.ids.begin(), q.ids.end());
      mine.push_back({{"slot", q.slot},
                      {"i", q.index},
                      {"ids", pack(ids)},
                      {"trunc", q.truncated},
                      {"invalid", q.invalid},
                      {"reward", q.reward},
                      {"format", q.format},
                      {"correct", q.correct},
                      {"adv", q.adv},
                      {"old", pack(q.old_lp)},
                      {"ref", pack(q.ref_lp)}});
    }
    json all = json::array();
    if (ctx_.world == 1) {
      all = std::move(mine);
    } else {
      for (auto& s : all_gather_strings(*ctx_.dist, mine.dump()))
        for (auto& q : json::parse(s)) all.push_back(q);
    }
    cache_ = {{"index", roll_index_},
              {"prompts", roll_prompts_},
              {"metrics", roll_metrics_},
              {"total_tokens", total_tokens_},
              {"seqs", std::move(all)}};
  }

  // Frozen KL reference (beta > 0 only): the policy before its first update. After a resume the
  // current weights are no longer that, so it is rebuilt from the base folder + the same PVM init.
  void ensure_reference() {
    if (ctx_.cfg.grpo.beta <= 0 || ref_) return;
    auto& m = *ctx_.model;
    if (!restored_) {
      ParamOptionsGuard guard(torch::TensorOptions().dtype(m.dtype()).device(m.device()));
      ref_ = Qwen3VLForConditionalGeneration(m.config());
      torch::NoGradGuard ng;
      auto src = m.named_parameters(true);
      for (auto& p : ref_->named_parameters(true)) p.value().copy_(src[p.key()]);
      auto srcb = m.named_buffers(true);
      for (auto& b : ref_->named_buffers(true)) b.value().copy_(srcb[b.key()]);
    } else {
      if (ctx_.model_dir.empty())
        throw Error("grpo: resuming with beta > 0 needs the base model folder to rebuild the KL reference");
      LoadOptions lo;
      lo.dtype = m.dtype();
      lo.device = m.device();
      ref_ = load_model(ctx_.model_dir, lo).model;
      if (ctx_.cfg.pvm.enabled()) {
        TextConfig f = ref_->cfg.text;
        f.pvm_layers = ctx_.cfg.pvm.layers;
        f.pvm_hidden_size = ctx_.cfg.pvm.hidden_size;
        f.pvm_variant = ctx_.cfg.pvm.variant;
        f.pvm_source = ctx_.cfg.pvm.source;
        attach_pvm(*ref_, f, ctx_.cfg.seed);
      } else if (!ctx_.cfg.adapter.empty()) {
        load_pvm_adapter(*ref_, ctx_.cfg.adapter);
      }
    }
    for (auto& p : ref_->parameters()) p.set_requires_grad(false);
    ref_ctx_ = std::make_unique<TrainContext>(ctx_.tokenizer);
    ref_ctx_->cfg = ctx_.cfg;
    ref_ctx_->cfg.grad_checkpointing = false;
    ref_ctx_->model = ref_;
    ref_ctx_->preprocessor = ctx_.preprocessor;
    ref_ctx_->device = ctx_.device;
    ref_ctx_->compute_dtype = ctx_.compute_dtype;
    ref_ctx_->rank = ctx_.rank;
    ref_ctx_->world = ctx_.world;
    ref_ctx_->dist = ctx_.dist;
  }

  TrainContext& ctx_;
  GrpoRewardFn reward_fn_;
  rewards::Kind kind_ = rewards::Kind::ThinkAnswer;
  grpo::Advantage adv_mode_ = grpo::Advantage::Grpo;
  grpo::LossOptions loss_opt_;
  std::vector<GrpoRecord> records_;
  Sampler sampler_;
  std::vector<int64_t> stop_ids_, vision_ids_;
  // current rollout
  int64_t roll_index_ = -1, next_step_ = 0;
  std::vector<int64_t> roll_prompts_;  // global batch of record indices
  std::vector<LocalPrompt> prompts_;   // this rank's share
  std::vector<Seq> seqs_;              // this rank's completions, grouped by prompt
  json roll_metrics_ = json::object();
  double total_tokens_ = 0;  // masked completion tokens of the global rollout
  json cache_;
  bool restored_ = false;
  Qwen3VLForConditionalGeneration ref_{nullptr};
  std::unique_ptr<TrainContext> ref_ctx_;
};

}  // namespace

void set_grpo_reward_override(GrpoRewardFn fn) {
  std::lock_guard<std::mutex> l(g_override_mu);
  g_override = std::move(fn);
}

std::unique_ptr<Objective> make_grpo_objective(TrainContext& ctx, GrpoRewardFn reward) {
  return std::make_unique<GrpoObjective>(ctx, std::move(reward));
}

std::unique_ptr<Objective> make_grpo_objective(TrainContext& ctx) {
  GrpoRewardFn fn;
  {
    std::lock_guard<std::mutex> l(g_override_mu);
    fn = g_override;
  }
  return make_grpo_objective(ctx, std::move(fn));
}

}  // namespace pvm::train
