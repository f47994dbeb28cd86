#include "engine/train_data.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/hash.h"

namespace pvm::train {

using nlohmann::json;

void BadLinePolicy::report(const std::string& msg) const {
  if (fatal) throw Error(msg);
  if (warn) warn(msg);
  else std::fprintf(stderr, "warning: %s (line skipped)\n", msg.c_str());
}

void BadLinePolicy::summary(const std::string& path, int64_t skipped, int64_t total, const std::string& unit,
                            const std::string& option) const {
  if (skipped <= 0) return;
  std::string m = path + ": skipped " + std::to_string(skipped) + " of " + std::to_string(total) + " " + unit +
                  " (bad lines or images, listed above; " + option + " stops at the first)";
  if (warn) warn(m);
  else std::fprintf(stderr, "warning: %s\n", m.c_str());
}

int64_t ImageValidator::tokens(const std::string& path) {
  auto it = cache_.find(path);
  if (it == cache_.end()) {
    std::pair<int64_t, std::string> r{0, ""};
    try {
      ImageRGB img = load_image(path);  // full decode + check_image_size
      auto [rh, rw] = smart_resize(img.height, img.width, pp_.factor(), pp_.min_pixels, pp_.max_pixels);
      r.first = (rh / pp_.patch_size) * (rw / pp_.patch_size) / (pp_.merge_size * pp_.merge_size);
    } catch (const Error& e) {
      std::string m = e.what();
      r.second = m.rfind(path, 0) == 0 ? m : path + ": " + m;
    }
    it = cache_.emplace(path, std::move(r)).first;
  }
  if (!it->second.second.empty()) throw Error(it->second.second);
  return it->second.first;
}

namespace {

std::string resolve_path(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return join_path(base_dir, p);
}

// "text <image> more" -> parts; markers count images in order.
void split_markers(const std::string& text, std::vector<ChatItemPart>& parts, int& next_image) {
  static const std::string kMarker = "<image>";
  size_t p = 0;
  while (true) {
    size_t q = text.find(kMarker, p);
    std::string chunk = text.substr(p, q == std::string::npos ? std::string::npos : q - p);
    if (!chunk.empty()) parts.push_back({false, chunk, -1});
    if (q == std::string::npos) break;
    parts.push_back({true, "", next_image++});
    p = q + kMarker.size();
  }
}

std::vector<std::string> read_images(const json& j, const std::string& where, const std::string& base_dir) {
  std::vector<std::string> out;
  auto it = j.find("images");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) throw Error(where + ": \"images\" must be a list of paths");
  for (auto& p : *it) {
    if (!p.is_string() || p.get<std::string>().empty()) throw Error(where + ": \"images\" entries must be non-empty strings");
    auto path = resolve_path(base_dir, p.get<std::string>());
    if (!is_regular_file(path))
      throw Error(where + (path_exists(path) ? ": image " + path + " is not a regular file (a folder, FIFO or device)"
                                             : ": image not found: " + path));
    out.push_back(path);
  }
  return out;
}

json parse_json_line(const std::string& line, const std::string& where) {
  try {
    auto j = json::parse(line);
    if (!j.is_object()) throw Error(where + ": expected a JSON object");
    return j;
  } catch (const json::exception& e) {
    std::string m = e.what();
    auto b = m.find(']');
    throw Error(where + ": bad JSON (" + (b == std::string::npos ? m : m.substr(b + 2)) + ")");
  }
}

template <class R>
std::vector<R> read_lines(const std::string& path, const BadLinePolicy& policy,
                          R (*parse)(const std::string&, const std::string&, const std::string&)) {
  InputFile f(path, "data");  // a FIFO, device or folder is refused, not waited on
  std::vector<R> out;
  std::string line, base = parent_dir(path);
  int64_t n = 0, bad = 0;
  while (std::getline(f.stream(), line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are allowed
    std::string where = path + ":" + std::to_string(n);
    try {
      out.push_back(parse(line, where, base));
    } catch (const Error& e) {
      ++bad;
      policy.report(e.what());
    }
  }
  f.finish();
  if (out.empty())
    throw file_error(path, "no usable line (" + std::to_string(n) + " lines, " + std::to_string(bad) + " bad)");
  return out;
}

}  // namespace

SftRecord parse_sft_line(const std::string& line, const std::string& where, const std::string& base_dir) {
  json j = parse_json_line(line, where);
  SftRecord r;
  r.where = where;
  auto it = j.find("messages");
  if (it == j.end() || !it->is_array() || it->empty()) throw Error(where + ": needs a non-empty \"messages\" list");
  r.images = read_images(j, where, base_dir);
  int next_image = 0;
  bool has_assistant = false;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    std::string mw = where + ": messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
      throw Error(mw + " needs \"role\" and \"content\"");
    ChatItemMessage msg;
    msg.role = m["role"];
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
      throw Error(mw + ": unsupported role \"" + msg.role + "\" (system, user, assistant)");
    if (msg.role == "system" && i != 0) throw Error(mw + ": a system message must come first");
    const json& c = m["content"];
    if (c.is_string()) {
      split_markers(c.get<std::string>(), msg.parts, next_image);
    } else if (c.is_array()) {
      for (auto& p : c) {
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
          throw Error(mw + ": content parts need a \"type\"");
        std::string t = p["type"];
        if (t == "image") {
          msg.parts.push_back({true, "", next_image++});
        } else if (t == "text") {
          if (!p.contains("text") || !p["text"].is_string()) throw Error(mw + ": text part needs a string \"text\"");
          if (p["text"].get<std::string>().find("<image>") != std::string::npos)
            throw Error(mw + ": \"<image>\" marker inside a content list (use an {\"type\": \"image\"} part)");
          msg.parts.push_back({false, p["text"].get<std::string>(), -1});
        } else {
          throw Error(mw + ": unsupported content type \"" + t + "\" (text, image)");
        }
      }
    } else {
      throw Error(mw + ": content must be a string or a list of parts");
    }
    bool has_image = std::any_of(msg.parts.begin(), msg.parts.end(), [](auto& p) { return p.image; });
    if (has_image && msg.role != "user") throw Error(mw + ": images are only supported in user messages");
    if (msg.role == "assistant") {
      // An empty answer would teach the model to stop at once: a bad sample (bad_lines policy:
      // a warning and a count in the load summary, or the first error when fatal).
      const bool empty = std::all_of(msg.parts.begin(), msg.parts.end(), [](const ChatItemPart& p) {
        return p.text.find_first_not_of(" \t\r\n") == std::string::npos;
      });
      if (empty) throw Error(mw + ": empty assistant turn (nothing to learn but stopping at once)");
      has_assistant = true;
    }
    r.messages.push_back(std::move(msg));
  }
  if (!has_assistant) throw Error(where + ": no assistant message (nothing to learn)");
  if (next_image != (int)r.images.size())
    throw Error(where + ": " + std::to_string(next_image) + " image markers/parts but " + std::to_string(r.images.size()) +
                " images listed");
  return r;
}

