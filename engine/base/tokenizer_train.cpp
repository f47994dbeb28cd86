#include "engine/base/tokenizer_train.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/tokenizer_text.h"

namespace pvm {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using text::kQwen2Pattern;
using text::match_qwen2;

// GPT-2 byte -> unicode code point (printable bytes map to themselves, the rest to 256 + k).
std::array<uint32_t, 256> byte_to_cp() {
  std::array<uint32_t, 256> m{};
  uint32_t extra = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m[static_cast<size_t>(b)] = printable ? static_cast<uint32_t>(b) : extra++;
  }
  return m;
}

std::string byte_level(std::string_view bytes) {
  static const std::array<uint32_t, 256> m = byte_to_cp();
  std::string s;
  for (unsigned char b : bytes) text::utf8_append(s, m[b]);
  return s;
}

template <class F>
void for_each_piece(std::string_view s, F&& f) {
  if (s.empty()) return;
  thread_local std::vector<uint32_t> cps, offs;
  thread_local std::vector<uint8_t> cls;
  const uint8_t* table = text::class_table();
  cps.resize(s.size() + 1);
  cls.resize(s.size() + 1);
  offs.resize(s.size() + 1);
  size_t i = 0, n = 0;
  while (i < s.size()) {
    offs[n] = static_cast<uint32_t>(i);
    uint32_t c = text::utf8_next(s.data(), i);
    cps[n] = c;
    cls[n] = table[c];
    ++n;
  }
  offs[n] = static_cast<uint32_t>(s.size());
  size_t p = 0;
  while (p < n) {
    size_t e = match_qwen2(cps.data(), cls.data(), n, p);
    f(s.substr(offs[p], offs[e] - offs[p]));
    p = e;
  }
}

// Pair of token ids as one hash key.
inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
inline int32_t key_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
inline int32_t key_right(uint64_t k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }

struct KeyHash {
  size_t operator()(uint64_t k) const {
    k *= 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(k ^ (k >> 29));
  }
};

std::string fmt_count(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

}  // namespace

std::vector<AddedToken> qwen_vl_added_tokens() {
  std::vector<AddedToken> out;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                        "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"}) {
    AddedToken t;
    t.content = s;
    t.special = true;
    out.push_back(t);
  }
  for (const char* s : {"<think>", "</think>"}) {
    AddedToken t;
    t.content = s;
    t.special = false;  // as in Qwen3's tokenizer.json: kept by decode(skip_special_tokens=True)
    out.push_back(t);
  }
  return out;
}

std::vector<std::string_view> pretokenize_qwen2(std::string_view text) {
  std::vector<std::string_view> out;
  for_each_piece(text, [&](std::string_view p) { out.push_back(p); });
  return out;
}

// =============================================================================================
// Trainer
// =============================================================================================

struct BpeTrainer::Impl {
  TokenizerTrainOptions opt;
  std::unordered_map<std::string, int64_t> counts;  // piece bytes -> occurrences
  int64_t n_texts = 0, text_bytes = 0, pieces = 0;
  std::array<bool, 256> added_first{};  // first bytes of added tokens (fast skip)

  void count_section(std::string_view s) {
    if (s.empty()) return;
    std::string normed;
    if (text::nfc_if_needed(s, normed)) s = normed;
    text_bytes += static_cast<int64_t>(s.size());
    for_each_piece(s, [&](std::string_view p) {
      ++counts[std::string(p)];
      ++pieces;
    });
  }

  // Cut added tokens out (leftmost, then longest, as pvm::Tokenizer matches them), count the rest.
  void add(std::string_view input) {
    ++n_texts;
    std::string fixed;
    std::string_view s = input;
    if (!text::utf8_valid(s)) {
      fixed = text::utf8_sanitize(s);
      s = fixed;
    }
    size_t sect = 0, pos = 0;
    while (pos < s.size()) {
      if (!added_first[static_cast<unsigned char>(s[pos])]) {
        ++pos;
        continue;
      }
      size_t best = 0;
      for (const AddedToken& t : opt.added_tokens)
        if (t.content.size() > best && s.compare(pos, t.content.size(), t.content) == 0) best = t.content.size();
      if (best == 0) {
        ++pos;
        continue;
      }
      count_section(s.substr(sect, pos - sect));
      pos += best;
      sect = pos;
    }
    count_section(s.substr(sect));
  }

