#include "engine/eval.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "engine/base/answer_extract.h"
#include "engine/base/error.h"
#include "engine/base/hash.h"
#include "engine/image.h"
#include "engine/vismem.h"

namespace pvm::eval {

using nlohmann::json;
namespace ans = pvm::answers;

int64_t run_eval(const Pipeline& pipe, ItemSource& src, const LoopOptions& o) {
  auto model = pipe.model.model;  // a module holder: shares the loaded weights
  const Ask ask = [&](const PromptSpec& spec, int64_t max_new, const SamplingParams& sampling) {
    auto prep = pipe.prepare(spec);
    auto& req = prep.request;
    req.max_new_tokens = max_new;
    req.sampling = sampling;
    req.pvm = o.use_pvm;
    req.cancel = o.cancel;
    req.vismem = o.vismem;
    req.vismem.seed = sampling.seed;
    req.visual_attention_scale = o.visual_attention_scale;
    req.visual_attention_restore = o.visual_attention_restore;
    req.history_window = o.history_window;
    auto res = generate(model, req);
    Answer a{res.tokens[0], res.finish[0], ""};
    a.invocations = res.insertions.empty() ? 0 : int64_t(res.insertions[0].size());
    a.decode_ms = res.decode_ms;
    std::vector<int64_t> toks;
    for (auto it = a.ids.begin(); it != a.ids.begin() + a.tokens(); ++it)
      if (vismem_token_of(pipe.model.config, *it) < 0) toks.push_back(*it);
    a.text = pipe.decode(toks, true);
    return a;
  };
  auto cancelled = [&] { return o.cancel && o.cancel->load(); };
  int64_t made = 0;
  for (int run = 0; run < o.runs && !cancelled(); ++run) {
    for (size_t k = 0; k < src.size() && !cancelled(); ++k) {
      if (o.done && o.done(src.key(k), run)) continue;
      std::optional<json> rec = src.evaluate(k, run, ask);
      if (!rec) return made;  // cancelled inside the item: not recorded
      ++made;
      if (o.on_record) o.on_record(*rec, k, run);
    }
  }
  return made;
}

// ---- VLMEvalKit TSV / JSONL ----

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

int64_t validate_images(EvalData& data, const train::BadLinePolicy& policy) {
  std::map<const std::string*, std::string> b64_seen;  // shared base64 image -> "" or its error
  std::map<std::string, std::string> file_seen;         // path -> "" or its error
  auto check = [](const std::function<void()>& decode) -> std::string {
    try {
      decode();
      return "";
    } catch (const Error& e) {
      return e.what();
    } catch (...) {
      try {
        rethrow_with_context("image", "decoding");
      } catch (const Error& e) {
        return e.what();
      }
    }
  };
  std::vector<EvalItem> kept;
  const int64_t total = int64_t(data.items.size());
  for (EvalItem& it : data.items) {
    std::string bad;
    for (const ImageRef& ref : it.images) {
      if (ref.base64) {
        auto [pos, fresh] = b64_seen.emplace(ref.base64.get(), "");
        if (fresh) pos->second = check([&] {
            const std::string bytes = base64_decode(*ref.base64, ref.name);
            (void)decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ref.name);
          });
        bad = pos->second;
      } else {
        auto [pos, fresh] = file_seen.emplace(ref.path, "");
        if (fresh) pos->second = check([&] { (void)load_image(ref.path); });
        bad = pos->second;
      }
      if (!bad.empty()) break;
    }
    if (bad.empty()) {
      kept.push_back(std::move(it));
      continue;
    }
    // Messages name the data file and line first (an image file's own error names only the image).
    const std::string where = data.path + ":" + std::to_string(it.line);
    policy.report(bad.rfind(where, 0) == 0 ? bad : where + ": " + bad);
  }
  const int64_t dropped = total - int64_t(kept.size());
  data.items = std::move(kept);
  policy.summary(data.path, dropped, total, "items", "--bad-lines fatal");
  return dropped;
}

DatasetSource::DatasetSource(const std::string& path, EvalData data, DatasetSettings s)
    : items_(std::move(data.items)), s_(std::move(s)) {
  if (items_.empty())
    throw file_error(path, data.skipped_no_image
                               ? "no usable item: all " + std::to_string(data.skipped_no_image) + " rows lack an image"
                               : std::string("no usable item: no rows"));
}