GrpoRecord parse_grpo_line(const std::string& line, const std::string& where, const std::string& base_dir) {
  json j = parse_json_line(line, where);
  GrpoRecord r;
  r.where = where;
  if (!j.contains("prompt") || !j["prompt"].is_string()) throw Error(where + ": needs a string \"prompt\"");
  if (!j.contains("solution") || !(j["solution"].is_string() || j["solution"].is_number()))
    throw Error(where + ": needs a \"solution\" (string or number)");
  r.solution = j["solution"].is_string() ? j["solution"].get<std::string>() : j["solution"].dump();
  if (r.solution.find_first_not_of(" \t\r\n") == std::string::npos) throw Error(where + ": empty \"solution\" (nothing to grade against)");
  r.images = read_images(j, where, base_dir);
  std::string text = j["prompt"];
  int next_image = 0;
  std::vector<ChatItemPart> parts;
  split_markers(text, parts, next_image);
  if (next_image == 0) {
    // No markers: images first, then the text (as Pipeline::prepare does).
    for (int i = 0; i < (int)r.images.size(); ++i) r.parts.push_back({true, "", i});
    r.parts.insert(r.parts.end(), parts.begin(), parts.end());
  } else {
    if (next_image != (int)r.images.size())
      throw Error(where + ": " + std::to_string(next_image) + " <image> markers but " + std::to_string(r.images.size()) +
                  " images listed");
    r.parts = parts;
  }
  for (auto& p : r.parts)
    if (!p.image) r.prompt += p.text;
  return r;
}