  TokenizerTrainResult train() const;
};

BpeTrainer::BpeTrainer(TokenizerTrainOptions opt) : impl_(std::make_unique<Impl>()) {
  const int64_t n_added = static_cast<int64_t>(opt.added_tokens.size());
  if (opt.vocab_size < 256 + n_added)
    throw Error("tokenizer training: vocab size " + std::to_string(opt.vocab_size) + " is below 256 byte tokens + " +
                std::to_string(n_added) + " added tokens = " + std::to_string(256 + n_added));
  if (opt.vocab_size > (1 << 20))
    throw Error("tokenizer training: vocab size " + std::to_string(opt.vocab_size) + " is above the limit 1048576");
  if (opt.min_frequency < 1)
    throw Error("tokenizer training: min frequency must be >= 1, got " + std::to_string(opt.min_frequency));
  for (size_t i = 0; i < opt.added_tokens.size(); ++i) {
    const AddedToken& t = opt.added_tokens[i];
    if (t.content.empty()) throw Error("tokenizer training: added token " + std::to_string(i) + " is empty");
    if (!text::utf8_valid(t.content))
      throw Error("tokenizer training: added token " + std::to_string(i) + " is not valid UTF-8");
    if (t.normalized || t.lstrip || t.rstrip || t.single_word)
      throw Error("tokenizer training: added token '" + t.content +
                  "': only normalized=false without lstrip/rstrip/single_word is supported");
    for (size_t j = 0; j < i; ++j)
      if (opt.added_tokens[j].content == t.content)
        throw Error("tokenizer training: added token '" + t.content + "' is listed twice");
    impl_->added_first[static_cast<unsigned char>(t.content[0])] = true;
  }
  impl_->opt = std::move(opt);
}

BpeTrainer::~BpeTrainer() = default;
BpeTrainer::BpeTrainer(BpeTrainer&&) noexcept = default;
BpeTrainer& BpeTrainer::operator=(BpeTrainer&&) noexcept = default;

void BpeTrainer::add_text(std::string_view text) { impl_->add(text); }
int64_t BpeTrainer::texts() const { return impl_->n_texts; }
TokenizerTrainResult BpeTrainer::train() const { return impl_->train(); }

