#include "engine/train_sft.h"

#include <algorithm>
#include <cmath>

#include "engine/base/error.h"

namespace pvm::train {

using nlohmann::json;

torch::Tensor sft_loss_sum(TrainContext& ctx, const TokenBatch& b) {
  return -masked_logprobs(ctx, b, b.labels != kIgnoreIndex).sum();
}

namespace {

class SftObjective : public Objective {
 public:
  explicit SftObjective(TrainContext& ctx) : ctx_(ctx) {
    SftDatasetOptions o;
    o.max_length = ctx.cfg.max_length;
    o.policy.fatal = ctx.cfg.bad_lines == "fatal";
    if (ctx.rank != 0) o.policy.warn = [](const std::string&) {};  // rank 0 reports
    o.preprocessor = ctx.preprocessor;
    o.pad_id = ctx.model->config().pad_token_id;
    ds_ = std::make_shared<SftDataset>(ctx.cfg.data, ctx.tokenizer, o);
    loader_ = std::make_unique<SftLoader>(ds_, ctx.cfg.batch_size, ctx.cfg.grad_accum, ctx.rank, ctx.world, ctx.cfg.seed,
                                          ctx.cfg.workers);
    if (!ctx.cfg.eval_data.empty()) eval_ds_ = std::make_shared<SftDataset>(ctx.cfg.eval_data, ctx.tokenizer, o);
  }

  StepStats compute(int64_t) override {
    auto st = loader_->next();
    const double denom = (double)std::max<int64_t>(1, st.global_label_tokens);
    double loss_sum = 0;
    int64_t tokens = 0;
    for (auto& mb : st.micro) {
      auto ls = sft_loss_sum(ctx_, mb);
      (ls / denom).backward();
      loss_sum += ls.item<double>();
      tokens += mb.tokens;
    }
    StepStats s;
    s.loss = ctx_.dist->all_reduce_sum(loss_sum) / denom;
    s.tokens = tokens;
    s.metrics["label_tokens"] = st.global_label_tokens;
    s.metrics["epoch"] = loader_->state()["epoch"];
    return s;
  }

  json state() const override { return {{"loader", loader_->state()}}; }
  void restore(const json& s) override {
    if (!s.contains("loader")) throw Error("trainer state: no data position");
    loader_->restore(s["loader"]);
  }
  int64_t steps_per_epoch() const override { return loader_->steps_per_epoch(); }

  double evaluate() override {
    if (!eval_ds_) return std::nan("");
    torch::NoGradGuard ng;
    double sum = 0, n = 0;
    const int64_t micro = std::max<int64_t>(1, ctx_.cfg.batch_size / ctx_.cfg.grad_accum / ctx_.world);
    for (int64_t i0 = ctx_.rank * micro; i0 < eval_ds_->size(); i0 += micro * ctx_.world) {
      std::vector<TokenizedExample> ex;
      std::vector<std::vector<ProcessedImage>> im;
      for (int64_t i = i0; i < std::min(eval_ds_->size(), i0 + micro); ++i) {
        auto [e, imgs] = eval_ds_->load(i);
        ex.push_back(std::move(e));
        im.push_back(std::move(imgs));
      }
      auto b = collate(ex, im, eval_ds_->options().pad_id);
      sum += sft_loss_sum(ctx_, b).item<double>();
      n += b.label_tokens;
    }
    std::vector<double> v{sum, n};
    ctx_.dist->all_reduce_sum(v);
    return v[0] / std::max(1.0, v[1]);
  }

  std::string data_hash() const { return ds_->hash(); }

 private:
  TrainContext& ctx_;
  std::shared_ptr<SftDataset> ds_, eval_ds_;
  std::unique_ptr<SftLoader> loader_;
};

}  // namespace

std::unique_ptr<Objective> make_sft_objective(TrainContext& ctx) { return std::make_unique<SftObjective>(ctx); }

}  // namespace pvm::train