std::vector<SftRecord> read_sft_jsonl(const std::string& path, const BadLinePolicy& policy) {
  return read_lines<SftRecord>(path, policy, &parse_sft_line);
}
std::vector<GrpoRecord> read_grpo_jsonl(const std::string& path, const BadLinePolicy& policy) {
  return read_lines<GrpoRecord>(path, policy, &parse_grpo_line);
}

std::vector<ProcessedImage> load_images(const std::vector<std::string>& paths, const PreprocessorConfig& pp) {
  std::vector<ProcessedImage> out;
  for (auto& p : paths) out.push_back(preprocess(load_image(p), pp));
  return out;
}

int64_t TokenizedExample::n_label_tokens() const {
  return std::count_if(labels.begin(), labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
}

namespace {

std::vector<ChatMessage> to_chat(const std::vector<ChatItemMessage>& msgs, size_t count,
                                 const std::vector<int64_t>& image_tokens) {
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < count; ++i) {
    ChatMessage m;
    m.role = msgs[i].role;
    for (auto& p : msgs[i].parts) {
      if (p.image) m.content.push_back(ChatPart::make_image(image_tokens.at(p.image_index)));
      else m.content.push_back(ChatPart::make_text(p.text));
    }
    if (m.content.empty()) m.content.push_back(ChatPart::make_text(""));
    out.push_back(std::move(m));
  }
  return out;
}

// Byte length of the decoded tokens (what the ids spell).
size_t bytes_of(const Tokenizer& tok, const std::vector<int32_t>& ids, size_t n) {
  size_t b = 0;
  for (size_t i = 0; i < n; ++i) b += tok.token_bytes(ids[i]).size();
  return b;
}

}  // namespace

TokenizedExample tokenize_sft(const SftRecord& r, const Tokenizer& tok, const std::vector<int64_t>& image_tokens) {
  TokenizedExample ex;
  std::vector<int32_t> full;
  try {
    full = encode_chat(tok, to_chat(r.messages, r.messages.size(), image_tokens), {false, false}).ids;
  } catch (const Error& e) {
    throw Error(r.where + ": " + e.what());
  }
  ex.ids.assign(full.begin(), full.end());
  ex.labels.assign(full.size(), kIgnoreIndex);
  const auto im_end = tok.find_token("<|im_end|>");
  for (size_t i = 0; i < r.messages.size(); ++i) {
    if (r.messages[i].role != "assistant") continue;
    // Tokens of everything before the content ("...<|im_start|>assistant\n") and of everything up
    // to this turn's <|im_end|>: the labels are the tokens in between plus that <|im_end|>.
    auto prefix = encode_chat(tok, to_chat(r.messages, i, image_tokens), {true, false}).ids;
    auto upto = i + 1 == r.messages.size() ? full : encode_chat(tok, to_chat(r.messages, i + 1, image_tokens), {false, false}).ids;
    // upto ends with "<|im_end|>" "\n"; it is a prefix of `full` because <|im_start|> follows.
    size_t end = upto.size() - 1;  // exclusive: drop the trailing "\n"
    if (end == 0 || end > full.size() || !im_end || full[end - 1] != *im_end)
      throw Error(r.where + ": could not locate the end of assistant message " + std::to_string(i));
    size_t start = prefix.size();
    if (!std::equal(prefix.begin(), prefix.end(), full.begin())) {
      // The content's leading whitespace merged with the "\n" after "assistant": start at the
      // token that holds the first content byte.
      size_t want = bytes_of(tok, prefix, prefix.size()), b = 0;
      start = 0;
      while (start < full.size() && b + tok.token_bytes(full[start]).size() <= want) b += tok.token_bytes(full[start++]).size();
    }
    for (size_t k = start; k < end; ++k) ex.labels[k] = full[k];
  }
  return ex;
}

