// One evaluation loop, pluggable item sources. `pvm eval` runs either source through run_eval:
// - DatasetSource: a VLMEvalKit TSV or a JSONL of questions (engine/base/eval_data.h), scored by
//   rule-only answer extraction (engine/base/answer_extract.h); report: dataset_report().
// - ScenesSource (engine/eval_scenes.h): held-out scenes, described and graded against the truth.
// The loop owns what every evaluation shares: the (run, item) order, skipping what a resumed log
// already holds, prompting the model, cancellation. A source owns its prompts and its grading;
// each (item, run) gives one JSON record, handed to the caller (log file, progress, tallies).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/eval_data.h"
#include "engine/generate.h"
#include "engine/pipeline.h"
#include "engine/train_data.h"

namespace pvm::eval {

// One answer of the model: generated ids (the stop token included when it stopped), why it ended
// ("stop" | "length" | "cancelled") and its text (the ids before the stop token, special tokens
// skipped).
struct Answer {
  std::vector<int64_t> ids;
  std::string finish;
  std::string text;       // VisMem's start/end ids are not text: they are left out
  int64_t invocations = 0;  // VisMem memories inserted while answering
  double decode_ms = 0;     // the generation's decode time (the prefill excluded)
  int64_t tokens() const { return int64_t(ids.size()) - (finish == "stop" && !ids.empty() ? 1 : 0); }
};
// How a source asks the model: one prompt, at most max_new tokens, with these sampling settings.
using Ask = std::function<Answer(const PromptSpec& spec, int64_t max_new, const SamplingParams& sampling)>;

class ItemSource {
 public:
  virtual ~ItemSource() = default;
  virtual size_t size() const = 0;
  virtual std::string key(size_t i) const = 0;  // unique per item; resume skips (key, run) pairs done
  // Item i in run `run`: its prompts through `ask`, graded. nullopt when an answer came back
  // cancelled (nothing is recorded; a resumed run redoes the item).
  virtual std::optional<nlohmann::json> evaluate(size_t i, int run, const Ask& ask) = 0;
};

struct LoopOptions {
  int runs = 1;
  bool use_pvm = true;                  // generate with the model's PVM blocks
  VismemGenerate vismem;                // VisMem invocation (enabled needs a VisMem adapter on the model)
  double visual_attention_scale = 1.0;  // the dilution intervention (GenerationRequest); 1 = off
  double visual_attention_restore = 0.0;  // its length-matched form (GenerationRequest); 0 = off
  int64_t history_window = 0;             // the answer-history window (GenerationRequest); 0 = off
  std::atomic<bool>* cancel = nullptr;  // stops between items (and inside a generation)
  std::function<bool(const std::string& key, int run)> done;  // true: skip (already in the log)
  std::function<void(const nlohmann::json& record, size_t item, int run)> on_record;
};

// Runs every (run, item) not done, in run-major order. Returns the number of records made.
int64_t run_eval(const Pipeline& pipe, ItemSource& src, const LoopOptions& o);

// ---- VLMEvalKit TSV / JSONL ----

struct DatasetSettings {
  PromptStyle style = PromptStyle::Dataset;
  std::string system;
  SamplingParams sampling;  // the seed is derived per (seed, run, item), see DatasetSource
  uint64_t seed = 0;
  int64_t max_new_tokens = 1024;
};

// Decodes every image of the items once (base64 and files alike: decode and the one size check),
// so a broken image is found at load, not when its item comes up, with the policy of training
// data (train::BadLinePolicy, `--bad-lines`): an item with a bad image is dropped with a warning
// naming the file, line and image, and counted in a summary; when fatal, the first one is the error.
// Returns the number of items dropped.
int64_t validate_images(EvalData& data, const train::BadLinePolicy& policy);

class DatasetSource : public ItemSource {
 public:
  // Throws naming `path` when it holds no usable item (an empty file, or only rows without an image).
  DatasetSource(const std::string& path, EvalData data, DatasetSettings s);
  size_t size() const override { return items_.size(); }
  std::string key(size_t i) const override { return items_[i].key; }
  // Record: index, run, line, answer, category..., prompt, output, tokens, finish, extracted, kind,
  // how, correct, ms. A broken item (an image that does not decode) gives kind "error" and "error".
  std::optional<nlohmann::json> evaluate(size_t i, int run, const Ask& ask) override;

  std::vector<EvalItem>& items() { return items_; }
  const std::vector<EvalItem>& items() const { return items_; }

 private:
  std::vector<EvalItem> items_;
  DatasetSettings s_;
};

// Output-length buckets (generated tokens, stop token excluded) of the report.
extern const char* const kLengthBuckets[4];
// Accuracy overall, by category, by L2 category, by output length and (MMBench) circular, each as
// mean and sample std over runs, from the records of a log (the first record of a (key, run) counts).
nlohmann::json dataset_report(const nlohmann::json& header, const std::vector<nlohmann::json>& records,
                              const std::vector<EvalItem>& items, int runs);

}  // namespace pvm::eval