TokenizerTrainResult BpeTrainer::Impl::train() const {
  const auto t0 = std::chrono::steady_clock::now();
  if (counts.empty()) throw Error("tokenizer training: no training text (every text was empty or only added tokens)");
  const int64_t n_added = static_cast<int64_t>(opt.added_tokens.size());
  const int64_t target = opt.vocab_size - n_added;  // bytes + merges

  // Byte symbols: ids in the order of their byte-level code points (HF BpeTrainer's alphabet order).
  const std::array<uint32_t, 256> b2cp = byte_to_cp();
  std::array<int, 256> order{};
  for (int b = 0; b < 256; ++b) order[static_cast<size_t>(b)] = b;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return b2cp[static_cast<size_t>(x)] < b2cp[static_cast<size_t>(y)]; });
  std::array<int32_t, 256> byte_id{};
  std::vector<std::string> tok;  // id -> raw bytes
  std::unordered_map<std::string, int32_t> tok_index;
  for (int i = 0; i < 256; ++i) {
    byte_id[static_cast<size_t>(order[static_cast<size_t>(i)])] = i;
    tok.emplace_back(1, static_cast<char>(order[static_cast<size_t>(i)]));
    tok_index[tok.back()] = i;
  }

  // Distinct pieces, sorted by bytes so that everything below is independent of hash order.
  std::vector<std::pair<std::string_view, int64_t>> sorted;
  sorted.reserve(counts.size());
  for (const auto& [k, v] : counts) sorted.emplace_back(k, v);
  std::sort(sorted.begin(), sorted.end());
  const size_t W = sorted.size();
  std::vector<std::vector<int32_t>> words(W);
  std::vector<int64_t> wcount(W);
  for (size_t w = 0; w < W; ++w) {
    for (unsigned char b : sorted[w].first) words[w].push_back(byte_id[b]);
    wcount[w] = sorted[w].second;
  }

  std::unordered_map<uint64_t, int64_t, KeyHash> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>, KeyHash> pair_words;  // words holding the pair
  for (size_t w = 0; w < W; ++w) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count[k] += wcount[w];
      auto& list = pair_words[k];
      if (list.empty() || list.back() != static_cast<int32_t>(w)) list.push_back(static_cast<int32_t>(w));
    }
  }

  // Max-heap on (count, then smallest (left bytes, right bytes)); entries may be stale (lazy).
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  auto worse = [&tok](const Entry& x, const Entry& y) {  // true when x ranks below y
    if (x.count != y.count) return x.count < y.count;
    const std::string& xa = tok[static_cast<size_t>(key_left(x.key))];
    const std::string& ya = tok[static_cast<size_t>(key_left(y.key))];
    int c = xa.compare(ya);
    if (c != 0) return c > 0;
    return tok[static_cast<size_t>(key_right(x.key))] > tok[static_cast<size_t>(key_right(y.key))];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int32_t> merged_syms;
  std::vector<uint64_t> new_pairs;
  const int64_t want_merges = target - 256;
  int64_t next_report = std::max<int64_t>(1, want_merges / 10);
  while (static_cast<int64_t>(tok.size()) < target && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    auto it = pair_count.find(top.key);
    int64_t cur = it == pair_count.end() ? 0 : it->second;
    if (cur != top.count) {  // stale: counts of existing pairs only go down
      if (cur > 0) heap.push({cur, top.key});
      continue;
    }
    if (cur < opt.min_frequency) break;
    const int32_t a = key_left(top.key), b = key_right(top.key);
    std::string joined = tok[static_cast<size_t>(a)] + tok[static_cast<size_t>(b)];
    if (tok_index.count(joined)) {
      pair_count.erase(it);  // never merged: the token exists already (see header)
      continue;
    }
    const auto c = static_cast<int32_t>(tok.size());
    tok.push_back(joined);
    tok_index.emplace(std::move(joined), c);
    merges.emplace_back(a, b);

    // Re-segment every word holding (a, b): drop its old pairs, merge left to right, add the new.
    std::vector<int32_t> affected;
    affected.swap(pair_words[top.key]);
    new_pairs.clear();
    for (int32_t wi : affected) {
      auto& s = words[static_cast<size_t>(wi)];
      const int64_t wc = wcount[static_cast<size_t>(wi)];
      bool found = false;
      for (size_t i = 0; i + 1 < s.size() && !found; ++i) found = s[i] == a && s[i + 1] == b;
      if (!found) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        auto pc = pair_count.find(pair_key(s[i], s[i + 1]));
        if (pc != pair_count.end()) pc->second -= wc;
      }
      merged_syms.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged_syms.push_back(c);
          ++i;
        } else {
          merged_syms.push_back(s[i]);
        }
      }
      s.swap(merged_syms);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t k = pair_key(s[i], s[i + 1]);
        pair_count[k] += wc;
        if (s[i] == c || s[i + 1] == c) {
          auto& list = pair_words[k];
          if (list.empty() || list.back() != wi) list.push_back(wi);
          new_pairs.push_back(k);
        }
      }
    }
    pair_count.erase(top.key);
    pair_words.erase(top.key);
    std::sort(new_pairs.begin(), new_pairs.end());
    new_pairs.erase(std::unique(new_pairs.begin(), new_pairs.end()), new_pairs.end());
    for (uint64_t k : new_pairs) heap.push({pair_count[k], k});

    const auto done = static_cast<int64_t>(merges.size());
    if (opt.progress && (done >= next_report || done == want_merges)) {
      opt.progress("merges " + std::to_string(done) + "/" + std::to_string(want_merges) + " (last: count " +
                   fmt_count(cur) + ", " + std::to_string(tok.back().size()) + " bytes)");
      next_report += std::max<int64_t>(1, want_merges / 10);
    }
  }
  if (static_cast<int64_t>(tok.size()) < target && !opt.allow_smaller)
    throw Error("tokenizer training: the corpus yields only " + std::to_string(merges.size()) +
                " merges with pairs seen at least " + std::to_string(opt.min_frequency) + " times, " +
                std::to_string(want_merges) + " are needed for vocab size " + std::to_string(opt.vocab_size) +
                " (give more text or a smaller vocab size)");

  TokenizerTrainResult r;
  r.merges = static_cast<int64_t>(merges.size());
  r.vocab_size = static_cast<int64_t>(tok.size()) + n_added;
  r.text_bytes = text_bytes;
  r.pieces = pieces;
  r.distinct_pieces = static_cast<int64_t>(W);
  for (size_t w = 0; w < W; ++w) r.tokens += wcount[w] * static_cast<int64_t>(words[w].size());
  r.added_tokens = opt.added_tokens;
  for (int64_t i = 0; i < n_added; ++i) r.added_tokens[static_cast<size_t>(i)].id = static_cast<int32_t>(tok.size() + i);

  // ---- tokenizer.json (written by hand: one vocab entry / merge per line, stable key order) ----
  auto q = [](const std::string& s) { return json(s).dump(); };
  auto added_json = [](const AddedToken& t) {
    ojson a;
    a["id"] = t.id;
    a["content"] = t.content;
    a["single_word"] = t.single_word;
    a["lstrip"] = t.lstrip;
    a["rstrip"] = t.rstrip;
    a["normalized"] = t.normalized;
    a["special"] = t.special;
    return a;
  };
  std::string o;
  o.reserve(tok.size() * 48 + 4096);
  o += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  for (size_t i = 0; i < r.added_tokens.size(); ++i) {
    o += i ? ",\n    " : "\n    ";
    o += added_json(r.added_tokens[i]).dump();
  }
  o += r.added_tokens.empty() ? "],\n" : "\n  ],\n";
  o += "  \"normalizer\": {\"type\": \"NFC\"},\n";
  o += "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": " +
       q(kQwen2Pattern) +
       "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
       "\"trim_offsets\": false, \"use_regex\": false}]},\n";
  o += "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false},\n";
  o += "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false},\n";
  o += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
       "    \"continuing_subword_prefix\": \"\",\n    \"end_of_word_suffix\": \"\",\n    \"fuse_unk\": false,\n"
       "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {";
  for (size_t i = 0; i < tok.size(); ++i) {
    o += i ? ",\n      " : "\n      ";
    o += q(byte_level(tok[i])) + ": " + std::to_string(i);
  }
  o += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < merges.size(); ++i) {
    o += i ? ",\n      [" : "\n      [";
    o += q(byte_level(tok[static_cast<size_t>(merges[i].first)])) + ", " +
         q(byte_level(tok[static_cast<size_t>(merges[i].second)])) + "]";
  }
  o += merges.empty() ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n";
  r.tokenizer_json = std::move(o);

  // ---- tokenizer_config.json (what transformers / transformers.js read besides tokenizer.json) ----
  ojson cfg;
  cfg["add_bos_token"] = false;
  cfg["add_prefix_space"] = false;
  ojson dec = ojson::object();
  std::vector<std::string> extra_special;
  auto find_added = [&](const char* s) -> const AddedToken* {
    for (const AddedToken& t : r.added_tokens)
      if (t.content == s) return &t;
    return nullptr;
  };
  for (const AddedToken& t : r.added_tokens) {
    ojson a = added_json(t);
    a.erase("id");
    dec[std::to_string(t.id)] = a;
    if (t.special && t.content != "<|endoftext|>") extra_special.push_back(t.content);
  }
  cfg["added_tokens_decoder"] = dec;
  cfg["additional_special_tokens"] = extra_special;
  cfg["bos_token"] = nullptr;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["eos_token"] = find_added("<|im_end|>") ? ojson("<|im_end|>") : ojson(nullptr);
  cfg["errors"] = "replace";
  cfg["model_max_length"] = opt.model_max_length;
  cfg["pad_token"] = find_added("<|endoftext|>") ? ojson("<|endoftext|>") : ojson(nullptr);
  cfg["split_special_tokens"] = false;
  cfg["tokenizer_class"] = "Qwen2Tokenizer";
  cfg["unk_token"] = nullptr;
  r.tokenizer_config_json = cfg.dump(2) + "\n";

  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