std::vector<int64_t> tokenize_grpo_prompt(const GrpoRecord& r, const Tokenizer& tok, const std::vector<int64_t>& image_tokens,
                                          const std::string& system) {
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back(ChatMessage::text("system", system));
  ChatMessage u;
  u.role = "user";
  for (auto& p : r.parts) {
    if (p.image) u.content.push_back(ChatPart::make_image(image_tokens.at(p.image_index)));
    else u.content.push_back(ChatPart::make_text(p.text));
  }
  if (u.content.empty()) u.content.push_back(ChatPart::make_text(""));
  msgs.push_back(u);
  try {
    auto ids = encode_chat(tok, msgs, {true, false}).ids;
    return std::vector<int64_t>(ids.begin(), ids.end());
  } catch (const Error& e) {
    throw Error(r.where + ": " + e.what());
  }
}

TokenBatch collate(const std::vector<TokenizedExample>& ex, const std::vector<std::vector<ProcessedImage>>& images,
                   int64_t pad_id) {
  TokenBatch b;
  const int64_t B = (int64_t)ex.size();
  int64_t S = 0;
  for (auto& e : ex) S = std::max<int64_t>(S, (int64_t)e.ids.size());
  b.input_ids = torch::full({B, S}, pad_id, torch::kLong);
  b.labels = torch::full({B, S}, kIgnoreIndex, torch::kLong);
  b.lengths = torch::zeros({B}, torch::kLong);
  auto ids_a = b.input_ids.accessor<int64_t, 2>();
  auto lab_a = b.labels.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& e = ex[i];
    for (size_t s = 0; s < e.ids.size(); ++s) {
      ids_a[i][s] = e.ids[s];
      lab_a[i][s] = e.labels[s];
    }
    b.lengths[i] = (int64_t)e.ids.size();
    b.tokens += (int64_t)e.ids.size();
    b.label_tokens += e.n_label_tokens();
  }
  std::vector<torch::Tensor> px;
  for (auto& row : images)
    for (auto& im : row) {
      px.push_back(im.pixel_values);
      b.grids.push_back({im.grid_t, im.grid_h, im.grid_w});
    }
  if (!px.empty()) b.pixel_values = torch::cat(px, 0);
  return b;
}

// ---------------- Sampler ----------------

namespace {
// Deterministic across platforms (std::shuffle / distributions are implementation-defined).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[next() % i]);
  }
};
}  // namespace

Sampler::Sampler(int64_t n, int64_t batch, uint64_t seed, std::vector<int64_t> lengths, int64_t group_batches)
    : n_(n), batch_(batch), group_(group_batches), seed_(seed), lengths_(std::move(lengths)) {
  if (n <= 0) throw Error("sampler: empty dataset");
  if (batch <= 0) throw Error("sampler: batch must be positive");
  if (!lengths_.empty() && (int64_t)lengths_.size() != n) throw Error("sampler: lengths do not match the dataset size");
}