std::optional<json> DatasetSource::evaluate(size_t i, int run, const Ask& ask) {
  const EvalItem& it = items_[i];
  json rec = {{"index", it.key}, {"run", run}, {"line", it.line}, {"answer", it.answer}};
  if (!it.category.empty()) rec["category"] = it.category;
  if (!it.l2_category.empty()) rec["l2_category"] = it.l2_category;
  if (!it.split.empty()) rec["split"] = it.split;
  PromptSpec spec;
  spec.system = s_.system;
  spec.text = build_prompt(it, s_.style);
  rec["prompt"] = spec.text;
  const auto t_item = std::chrono::steady_clock::now();
  try {
    for (auto& ref : it.images) {
      if (ref.base64) {
        std::string bytes = base64_decode(*ref.base64, ref.name);
        spec.images.push_back(decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ref.name));
      } else {
        spec.image_paths.push_back(ref.path);
      }
    }
    SamplingParams sp = s_.sampling;
    // Per (seed, run, item) so a resumed or reordered run samples the same answers.
    sp.seed = splitmix(s_.seed ^ splitmix(uint64_t(run) + 1) ^ fnv1a(it.key));
    Answer a = ask(spec, s_.max_new_tokens, sp);
    if (a.finish == "cancelled") return std::nullopt;
    rec["output"] = a.text;
    rec["tokens"] = a.tokens();
    rec["finish"] = a.finish;
    if (it.open) {
      std::string extracted = ans::extract_open(a.text);
      bool ok = ans::open_match(a.text, it.answer);
      rec["extracted"] = extracted;
      rec["correct"] = ok;
      rec["kind"] = ok ? "answer" : (ans::is_refusal(a.text) ? "refusal" : extracted.empty() ? "none" : "answer");
      rec["how"] = "open";
    } else {
      auto c = ans::extract_choice(a.text, it.option_texts());
      rec["extracted"] = c.kind == ans::ChoiceKind::Letter ? json(std::string(1, c.letter)) : json(nullptr);
      rec["kind"] = ans::kind_name(c.kind);
      rec["how"] = c.how;
      rec["correct"] = c.kind == ans::ChoiceKind::Letter && std::string(1, c.letter) == it.answer;
    }
  } catch (const Error& e) {
    // A broken image in one row: recorded (and counted apart), the evaluation goes on.
    rec["kind"] = "error";
    rec["error"] = e.what();
    rec["correct"] = false;
    rec["tokens"] = 0;
  }
  rec["ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_item).count();
  return rec;
}

// ---- the dataset report ----

const char* const kLengthBuckets[4] = {"<64", "64-255", "256-1024", ">1024"};

namespace {

int bucket_of(int64_t tokens) { return tokens < 64 ? 0 : tokens < 256 ? 1 : tokens <= 1024 ? 2 : 3; }

struct Counts {
  long long n = 0, correct = 0, refusal = 0, none = 0, ambiguous = 0, errors = 0;
  double tokens = 0;
  void add(const json& r) {
    const std::string kind = r.value("kind", "");
    if (kind == "error") {
      ++errors;
      return;
    }
    ++n;
    correct += r.value("correct", false) ? 1 : 0;
    refusal += kind == "refusal";
    none += kind == "none";
    ambiguous += kind == "ambiguous";
    tokens += r.value("tokens", 0);
  }
};

// One group (overall, a category, a length bucket): counts per run, then mean and sample std of the
// per-run accuracy over the runs that have items in the group.
json group_stats(const std::vector<Counts>& per_run) {
  Counts tot;
  std::vector<double> accs;
  for (auto& c : per_run) {
    tot.n += c.n, tot.correct += c.correct, tot.refusal += c.refusal, tot.none += c.none;
    tot.ambiguous += c.ambiguous, tot.errors += c.errors, tot.tokens += c.tokens;
    if (c.n > 0) accs.push_back(double(c.correct) / double(c.n));
  }
  double mean = 0, sd = 0;
  for (double a : accs) mean += a / double(accs.size());
  if (accs.size() > 1) {
    for (double a : accs) sd += (a - mean) * (a - mean);
    sd = std::sqrt(sd / double(accs.size() - 1));
  }
  json j;
  j["n"] = tot.n;
  j["correct"] = tot.correct;
  j["accuracy"] = accs.empty() ? json(nullptr) : json(mean);
  j["accuracy_std"] = accs.size() > 1 ? json(sd) : json(nullptr);
  j["accuracy_per_run"] = accs;
  auto rate = [&](long long k) { return tot.n ? double(k) / double(tot.n) : 0.0; };
  j["refusal_rate"] = rate(tot.refusal);
  j["unextracted_rate"] = rate(tot.none + tot.ambiguous);
  j["ambiguous_rate"] = rate(tot.ambiguous);
  j["refusals"] = tot.refusal;
  j["unextracted"] = tot.none + tot.ambiguous;
  j["errors"] = tot.errors;
  j["mean_tokens"] = tot.n ? tot.tokens / double(tot.n) : 0.0;
  return j;
}

}  // namespace

