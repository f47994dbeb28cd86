// pvm tokenizer-train: learn a small byte-level BPE tokenizer from JSONL / text corpora and write
// an HF tokenizer.json + tokenizer_config.json (engine/base/tokenizer_train.h).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/tokenizer.h"
#include "engine/base/tokenizer_train.h"

namespace {

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--input", "--vocab-size", "--out", "--min-frequency"}, {"--allow-smaller", "--json", "--quiet"});
  if (!a.positional().empty()) throw pvm::Error("unexpected argument '" + a.positional()[0] + "' (inputs go after --input)");
  std::vector<std::string> inputs = a.all("--input");
  if (inputs.empty()) throw pvm::Error("missing required option --input (a .jsonl or text file; may be repeated)");
  const std::string out = a.require("--out");
  pvm::TokenizerTrainOptions opt;
  opt.vocab_size = a.get_int("--vocab-size", 1024, 1, 1 << 24);
  opt.min_frequency = a.get_int("--min-frequency", 2, 1, INT32_MAX);
  opt.allow_smaller = a.has("--allow-smaller");
  const bool quiet = a.has("--quiet") || a.has("--json");
  if (!quiet) opt.progress = [](const std::string& s) { std::fprintf(stderr, "  %s\n", s.c_str()); };
  if (pvm::path_exists(out) && !pvm::is_directory(out)) throw pvm::file_error(out, "--out exists and is not a directory");

  pvm::BpeTrainer trainer(opt);  // validates the options before any file is read
  for (const std::string& in : inputs) {
    std::vector<std::string> texts = pvm::read_training_texts(in);
    int64_t bytes = 0;
    for (const std::string& t : texts) {
      bytes += static_cast<int64_t>(t.size());
      trainer.add_text(t);
    }
    if (!quiet) std::fprintf(stderr, "read %s: %zu texts, %lld bytes\n", in.c_str(), texts.size(), (long long)bytes);
  }
  if (!quiet) std::fprintf(stderr, "training: vocab size %lld ...\n", (long long)opt.vocab_size);
  pvm::TokenizerTrainResult r = trainer.train();
  if (r.vocab_size < opt.vocab_size)
    std::fprintf(stderr,
                 "note: every pair seen at least %lld times is merged; the vocabulary stops at %lld of the %lld "
                 "asked for (--allow-smaller)\n",
                 (long long)opt.min_frequency, (long long)r.vocab_size, (long long)opt.vocab_size);
  pvm::write_tokenizer_files(r, out);

  // Self-check: the written file loads with the project's tokenizer and has the expected ids.
  const std::string tok_path = pvm::join_path(out, "tokenizer.json");
  pvm::Tokenizer tok = pvm::Tokenizer::load(tok_path);
  if (static_cast<int64_t>(tok.vocab_size()) != r.vocab_size)
    throw pvm::file_error(tok_path, "written vocabulary has " + std::to_string(tok.vocab_size()) + " ids, expected " +
                                        std::to_string(r.vocab_size));
  for (const pvm::AddedToken& t : r.added_tokens)
    if (tok.token_id(t.content) != t.id) throw pvm::file_error(tok_path, "added token '" + t.content + "' has the wrong id");

  const double bpt = r.tokens ? static_cast<double>(r.text_bytes) / static_cast<double>(r.tokens) : 0.0;
  if (a.has("--json")) {
    nlohmann::ordered_json j;
    j["tokenizer"] = tok_path;
    j["vocab_size"] = r.vocab_size;
    j["merges"] = r.merges;
    j["text_bytes"] = r.text_bytes;
    j["pieces"] = r.pieces;
    j["distinct_pieces"] = r.distinct_pieces;
    j["tokens"] = r.tokens;
    j["bytes_per_token"] = bpt;
    j["train_seconds"] = r.train_seconds;
    nlohmann::ordered_json ids = nlohmann::ordered_json::object();
    for (const pvm::AddedToken& t : r.added_tokens) ids[t.content] = t.id;
    j["added_tokens"] = ids;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("wrote %s and tokenizer_config.json: vocab %lld (256 bytes + %lld merges + %zu added tokens)\n",
                tok_path.c_str(), (long long)r.vocab_size, (long long)r.merges, r.added_tokens.size());
    std::printf("corpus: %lld bytes, %lld pieces (%lld distinct) -> %lld tokens, %.2f bytes/token; trained in %.2f s\n",
                (long long)r.text_bytes, (long long)r.pieces, (long long)r.distinct_pieces, (long long)r.tokens, bpt,
                r.train_seconds);
    std::printf("added token ids:");
    for (const pvm::AddedToken& t : r.added_tokens) std::printf(" %s=%d", t.content.c_str(), t.id);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

PVM_COMMAND("tokenizer-train", "learn a byte-level BPE tokenizer.json from text",
            "--input FILE.jsonl|FILE.txt [--input ...] --out DIR [--vocab-size N] [--min-frequency K]\n"
            "    [--allow-smaller] [--json] [--quiet]\n\n"
            "Writes DIR/tokenizer.json (HF format, Qwen2 pre-tokenizer, byte-level BPE) and tokenizer_config.json.\n"
            "N (default 1024) is the whole vocabulary: 256 byte tokens + merges + the 10 Qwen3-VL added tokens\n"
            "(<|endoftext|> <|im_start|> <|im_end|> <|vision_start|> <|vision_end|> <|vision_pad|> <|image_pad|>\n"
            "<|video_pad|> <think> </think>, ids N-10 .. N-1). JSONL lines give \"messages\" (rendered as the chat\n"
            "template does), \"prompt\", \"solution\" and \"text\"; other files give one text per line. Pairs seen\n"
            "fewer than K (default 2) times are not merged; if that leaves the vocabulary short of N it is an\n"
            "error unless --allow-smaller. Deterministic: the same texts give the same bytes.",
            run);