std::vector<int64_t> Sampler::epoch_order(int64_t epoch) const {
  if (cached_epoch_ == epoch) return cached_;
  std::vector<int64_t> perm(n_);
  for (int64_t i = 0; i < n_; ++i) perm[i] = i;
  Rng rng(seed_ ^ (0xA24BAED4963EE407ull * (uint64_t)(epoch + 1)));
  rng.shuffle(perm);
  if (!lengths_.empty() && n_ > batch_) {
    // Length grouping: sort chunks of group_ batches by length (longest first), cut into batches,
    // shuffle the order of the full batches (the remainder batch stays last).
    const int64_t chunk = batch_ * std::max<int64_t>(1, group_);
    for (int64_t c0 = 0; c0 < n_; c0 += chunk) {
      auto b = perm.begin() + c0, e = perm.begin() + std::min(n_, c0 + chunk);
      std::stable_sort(b, e, [&](int64_t x, int64_t y) { return lengths_[x] > lengths_[y]; });
    }
    const int64_t full = n_ / batch_;
    std::vector<int64_t> order(full);
    for (int64_t i = 0; i < full; ++i) order[i] = i;
    rng.shuffle(order);
    std::vector<int64_t> out;
    out.reserve(n_);
    for (auto bi : order) out.insert(out.end(), perm.begin() + bi * batch_, perm.begin() + (bi + 1) * batch_);
    out.insert(out.end(), perm.begin() + full * batch_, perm.end());
    perm.swap(out);
  }
  cached_epoch_ = epoch;
  cached_ = perm;
  return perm;
}

std::vector<int64_t> Sampler::peek_batch(int64_t ahead) const {
  int64_t e = epoch_, c = cursor_ + ahead * batch_;
  e += c / n_;
  c %= n_;
  std::vector<int64_t> out;
  while ((int64_t)out.size() < batch_) {
    auto order = epoch_order(e);
    while (c < n_ && (int64_t)out.size() < batch_) out.push_back(order[c++]);
    if (c == n_) ++e, c = 0;
  }
  return out;
}

std::vector<int64_t> Sampler::next_batch() {
  auto b = peek_batch(0);
  cursor_ += batch_;
  epoch_ += cursor_ / n_;
  cursor_ %= n_;
  return b;
}

int64_t Sampler::batches_per_epoch() const { return (n_ + batch_ - 1) / batch_; }

json Sampler::state() const { return {{"epoch", epoch_}, {"cursor", cursor_}, {"n", n_}, {"batch", batch_}}; }

void Sampler::restore(const json& s) {
  try {
    int64_t e = s.at("epoch").get<int64_t>(), c = s.at("cursor").get<int64_t>();
    if (s.contains("n") && s["n"].get<int64_t>() != n_)
      throw Error("the data set changed: the checkpoint saw " + std::to_string(s["n"].get<int64_t>()) + " samples, now " +
                  std::to_string(n_));
    if (e < 0 || c < 0 || c >= n_) throw Error("bad data position");
    epoch_ = e;
    cursor_ = c;
  } catch (const json::exception&) {
    throw Error("data position: malformed state " + s.dump());
  }
}

// ---------------- SftDataset ----------------

namespace {
std::string fnv_file_hash(const std::string& path) {
  InputFile in(path, "data");
  std::istream& f = in.stream();
  uint64_t h = kFnv1aOffset;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), buf.size());
    h = fnv1a(buf.data(), size_t(f.gcount()), h);
  }
  in.finish();
  char out[32];
  std::snprintf(out, sizeof out, "fnv1a64:%016llx", (unsigned long long)h);
  return out;
}