json dataset_report(const json& header, const std::vector<json>& recs, const std::vector<EvalItem>& items, int runs) {
  std::map<std::string, const EvalItem*> by_key;
  for (auto& it : items) by_key[it.key] = &it;
  std::vector<Counts> overall(size_t(runs), Counts{});
  std::map<std::string, std::vector<Counts>> cat, l2, len;
  std::map<std::string, std::vector<int>> circ;  // MMBench circular groups: index % 1e6 -> per-run all-correct
  std::map<std::string, std::vector<int>> circ_seen;
  bool circular = false;
  for (auto& it : items) {
    char* end = nullptr;
    long long v = std::strtoll(it.key.c_str(), &end, 10);
    if (end && !*end && v >= 1000000) circular = true;
  }
  std::set<std::pair<std::string, int>> seen;
  long long done = 0;
  for (auto& r : recs) {
    std::string key = r["index"].is_string() ? r["index"].get<std::string>() : r["index"].dump();
    int run = r["run"].get<int>();
    auto f = by_key.find(key);
    if (f == by_key.end() || run < 0 || run >= runs) continue;  // beyond --limit / --runs
    if (!seen.insert({key, run}).second) continue;               // duplicates: the first counts
    ++done;
    const EvalItem& it = *f->second;
    overall[size_t(run)].add(r);
    auto add = [&](std::map<std::string, std::vector<Counts>>& m, const std::string& g) {
      auto& v = m[g];
      v.resize(size_t(runs));
      v[size_t(run)].add(r);
    };
    if (!it.category.empty()) add(cat, it.category);
    if (!it.l2_category.empty()) add(l2, it.l2_category);
    if (r.value("kind", "") != "error") add(len, kLengthBuckets[bucket_of(r.value("tokens", 0))]);
    if (circular) {
      char* end = nullptr;
      long long v = std::strtoll(key.c_str(), &end, 10);
      std::string g = std::to_string(v % 1000000);
      auto& c = circ[g];
      auto& s = circ_seen[g];
      c.resize(size_t(runs), 1);
      s.resize(size_t(runs), 0);
      s[size_t(run)] += 1;
      if (!r.value("correct", false)) c[size_t(run)] = 0;
    }
  }
  json rep;
  rep["scoring"] = "rule-only";
  for (const char* k : {"data", "model", "pvm_adapter", "pvm_enabled", "prompt_style", "temperature", "top_p", "top_k", "seed",
                        "max_new_tokens", "system"})
    if (header.contains(k)) rep[k] = header[k];
  rep["items"] = items.size();
  rep["runs"] = runs;
  rep["done"] = done;
  rep["expected"] = (long long)items.size() * runs;
  rep["complete"] = done == (long long)items.size() * runs;
  rep["overall"] = group_stats(overall);
  auto groups = [&](std::map<std::string, std::vector<Counts>>& m) {
    json j = json::object();
    for (auto& [g, v] : m) j[g] = group_stats(v);
    return j;
  };
  rep["by_category"] = groups(cat);
  rep["by_l2_category"] = groups(l2);
  json lj = json::object();
  for (const char* b : kLengthBuckets) {
    auto& v = len[b];
    v.resize(size_t(runs));
    lj[b] = group_stats(v);
  }
  rep["by_length"] = lj;
  if (circular) {
    // MMBench's circular evaluation: a question counts only when all its rotations are right.
    std::vector<double> accs;
    for (int r = 0; r < runs; ++r) {
      long long n = 0, ok = 0;
      for (auto& [g, c] : circ)
        if (circ_seen[g][size_t(r)] > 0) ++n, ok += c[size_t(r)];
      if (n) accs.push_back(double(ok) / double(n));
    }
    double mean = 0;
    for (double a : accs) mean += a / double(accs.size());
    rep["circular"] = {{"groups", circ.size()}, {"accuracy", accs.empty() ? json(nullptr) : json(mean)}, {"accuracy_per_run", accs}};
  }
  return rep;
}

}  // namespace pvm::eval
