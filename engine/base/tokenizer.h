// Byte-level BPE tokenizer for Hugging Face tokenizer.json files of the Qwen2 / Qwen3 kind
// (Qwen3-VL uses the same one). Torch-free, thread-safe, no template or regex engine.
//
// Supported tokenizer.json (anything else is rejected with a pvm::Error naming the file):
//   model          BPE: vocab, merges as "a b" strings or ["a","b"] pairs; dropout null/0;
//                  continuing_subword_prefix / end_of_word_suffix empty; byte_fallback false;
//                  optional unk_token and ignore_merges.
//   normalizer     null, NFC, or a Sequence of those.
//   pre_tokenizer  Sequence[Split(Qwen2 regex, Isolated, invert=false), ByteLevel(use_regex=false)]
//                  or ByteLevel alone (use_regex=true: the GPT-2 regex; false: no split);
//                  add_prefix_space=false.
//                  Both regexes are implemented by hand with Oniguruma semantics (what HF uses):
//                  \p{L}, \p{N} are Unicode general categories, \s is Unicode White_Space
//                  (so U+0085 is a space and U+FEFF is not), and (?i:'s...) also matches 'ſ.
//   decoder        ByteLevel.   post_processor: ignored (encode never adds special tokens).
//   added_tokens   matched before anything else, leftmost then longest; `normalized=false` ones
//                  in the raw text, `normalized=true` ones in the NFC text; lstrip / rstrip
//                  swallow neighbouring White_Space; single_word matches only between non-word
//                  characters (a word character is a letter, a number or '_').
//
// Invalid UTF-8 input to encode(): each maximal invalid subsequence becomes one U+FFFD, exactly
// as the WHATWG TextDecoder (JS, fatal=false) and Rust's from_utf8_lossy do, before anything
// else. A leading U+FEFF is text like any other (not stripped).
//
// decode(): bytes of the tokens are concatenated and the result is repaired the same way, so a
// token list that cuts a multi-byte character yields U+FFFD. Ids with no token (a model's
// embedding table is often larger than the vocabulary) decode to nothing, as in HF; negative
// ids throw. `pvm detokenize` is stricter: an id with no token is an error there (has_id()), and
// `pvm generate` warns with a count when the model produced such ids.
//
// Load checks: besides the JSON structure, all 256 byte tokens must be in the vocabulary (else
// encode could not spell every byte and would drop it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pvm {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

class Tokenizer {
 public:
  // Load an HF tokenizer.json. Errors (missing/unreadable file, bad JSON, unsupported kind) are
  // pvm::Error "<path>: <problem>".
  static Tokenizer load(const std::string& path);
  // Same from JSON text; `where` names the source in error messages.
  static Tokenizer from_json(std::string_view json_text, const std::string& where);

  Tokenizer(const Tokenizer&) = default;  // copies share the (thread-safe) word cache
  Tokenizer& operator=(const Tokenizer&) = default;
  Tokenizer(Tokenizer&&) noexcept = default;
  Tokenizer& operator=(Tokenizer&&) noexcept = default;
  ~Tokenizer();

  // Plain encoding (no BOS/EOS or other post-processing); added and special tokens written in
  // the text are recognised, as HF `encode(text, add_special_tokens=False)` does.
  std::vector<int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<int32_t>& out) const;

  // Inverse of encode (up to NFC). skip_special drops tokens marked "special" in added_tokens.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  int32_t token_id(const std::string& token) const;  // throws pvm::Error if absent
  std::optional<int32_t> find_token(const std::string& token) const;
  // The token as written in the vocabulary (byte-level form, e.g. "Ġworld"); throws if unknown.
  std::string token_text(int32_t id) const;
  // The raw bytes the token stands for (" world"); may be a fragment of a UTF-8 character.
  std::string token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;  // an added token with special=true
  bool has_id(int32_t id) const;

  // Highest id + 1 over vocab and added tokens (151669 for Qwen3; the model's embedding table
  // may be larger).
  size_t vocab_size() const;
  const std::vector<AddedToken>& added_tokens() const;
  const std::string& source() const;  // path or `where` given at load

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// <source_dir>/assets/tokenizers/qwen3/tokenizer.json: the Qwen3 tokenizer committed with the
// sources (pvm::source_dir(), PVM_HOME overrides).
std::string default_tokenizer_path();

}  // namespace pvm
