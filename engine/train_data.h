// Training data: SFT chat JSONL and GRPO prompt JSONL, deterministic sampling with exact resume,
// length-grouped batches, and images decoded + preprocessed on worker threads ahead of the step.
//
// SFT line:  {"messages": [{"role": "system"|"user"|"assistant", "content": STRING | PARTS}],
//             "images": ["path", ...]}
//   STRING content may hold "<image>" markers (one per image, in order); PARTS is a list of
//   {"type": "image"} / {"type": "text", "text": ...}. Images are consumed in order of appearance;
//   every listed image must be used exactly once. Paths are relative to the JSONL file.
//   Labels: the assistant turns' content tokens and their <|im_end|> (everything else -100).
// GRPO line: {"prompt": STRING (with optional <image> markers; images go first otherwise),
//             "images": [...], "solution": STRING or number}
//
// Bad lines (bad JSON, missing keys, wrong types, missing images, no assistant turn, too long)
// are reported as "FILE:LINE: problem" and skipped (bad_lines = "skip", a warning on stderr) or
// fatal (pvm::Error with that message).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/chat_template.h"
#include "engine/base/tokenizer.h"
#include "engine/image.h"
#include "engine/torch_pch.h"

namespace pvm::train {

constexpr int64_t kIgnoreIndex = -100;

// ---- one parsed line ----
struct ChatItemPart {
  bool image = false;
  std::string text;  // text part
  int image_index = -1;  // index into images (image part)
};
struct ChatItemMessage {
  std::string role;
  std::vector<ChatItemPart> parts;
};
struct SftRecord {
  std::string where;  // "file:line"
  std::vector<ChatItemMessage> messages;
  std::vector<std::string> images;  // resolved paths
};
struct GrpoRecord {
  std::string where;
  std::string prompt;  // text without <image> markers
  std::vector<std::string> images;  // resolved paths
  std::vector<ChatItemPart> parts;  // user content in order: images at their <image> markers (else all first)
  std::string solution;             // a JSON number is kept as its text
};

// Reporting policy for bad lines.
// One policy for every bad sample, whatever is wrong with it (bad JSON, a missing image, a corrupt
// image): skip it with a warning (counted, and summed up once loading ends) or, when fatal, stop at
// the first with its file and line. Applied at load, so nothing fails hours into a run.
struct BadLinePolicy {
  bool fatal = false;
  std::function<void(const std::string& msg)> warn;  // default: stderr "warning: <msg>"
  void report(const std::string& msg) const;         // throws pvm::Error when fatal
  // "<path>: skipped N of M samples ..." once at the end of loading, when any was skipped.
  // `unit` names what was counted ("samples", "items"), `option` how to make it fatal.
  void summary(const std::string& path, int64_t skipped, int64_t total, const std::string& unit = "samples",
               const std::string& option = "bad_lines: fatal") const;
};

// Parse a whole file (bad lines reported through `policy`). Throws when the file cannot be read
// or holds no usable line.
std::vector<SftRecord> read_sft_jsonl(const std::string& path, const BadLinePolicy& policy);
std::vector<GrpoRecord> read_grpo_jsonl(const std::string& path, const BadLinePolicy& policy);
// Parse one line (throws pvm::Error "where: problem"); exposed for tests.
SftRecord parse_sft_line(const std::string& line, const std::string& where, const std::string& base_dir);
GrpoRecord parse_grpo_line(const std::string& line, const std::string& where, const std::string& base_dir);

// Decode + preprocess image files (errors name the file).
std::vector<ProcessedImage> load_images(const std::vector<std::string>& paths, const PreprocessorConfig& pp);

// Decode the whole image (so a corrupt or truncated file is found at load, not when its batch
// comes up), check its size (check_image_size) and return its merged image token count. Results
// are cached by path: data sets list one image many times.
class ImageValidator {
 public:
  explicit ImageValidator(const PreprocessorConfig& pp) : pp_(pp) {}
  int64_t tokens(const std::string& path);  // throws pvm::Error naming the file
 private:
  PreprocessorConfig pp_;
  std::map<std::string, std::pair<int64_t, std::string>> cache_;  // path -> tokens, or the error
};

// ---- tokenised examples ----
struct TokenizedExample {
  std::vector<int64_t> ids;
  std::vector<int64_t> labels;  // aligned with ids; kIgnoreIndex where no loss
  int64_t n_label_tokens() const;
};
// Render with the Qwen3-VL chat template (no generation prompt) and mark assistant tokens.
// `image_tokens[i]` = number of <|image_pad|> for image i. Throws "where: ..." on problems.
TokenizedExample tokenize_sft(const SftRecord& r, const Tokenizer& tok, const std::vector<int64_t>& image_tokens);
// The GRPO prompt (optional system turn + user turn with the images, generation prompt added).
std::vector<int64_t> tokenize_grpo_prompt(const GrpoRecord& r, const Tokenizer& tok,
                                          const std::vector<int64_t>& image_tokens, const std::string& system);

// ---- batches ----
// A right-padded micro-batch, ready for the model.
struct TokenBatch {
  torch::Tensor input_ids;    // [B, S] int64, padded with pad_id
  torch::Tensor labels;       // [B, S] int64 aligned with input_ids (kIgnoreIndex on pads / prompt)
  torch::Tensor lengths;      // [B] int64 real lengths
  torch::Tensor pixel_values; // [L, C*T*P*P] f32 for all images of all rows (row-major), or undefined
  std::vector<std::array<int64_t, 3>> grids;  // per image, same order
  std::vector<std::string> where;             // per row
  int64_t label_tokens = 0;                   // number of labels != kIgnoreIndex
  int64_t tokens = 0;                         // sum of lengths
  int64_t batch() const { return input_ids.defined() ? input_ids.size(0) : 0; }
};
// Pad and stack examples; images concatenated in row order.
TokenBatch collate(const std::vector<TokenizedExample>& ex, const std::vector<std::vector<ProcessedImage>>& images,
                   int64_t pad_id);

// ---- deterministic order ----
// Order of sample indices: per epoch a permutation from (seed, epoch); with lengths given,
// length-grouped: the permutation is cut into chunks of `group` samples, each chunk sorted by
// length (longest first) and cut into batches of `batch`, and the batch order shuffled, so one
// batch holds similar lengths. Position = (epoch, cursor in batches), serialisable.
class Sampler {
 public:
  Sampler() = default;
  Sampler(int64_t n, int64_t batch, uint64_t seed, std::vector<int64_t> lengths = {}, int64_t group_batches = 16);
  std::vector<int64_t> next_batch();            // `batch` indices (crosses epochs)
  std::vector<int64_t> peek_batch(int64_t ahead) const;  // the batch `ahead` batches from now
  nlohmann::json state() const;                 // {"epoch", "cursor"}
  void restore(const nlohmann::json& s);        // throws on a malformed state
  int64_t epoch() const { return epoch_; }
  int64_t batches_per_epoch() const;
  int64_t size() const { return n_; }

