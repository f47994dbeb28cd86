// pvm tokenize / pvm detokenize: the byte-level BPE tokenizer from the command line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/tokenizer.h"

namespace {

std::string read_all(const std::string& path) { return pvm::read_file_to_string(path, uint64_t(1) << 30, "text"); }

pvm::Tokenizer open_tokenizer(const pvm::cli::Args& a) {
  if (a.has("--tokenizer")) return pvm::Tokenizer::load(a.get("--tokenizer"));
  std::string path = pvm::default_tokenizer_path();
  if (!pvm::path_exists(path))  // (opening it here would block on a FIFO; load() checks the type)
    throw pvm::file_error(path, "default tokenizer not found (it is committed under assets/tokenizers/qwen3; "
                                "is PVM_HOME a full checkout?), or pass --tokenizer FILE");
  return pvm::Tokenizer::load(path);
}

// "1,2,3", "1 2 3", "[1, 2, 3]" or {"ids": [...]}.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& where) {
  std::string t = text;
  size_t first = t.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (t[first] == '[' || t[first] == '{')) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(t);
    } catch (const nlohmann::json::parse_error&) {
      throw pvm::Error(where + ": not valid JSON");
    }
    if (j.is_object()) {
      if (!j.contains("ids")) throw pvm::Error(where + ": JSON object has no \"ids\"");
      j = j["ids"];
    }
    if (!j.is_array()) throw pvm::Error(where + ": expected a JSON list of ids");
    std::vector<int32_t> ids;
    for (auto& v : j) {
      if (!v.is_number_integer()) throw pvm::Error(where + ": ids must be integers");
      // An id beyond int32 would wrap to another, valid-looking id.
      if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(INT32_MAX) : (v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX))
        throw pvm::Error(where + ": id out of range: " + v.dump());
      ids.push_back(v.get<int32_t>());
    }
    return ids;
  }
  std::vector<int32_t> ids;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    ids.push_back(static_cast<int32_t>(pvm::cli::parse_int(cur, where, INT32_MIN, INT32_MAX)));
    cur.clear();
  };
  for (char c : t) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
      flush();
    else
      cur.push_back(c);
  }
  flush();
  return ids;
}

int cmd_tokenize(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--tokenizer", "--text", "--file"}, {"--json"});
  if (a.has("--text") == a.has("--file")) throw pvm::Error("give exactly one of --text STR or --file FILE");
  std::string text = a.has("--text") ? a.get("--text") : read_all(a.get("--file"));
  pvm::Tokenizer tok = open_tokenizer(a);
  std::vector<int32_t> ids = tok.encode(text);
  std::string out = a.has("--json") ? "{\"ids\":[" : "";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += a.has("--json") ? "," : " ";
    out += std::to_string(ids[i]);
  }
  if (a.has("--json")) out += "]}";
  std::printf("%s\n", out.c_str());
  return 0;
}

int cmd_detokenize(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--tokenizer", "--ids", "--file"}, {"--skip-special"});
  if (a.has("--ids") == a.has("--file")) throw pvm::Error("give exactly one of --ids \"1,2,3\" or --file FILE");
  std::vector<int32_t> ids = a.has("--ids") ? parse_ids(a.get("--ids"), "--ids")
                                            : parse_ids(read_all(a.get("--file")), a.get("--file"));
  pvm::Tokenizer tok = open_tokenizer(a);
  // An id with no token would decode to nothing: the user gave it, so it is an error, not a gap.
  for (size_t i = 0; i < ids.size(); ++i)
    if (!tok.has_id(ids[i]))
      throw pvm::Error((a.has("--ids") ? std::string("--ids") : a.get("--file")) + ": id " + std::to_string(ids[i]) +
                       " (position " + std::to_string(i) + ") is not in the vocabulary of " + tok.source() + " (" +
                       std::to_string(tok.vocab_size()) + " ids)");
  std::string text = tok.decode(ids, a.has("--skip-special"));
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

PVM_COMMAND("tokenize", "text -> token ids (byte-level BPE, tokenizer.json)",
            "[--tokenizer FILE] (--text STR | --file FILE) [--json]\n\n"
            "Prints the ids space-separated, or {\"ids\":[...]} with --json. Special tokens written in the\n"
            "text (<|im_start|> ...) are recognised; nothing is added. --tokenizer defaults to the Qwen3\n"
            "tokenizer.json in assets/tokenizers/qwen3.",
            cmd_tokenize);

PVM_COMMAND("detokenize", "token ids -> text",
            "[--tokenizer FILE] (--ids \"1,2,3\" | --file FILE) [--skip-special]\n\n"
            "--file holds {\"ids\":[...]}, a JSON list, or ids separated by commas/whitespace. Prints the\n"
            "text followed by a newline; --skip-special drops special tokens.",
            cmd_detokenize);