// Apply max_length: cut the end, unless that would cut an image or leave no label.
void fit_length(TokenizedExample& ex, int64_t max_length, int64_t image_token_id, const std::string& where) {
  if ((int64_t)ex.ids.size() <= max_length) return;
  int64_t last_image = -1;
  for (int64_t i = 0; i < (int64_t)ex.ids.size(); ++i)
    if (ex.ids[i] == image_token_id) last_image = i;
  if (last_image >= max_length)
    throw Error(where + ": " + std::to_string(ex.ids.size()) + " tokens > max_length " + std::to_string(max_length) +
                " and the cut would split an image");
  ex.ids.resize(max_length);
  ex.labels.resize(max_length);
  if (ex.n_label_tokens() == 0)
    throw Error(where + ": " + std::to_string(ex.ids.size()) + " tokens > max_length " + std::to_string(max_length) +
                " leaves no assistant token");
}
}  // namespace

SftDataset::SftDataset(const std::string& path, const Tokenizer& tok, const SftDatasetOptions& opt) : tok_(tok), opt_(opt) {
  int64_t lines = 0;
  BadLinePolicy counting = opt.policy;  // counts the lines read_sft_jsonl skips
  int64_t line_skips = 0;
  counting.warn = [&](const std::string& m) {
    ++line_skips;
    if (opt.policy.warn) opt.policy.warn(m);
    else std::fprintf(stderr, "warning: %s (line skipped)\n", m.c_str());
  };
  auto recs = read_sft_jsonl(path, counting);
  lines = (int64_t)recs.size() + line_skips;
  const int64_t image_id = tok.find_token("<|image_pad|>").value_or(-1);
  ImageValidator images(opt.preprocessor);
  for (auto& r : recs) {
    try {
      std::vector<int64_t> it;
      for (auto& p : r.images) it.push_back(images.tokens(p));
      auto ex = tokenize_sft(r, tok, it);
      fit_length(ex, opt.max_length, image_id, r.where);
      if (ex.n_label_tokens() == 0) throw Error(r.where + ": no assistant token to learn");
      lengths_.push_back((int64_t)ex.ids.size());
      label_counts_.push_back(ex.n_label_tokens());
      image_tokens_.push_back(std::move(it));
      records_.push_back(std::move(r));
    } catch (const Error& e) {
      std::string m = e.what();
      if (m.rfind(r.where, 0) != 0) m = r.where + ": " + m;
      opt.policy.report(m);
      ++skipped_;
    }
  }
  skipped_ += line_skips;
  opt.policy.summary(path, skipped_, lines);
  if (records_.empty()) throw file_error(path, "no usable sample");
  hash_ = fnv_file_hash(path);
}

std::string SftDataset::hash() const { return hash_; }

std::pair<TokenizedExample, std::vector<ProcessedImage>> SftDataset::load(int64_t i) const {
  const auto& r = records_.at(i);
  std::vector<ProcessedImage> imgs;
  for (size_t k = 0; k < r.images.size(); ++k) {
    try {
      imgs.push_back(preprocess(load_image(r.images[k]), opt_.preprocessor));
    } catch (const Error& e) {
      throw Error(r.where + ": " + e.what());
    }
    if (imgs.back().num_tokens() != image_tokens_[i][k])
      throw Error(r.where + ": image " + r.images[k] + " changed since the data was indexed");
  }
  auto ex = tokenize_sft(r, tok_, image_tokens_[i]);
  fit_length(ex, opt_.max_length, tok_.find_token("<|image_pad|>").value_or(-1), r.where);
  return {std::move(ex), std::move(imgs)};
}

// ---------------- SftLoader ----------------

struct SftLoader::Impl {
  std::shared_ptr<const SftDataset> ds;
  Sampler sampler;
  int64_t global_batch, grad_accum, workers, depth;
  int rank, world;
  const SftLoader* owner;

  std::mutex mu;
  std::condition_variable cv;
  struct Slot {
    bool done = false;
    SftStep value;
    std::exception_ptr error;
  };
  std::map<int64_t, Slot> slots;  // by step number (relative to `consumed`)
  int64_t consumed = 0, next_task = 0;
  bool quit = false;
  std::vector<std::thread> threads;