 private:
  std::vector<int64_t> epoch_order(int64_t epoch) const;  // batches concatenated
  int64_t n_ = 0, batch_ = 1, group_ = 16;
  uint64_t seed_ = 0;
  std::vector<int64_t> lengths_;
  int64_t epoch_ = 0, cursor_ = 0;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_;
};

// ---- SFT dataset: index + prefetching loader ----
struct SftDatasetOptions {
  int64_t max_length = 2048;
  BadLinePolicy policy;
  PreprocessorConfig preprocessor;
  int64_t pad_id = 0;
};

class SftDataset {
 public:
  // Reads and tokenises every line (images: header only) to know lengths and label counts.
  SftDataset(const std::string& path, const Tokenizer& tok, const SftDatasetOptions& opt);
  int64_t size() const { return (int64_t)records_.size(); }
  const SftRecord& record(int64_t i) const { return records_[i]; }
  int64_t length(int64_t i) const { return lengths_[i]; }
  int64_t label_tokens(int64_t i) const { return label_counts_[i]; }
  const std::vector<int64_t>& lengths() const { return lengths_; }
  // Tokenise sample i and decode + preprocess its images (thread-safe).
  std::pair<TokenizedExample, std::vector<ProcessedImage>> load(int64_t i) const;
  const SftDatasetOptions& options() const { return opt_; }
  std::string hash() const;  // of the file contents (for the manifest)
  int64_t skipped() const { return skipped_; }  // samples dropped at load under the skip policy

 private:
  std::vector<SftRecord> records_;
  std::vector<int64_t> lengths_, label_counts_;
  std::vector<std::vector<int64_t>> image_tokens_;
  Tokenizer tok_;
  SftDatasetOptions opt_;
  std::string hash_;
  int64_t skipped_ = 0;
};

// The per-step stream of micro-batches for this rank: global batch -> this rank's slice -> grad_accum
// micro-batches, prefetched on worker threads.
struct SftStep {
  std::vector<TokenBatch> micro;     // this rank's micro-batches
  int64_t global_label_tokens = 0;   // labels in the whole global batch (all ranks): loss divisor
  int64_t global_tokens = 0;
  std::vector<int64_t> indices;      // global batch sample indices (for tests / logs)
};

class SftLoader {
 public:
  SftLoader(std::shared_ptr<const SftDataset> ds, int64_t global_batch, int64_t grad_accum, int rank, int world,
            uint64_t seed, int64_t workers, int64_t depth = 2);
  ~SftLoader();
  SftStep next();  // the next optimizer step's data
  nlohmann::json state() const;  // position of the next step
  void restore(const nlohmann::json& s);
  int64_t steps_per_epoch() const;

 private:
  SftStep build(const std::vector<int64_t>& global) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pvm::train