TokenizerTrainResult train_bpe_tokenizer(const std::vector<std::string>& texts, const TokenizerTrainOptions& opt) {
  BpeTrainer t(opt);
  for (const std::string& s : texts) t.add_text(s);
  return t.train();
}

// =============================================================================================
// Corpus files
// =============================================================================================

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t p = 0;
  while ((p = s.find(from, p)) != std::string::npos) {
    s.replace(p, from.size(), to);
    p += to.size();
  }
}

struct LineCtx {
  std::string where;  // "FILE:LINE"
  [[noreturn]] void fail(const std::string& what) const { throw Error(where + ": " + what); }
};

// A messages list rendered as the chat template renders it (docs/MODEL.md#chat-template-and-stop-tokens).
std::string render_messages(const json& msgs, const LineCtx& ctx, const std::string& field) {
  if (!msgs.is_array()) ctx.fail("\"" + field + "\" must be a list of messages");
  std::string out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!m.is_object()) ctx.fail(at + " is not an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) ctx.fail(at + " has no \"role\" string");
    std::string body;
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
    } else if (content->is_string()) {
      body = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t k = 0; k < content->size(); ++k) {
        const json& p = (*content)[k];
        if (p.is_string()) {
          body += p.get<std::string>();
          continue;
        }
        if (!p.is_object()) ctx.fail(at + ".content[" + std::to_string(k) + "] is not a text or image part");
        auto t = p.find("text");
        auto ty = p.find("type");
        if (t != p.end() && t->is_string()) {
          body += t->get<std::string>();
        } else if (ty != p.end() && ty->is_string() && (*ty == "image" || *ty == "image_url")) {
          body += "<image>";
        } else {
          ctx.fail(at + ".content[" + std::to_string(k) + "] is not a text or image part");
        }
      }
    } else {
      ctx.fail(at + ".content must be a string or a list of parts");
    }
    out += "<|im_start|>" + role->get<std::string>() + "\n" + body + "<|im_end|>\n";
  }
  return out;
}