  void start() {
    quit = false;
    for (int64_t w = 0; w < workers; ++w) threads.emplace_back([this] { loop(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> g(mu);
      quit = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    slots.clear();
    next_task = consumed;
  }
  void loop() {
    std::unique_lock<std::mutex> lk(mu);
    while (true) {
      cv.wait(lk, [&] { return quit || next_task < consumed + depth; });
      if (quit) return;
      int64_t k = next_task++;
      auto idx = sampler.peek_batch(k - consumed);
      slots[k];
      lk.unlock();
      Slot s;
      try {
        s.value = owner->build(idx);
      } catch (...) {
        s.error = std::current_exception();
      }
      lk.lock();
      s.done = true;
      slots[k] = std::move(s);
      cv.notify_all();
    }
  }
};

SftLoader::SftLoader(std::shared_ptr<const SftDataset> ds, int64_t global_batch, int64_t grad_accum, int rank, int world,
                     uint64_t seed, int64_t workers, int64_t depth)
    : impl_(new Impl) {
  if (global_batch % world != 0)
    throw Error("batch_size " + std::to_string(global_batch) + " is not divisible by the number of processes " +
                std::to_string(world));
  if ((global_batch / world) % grad_accum != 0)
    throw Error("batch_size / processes = " + std::to_string(global_batch / world) + " is not divisible by grad_accum " +
                std::to_string(grad_accum));
  auto& I = *impl_;
  I.ds = ds;
  I.sampler = Sampler(ds->size(), global_batch, seed, ds->lengths());
  I.global_batch = global_batch;
  I.grad_accum = grad_accum;
  I.workers = workers;
  I.depth = std::max<int64_t>(1, depth);
  I.rank = rank;
  I.world = world;
  I.owner = this;
  I.start();
}

SftLoader::~SftLoader() { impl_->stop(); }

SftStep SftLoader::build(const std::vector<int64_t>& global) const {
  auto& I = *impl_;
  SftStep st;
  st.indices = global;
  for (auto i : global) {
    st.global_label_tokens += I.ds->label_tokens(i);
    st.global_tokens += I.ds->length(i);
  }
  const int64_t share = I.global_batch / I.world, micro = share / I.grad_accum;
  for (int64_t m = 0; m < I.grad_accum; ++m) {
    std::vector<TokenizedExample> ex;
    std::vector<std::vector<ProcessedImage>> imgs;
    for (int64_t j = 0; j < micro; ++j) {
      auto [e, im] = I.ds->load(global[I.rank * share + m * micro + j]);
      ex.push_back(std::move(e));
      imgs.push_back(std::move(im));
    }
    auto b = collate(ex, imgs, I.ds->options().pad_id);
    for (int64_t j = 0; j < micro; ++j) b.where.push_back(I.ds->record(global[I.rank * share + m * micro + j]).where);
    st.micro.push_back(std::move(b));
  }
  return st;
}

SftStep SftLoader::next() {
  auto& I = *impl_;
  if (I.workers == 0) {
    auto st = build(I.sampler.next_batch());
    ++I.consumed;
    ++I.next_task;
    return st;
  }
  std::unique_lock<std::mutex> lk(I.mu);
  const int64_t k = I.consumed;
  I.cv.wait(lk, [&] { return I.slots.count(k) && I.slots[k].done; });
  Impl::Slot s = std::move(I.slots[k]);
  I.slots.erase(k);
  I.sampler.next_batch();  // the batch built for slot k was peek_batch(0) at that time
  ++I.consumed;
  lk.unlock();
  I.cv.notify_all();
  if (s.error) std::rethrow_exception(s.error);
  return std::move(s.value);
}

json SftLoader::state() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->sampler.state();
}

void SftLoader::restore(const json& s) {
  impl_->stop();
  impl_->sampler.restore(s);
  impl_->start();
}

int64_t SftLoader::steps_per_epoch() const { return impl_->sampler.batches_per_epoch(); }

}  // namespace pvm::train
