// Training a small byte-level BPE tokenizer (GPT-2 / Qwen kind) and writing it as an HF
// tokenizer.json that pvm::Tokenizer (and HF tokenizers / transformers.js) load. Torch-free.
//
// What the written tokenizer.json holds (the same pipeline as Qwen3's):
//   normalizer NFC; pre_tokenizer Sequence[Split(Qwen2 regex, Isolated), ByteLevel(use_regex=false)];
//   decoder / post_processor ByteLevel; model BPE with
//     ids 0..255     the 256 byte symbols, ordered by their GPT-2 byte-to-unicode code point
//                    (what HF's BpeTrainer does with the ByteLevel alphabet),
//     ids 256..      one token per merge, in merge order (merge k has rank k and makes id 256 + k),
//   then the added tokens (ids after the BPE vocabulary, in the order given, as HF assigns them).
// The total vocabulary (bytes + merges + added tokens) is exactly `vocab_size`.
//
// Training (deterministic; the result depends only on the multiset of pre-tokenized pieces):
//   1. each text: invalid UTF-8 repaired (U+FFFD), added tokens cut out (they are matched before
//      anything else when encoding), NFC, split with the Qwen2 pre-tokenizer regex;
//   2. repeat: merge the adjacent pair with the highest count over all pieces; ties go to the pair
//      whose (left bytes, right bytes) is lexicographically smallest. Pairs seen fewer than
//      min_frequency times are never merged. A pair whose concatenation is already a token is
//      skipped (never merged), so every token has exactly one merge: then encoding a training piece
//      with the merges by rank reproduces the trainer's segmentation exactly (HF semantics).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/tokenizer.h"

namespace pvm {

// The Qwen3-VL added tokens used by the chat template and the processor, with Qwen3's flags
// (all normalized=false; special=true except <think> and </think>):
// <|endoftext|> <|im_start|> <|im_end|> <|vision_start|> <|vision_end|> <|vision_pad|>
// <|image_pad|> <|video_pad|> <think> </think>. Ids are left at -1 (assigned by training).
std::vector<AddedToken> qwen_vl_added_tokens();

struct TokenizerTrainOptions {
  int64_t vocab_size = 1024;  // total: 256 bytes + merges + added tokens
  int64_t min_frequency = 2;  // a pair seen fewer times is never merged
  // When the corpus runs out of pairs (all below min_frequency) before vocab_size is reached:
  // false = pvm::Error naming the shortfall; true = stop and write the smaller vocabulary.
  bool allow_smaller = false;
  std::vector<AddedToken> added_tokens = qwen_vl_added_tokens();  // ids are assigned in order
  int64_t model_max_length = 32768;  // written to tokenizer_config.json
  // Optional progress lines ("merges 500/758 ...") while training.
  std::function<void(const std::string&)> progress;
};

struct TokenizerTrainResult {
  std::string tokenizer_json;         // HF tokenizer.json text
  std::string tokenizer_config_json;  // HF tokenizer_config.json text (class, special tokens)
  int64_t vocab_size = 0;             // bytes + merges + added tokens
  int64_t merges = 0;
  std::vector<AddedToken> added_tokens;  // with their ids
  // Corpus statistics: bytes of text (added tokens excluded), pre-tokenized pieces, distinct
  // pieces, and the number of BPE tokens those pieces encode to with the learned merges.
  int64_t text_bytes = 0, pieces = 0, distinct_pieces = 0, tokens = 0;
  double train_seconds = 0;
};

// Collects piece counts from texts (add_text), then learns the merges (train).
class BpeTrainer {
 public:
  // Throws pvm::Error for bad options (vocab_size below 256 + added tokens, duplicate or empty
  // added tokens, min_frequency < 1).
  explicit BpeTrainer(TokenizerTrainOptions opt);
  ~BpeTrainer();
  BpeTrainer(BpeTrainer&&) noexcept;
  BpeTrainer& operator=(BpeTrainer&&) noexcept;

  void add_text(std::string_view text);
  int64_t texts() const;
  // Throws pvm::Error when no text was added, or (without allow_smaller) when the corpus has too
  // few frequent pairs to reach vocab_size.
  TokenizerTrainResult train() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

TokenizerTrainResult train_bpe_tokenizer(const std::vector<std::string>& texts, const TokenizerTrainOptions& opt);

// The Qwen2 pre-tokenizer split (the Split regex of Qwen's tokenizer.json, Oniguruma semantics),
// the same split pvm::Tokenizer applies. `text` must be valid UTF-8; pieces are views into it.
std::vector<std::string_view> pretokenize_qwen2(std::string_view text);

// Training texts from a file:
//   *.jsonl  one JSON object per line (blank lines skipped); each field gives one text:
//            "messages" (a list of {"role", "content"}, content a string or a list of parts whose
//            "text" strings are taken) rendered the way the chat template does
//            ("<|im_start|>ROLE\n...<|im_end|>\n" per message), "prompt" (a string, rendered as a
//            user turn plus the generation prompt, or a messages list), "solution" and "text"
//            strings as they are. "<image>" markers and image parts become
//            <|vision_start|><|image_pad|><|vision_end|>. A line that is not a JSON object, has
//            none of these fields, or has one of the wrong type is a pvm::Error "FILE:LINE: ...".
//   other    one text per line (a trailing \r dropped; empty lines skipped).
// A file with no text at all is an error naming it.
std::vector<std::string> read_training_texts(const std::string& path);

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json atomically (DIR is created).
void write_tokenizer_files(const TokenizerTrainResult& r, const std::string& dir);

}  // namespace pvm