// The texts of one JSONL record, each field on its own (no false boundaries between them).
void texts_of_record(const json& j, const LineCtx& ctx, std::vector<std::string>& out) {
  if (!j.is_object()) ctx.fail("expected a JSON object");
  const size_t first = out.size();
  if (auto m = j.find("messages"); m != j.end()) out.push_back(render_messages(*m, ctx, "messages"));
  if (auto p = j.find("prompt"); p != j.end()) {
    if (p->is_string()) out.push_back("<|im_start|>user\n" + p->get<std::string>() + "<|im_end|>\n<|im_start|>assistant\n");
    else if (p->is_array()) out.push_back(render_messages(*p, ctx, "prompt") + "<|im_start|>assistant\n");
    else ctx.fail("\"prompt\" must be a string or a list of messages");
  }
  for (const char* key : {"solution", "text"}) {
    auto s = j.find(key);
    if (s == j.end()) continue;
    if (!s->is_string()) ctx.fail(std::string("\"") + key + "\" must be a string");
    out.push_back(s->get<std::string>());
  }
  if (out.size() == first) ctx.fail("no text field (messages, prompt, solution or text)");
  for (size_t i = first; i < out.size(); ++i) replace_all(out[i], "<image>", "<|vision_start|><|image_pad|><|vision_end|>");
}

bool ends_with(const std::string& s, const char* suf) {
  size_t n = std::strlen(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

}  // namespace

std::vector<std::string> read_training_texts(const std::string& path) {
  const std::string data = read_file_to_string(path, uint64_t(4) << 30);
  const bool jsonl = ends_with(path, ".jsonl") || ends_with(path, ".JSONL");
  std::vector<std::string> texts;
  size_t pos = 0, line_no = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) nl = data.size();
    std::string_view line(data.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (jsonl) {
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      LineCtx ctx{path + ":" + std::to_string(line_no)};
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& e) {
        std::string msg = e.what();
        auto nlp = msg.find('\n');
        if (nlp != std::string::npos) msg.resize(nlp);
        ctx.fail("not valid JSON (" + msg + ")");
      }
      texts_of_record(j, ctx, texts);
    } else if (!line.empty()) {
      texts.emplace_back(line);
    }
  }
  if (texts.empty()) throw file_error(path, "no training text in the file (empty?)");
  return texts;
}

void write_tokenizer_files(const TokenizerTrainResult& r, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !is_directory(dir)) throw file_error(dir, "cannot create the output directory (" + ec.message() + ")");
  atomic_write_file(join_path(dir, "tokenizer.json"), r.tokenizer_json);
  atomic_write_file(join_path(dir, "tokenizer_config.json"), r.tokenizer_config_json);
}

}  // namespace pvm
