// pvm eval: a model (with or without PVM) on a VLMEvalKit TSV (MMBench, MMStar, AI2D, SEED, ...) or
// a JSONL of open questions, scored by rule-only answer extraction (engine/base/answer_extract.h),
// with a per-item JSONL log that an interrupted run resumes from. `pvm eval --task scenes` is the
// scenes world's evaluation (app/cli/eval_scenes.h).
//
// The per-item log (--out FILE.jsonl) is append-only on purpose: its first line records the
// settings, then one line per (item, run), flushed as soon as the item is done, so a crash loses at
// most the item in flight (a torn last line is dropped on --resume). The report is computed from
// that file, so a resumed run reports over all items, old and new.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "app/cli/command.h"
#include "engine/base/answer_extract.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/eval_data.h"
#include "engine/base/fs_util.h"
#include "engine/device.h"
#include "engine/pipeline.h"
#include "engine/pvm.h"

#if __has_include("app/cli/eval_scenes.h")
#include "app/cli/eval_scenes.h"
#define PVM_HAVE_SCENES_EVAL 1
#endif

namespace {

using nlohmann::json;
namespace ev = pvm::eval;
namespace ans = pvm::answers;

std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel = true; }

// Output-length buckets (generated tokens, stop token excluded).
const char* const kBuckets[] = {"<64", "64-255", "256-1024", ">1024"};
int bucket_of(int64_t tokens) { return tokens < 64 ? 0 : tokens < 256 ? 1 : tokens <= 1024 ? 2 : 3; }

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char b[32];
  long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  return b;
}

// ---- per-item log ----------------------------------------------------------------------------

// Reads a log: the settings line and the item records. A torn last line (no '\n') is dropped and
// the file truncated to the last full line, so appending continues cleanly.
struct Log {
  json header;
  std::vector<json> records;
};

Log read_log(const std::string& path, bool repair) {
  Log lg;
  std::string text = pvm::read_file_to_string(path, uint64_t(8) << 30);
  if (!text.empty() && text.back() != '\n') {
    size_t keep = text.rfind('\n');
    keep = keep == std::string::npos ? 0 : keep + 1;
    std::fprintf(stderr, "%s: dropping a torn last line (%zu bytes) left by an interrupted run\n", path.c_str(),
                 text.size() - keep);
    text.resize(keep);
    if (repair && ::truncate(path.c_str(), off_t(keep)) != 0) throw pvm::file_error(path, "cannot truncate the torn last line");
  }
  size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    std::string ln = text.substr(pos, e - pos);
    pos = e + 1;
    ++line;
    if (ln.empty()) continue;
    json j;
    try {
      j = json::parse(ln);
    } catch (const std::exception&) {
      throw pvm::Error(path + ":" + std::to_string(line) + ": not a JSON line (not a pvm eval log?)");
    }
    if (line == 1) {
      if (!j.is_object() || !j.contains("pvm_eval")) throw pvm::Error(path + ":1: not a pvm eval log (no settings line)");
      lg.header = j;
      continue;
    }
    if (!j.is_object() || !j.contains("index") || !j.contains("run") || !j.contains("correct") || !j.contains("kind"))
      throw pvm::Error(path + ":" + std::to_string(line) + ": item record without index/run/correct/kind");
    lg.records.push_back(std::move(j));
  }
  return lg;
}

// ---- report ------------------------------------------------------------------------------------

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

json build_report(const json& header, const std::vector<json>& recs, const std::vector<ev::EvalItem>& items, int runs) {
  std::map<std::string, const ev::EvalItem*> by_key;
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
    const ev::EvalItem& it = *f->second;
    overall[size_t(run)].add(r);
    auto add = [&](std::map<std::string, std::vector<Counts>>& m, const std::string& g) {
      auto& v = m[g];
      v.resize(size_t(runs));
      v[size_t(run)].add(r);
    };
    if (!it.category.empty()) add(cat, it.category);
    if (!it.l2_category.empty()) add(l2, it.l2_category);
    if (r.value("kind", "") != "error") add(len, kBuckets[bucket_of(r.value("tokens", 0))]);
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
  for (const char* b : kBuckets) {
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

std::string pct(const json& v) {
  if (v.is_null()) return "   -  ";
  char b[32];
  std::snprintf(b, sizeof b, "%5.1f%%", v.get<double>() * 100);
  return b;
}

void print_group(const std::string& name, const json& g) {
  std::string sd = g["accuracy_std"].is_null() ? "" : " ± " + pct(g["accuracy_std"]);
  std::printf("  %-28s %s%-9s n=%-6lld refusals %s  unextracted %s  tokens %.0f\n", name.c_str(), pct(g["accuracy"]).c_str(),
              sd.c_str(), g["n"].get<long long>(), pct(g["refusal_rate"]).c_str(), pct(g["unextracted_rate"]).c_str(),
              g["mean_tokens"].get<double>());
}

void print_report(const json& rep) {
  std::printf("rule-only accuracy: %s, %lld items x %d run(s)%s; PVM %s\n", rep.value("data", "").c_str(),
              rep["items"].get<long long>(), rep["runs"].get<int>(), rep["complete"].get<bool>() ? "" : " (INCOMPLETE)",
              rep.value("pvm_enabled", false) ? "on" : "off");
  print_group("overall", rep["overall"]);
  if (rep.contains("circular") && !rep["circular"]["accuracy"].is_null())
    std::printf("  %-28s %s\n", "circular (MMBench)", pct(rep["circular"]["accuracy"]).c_str());
  for (const char* sec : {"by_category", "by_l2_category", "by_length"}) {
    if (rep[sec].empty()) continue;
    std::printf("%s:\n", sec + 3);
    if (std::string(sec) == "by_length") {
      for (const char* b : kBuckets) print_group(std::string(b) + " tokens", rep[sec][b]);
    } else {
      for (auto& [k, v] : rep[sec].items()) print_group(k, v);
    }
  }
}

// ---- the run -----------------------------------------------------------------------------------

int run_eval(const std::vector<std::string>& argv) {
  for (auto& s : argv)
    if (s == "--task" || s.rfind("--task=", 0) == 0) {
#ifdef PVM_HAVE_SCENES_EVAL
      return pvm::cli::run_scenes_eval(argv);
#else
      throw pvm::Error("--task scenes is not built into this pvm (app/cli/eval_scenes.h missing)");
#endif
    }
  pvm::cli::Args a(argv,
                   {"--data", "--model", "--pvm", "--runs", "--temperature", "--top-p", "--top-k", "--seed",
                    "--max-new-tokens", "--limit", "--out", "--prompt-style", "--system", "--dtype", "--device",
                    "--tokenizer"},
                   {"--json", "--resume", "--no-pvm", "--quiet"});
  const std::string data_path = a.require("--data");
  const bool json_out = a.has("--json"), quiet = a.has("--quiet");
  const long long runs = a.get_int("--runs", 1);
  if (runs < 1 || runs > 1000) throw pvm::Error("--runs must be in 1..1000");
  const double temp = a.get_double("--temperature", 0.0);
  if (temp < 0) throw pvm::Error("--temperature must be >= 0 (0 = greedy)");
  const double top_p = a.get_double("--top-p", 1.0);
  const long long top_k = a.get_int("--top-k", 0);
  const long long seed = a.get_int("--seed", 0);
  if (seed < 0) throw pvm::Error("--seed must be >= 0");
  const long long max_new = a.get_int("--max-new-tokens", 1024);
  if (max_new < 1 || max_new > 1 << 20) throw pvm::Error("--max-new-tokens must be in 1..1048576");
  const long long limit = a.get_int("--limit", 0);
  if (limit < 0) throw pvm::Error("--limit must be >= 0 (0 = all items)");
  const auto style = ev::parse_prompt_style(a.get("--prompt-style", "dataset"));
  const std::string out_path = a.get("--out");
  const bool resume = a.has("--resume");
  if (resume && out_path.empty()) throw pvm::Error("--resume needs --out FILE.jsonl (the log to continue)");
  const bool use_pvm = !a.has("--no-pvm");
  std::string model_dir = a.get("--model", pvm::default_model_dir());
  if (model_dir.empty()) throw pvm::Error("no --model given and the default model (assets/default-model) is not present");
  pvm::SamplingParams sp;
  sp.do_sample = temp > 0;
  sp.temperature = temp > 0 ? temp : 1.0;
  sp.top_p = top_p;
  sp.top_k = top_k;
  sp.validate();
  if (runs > 1 && temp == 0 && !quiet)
    std::fprintf(stderr, "note: --runs %lld with greedy decoding (--temperature 0) repeats the same answers\n", runs);

  ev::EvalData data = ev::load_eval_data(data_path);
  if (data.skipped_no_image && !quiet)
    std::fprintf(stderr, "%s: %d rows without an image skipped (as VLMEvalKit does)\n", data_path.c_str(), data.skipped_no_image);
  std::vector<ev::EvalItem> items = std::move(data.items);
  if (limit > 0 && (size_t)limit < items.size()) items.resize(size_t(limit));

  // Settings that change the answers: a resumed log must have been written with the same ones.
  json header = {{"pvm_eval", 1},
                 {"data", data_path},
                 {"model", model_dir},
                 {"pvm_adapter", a.get("--pvm")},
                 {"pvm_enabled", use_pvm},
                 {"prompt_style", ev::prompt_style_name(style)},
                 {"system", a.get("--system")},
                 {"temperature", temp},
                 {"top_p", top_p},
                 {"top_k", top_k},
                 {"seed", seed},
                 {"max_new_tokens", max_new},
                 {"tokenizer", a.get("--tokenizer")},
                 {"dtype", a.get("--dtype", "auto")}};
  std::vector<json> records;
  std::set<std::pair<std::string, int>> done;
  std::FILE* log = nullptr;
  bool need_header = true;
  if (!out_path.empty()) {
    const bool exists = pvm::path_exists(out_path) && pvm::is_regular_file(out_path);
    if (exists && !resume) throw pvm::file_error(out_path, "already exists (pass --resume to continue it, or remove it)");
    if (exists) {
      Log lg = read_log(out_path, true);
      if (!lg.header.is_null()) {
        need_header = false;
        for (auto& [k, v] : header.items())
          if (lg.header.value(k, json(nullptr)) != v)
            throw pvm::file_error(out_path, "was written with " + k + "=" + lg.header.value(k, json(nullptr)).dump() +
                                                ", this run has " + v.dump() + " (same settings needed to resume)");
        records = std::move(lg.records);
      }
    }
    for (auto& r : records)
      done.insert({r["index"].is_string() ? r["index"].get<std::string>() : r["index"].dump(), r["run"].get<int>()});
    log = std::fopen(out_path.c_str(), "ab");
    if (!log) throw pvm::file_error(out_path, "cannot open for writing");
    if (need_header) {
      std::string h = header.dump() + "\n";
      std::fwrite(h.data(), 1, h.size(), log);
      std::fflush(log);
    }
  }
  struct LogCloser {
    std::FILE* f;
    ~LogCloser() {
      if (f) std::fclose(f);
    }
  } closer{log};

  long long todo = 0;
  for (int r = 0; r < runs; ++r)
    for (auto& it : items) todo += done.count({it.key, r}) ? 0 : 1;
  if (!quiet && resume) std::fprintf(stderr, "resuming: %zu item runs done, %lld to go\n", done.size(), todo);

  if (todo > 0) {
    auto dev = pvm::parse_device(a.get("--device", "auto"));
    pvm::LoadOptions lo;
    lo.device = dev;
    lo.dtype = pvm::parse_dtype(a.get("--dtype", "auto"), dev);
    if (!quiet) std::fprintf(stderr, "loading %s (%s, %s)...\n", model_dir.c_str(), dev.str().c_str(), pvm::dtype_name(lo.dtype).c_str());
    auto pipe = pvm::Pipeline::open(model_dir, lo, a.get("--tokenizer"));
    if (a.has("--pvm")) pvm::load_pvm_adapter(*pipe.model.model, a.get("--pvm"));
    std::signal(SIGINT, on_sigint);
    const bool tty = ::isatty(2);
    const auto t0 = std::chrono::steady_clock::now();
    auto last_print = t0;
    long long n_done = 0, n_correct = 0;
    for (int run = 0; run < runs && !g_cancel; ++run) {
      for (size_t k = 0; k < items.size() && !g_cancel; ++k) {
        const ev::EvalItem& it = items[k];
        if (done.count({it.key, run})) continue;
        json rec = {{"index", it.key}, {"run", run}, {"line", it.line}, {"answer", it.answer}};
        if (!it.category.empty()) rec["category"] = it.category;
        if (!it.l2_category.empty()) rec["l2_category"] = it.l2_category;
        if (!it.split.empty()) rec["split"] = it.split;
        pvm::PromptSpec spec;
        spec.system = a.get("--system");
        spec.text = ev::build_prompt(it, style);
        rec["prompt"] = spec.text;
        auto t_item = std::chrono::steady_clock::now();
        try {
          for (auto& ref : it.images) {
            if (ref.base64) {
              std::string bytes = ev::base64_decode(*ref.base64, ref.name);
              spec.images.push_back(pvm::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ref.name));
            } else {
              spec.image_paths.push_back(ref.path);
            }
          }
          auto prep = pipe.prepare(spec);
          auto& req = prep.request;
          req.max_new_tokens = max_new;
          req.sampling = sp;
          // Per (seed, run, item) so a resumed or reordered run samples the same answers.
          req.sampling.seed = splitmix(uint64_t(seed) ^ splitmix(uint64_t(run) + 1) ^ fnv1a(it.key));
          req.pvm = use_pvm;
          req.cancel = &g_cancel;
          auto res = pvm::generate(pipe.model.model, req);
          if (res.finish[0] == "cancelled") break;  // not recorded: redone on --resume
          std::vector<int64_t> toks = res.tokens[0];
          if (res.finish[0] == "stop" && !toks.empty()) toks.pop_back();
          const std::string output = pipe.decode(toks, true);
          rec["output"] = output;
          rec["tokens"] = (int64_t)toks.size();
          rec["finish"] = res.finish[0];
          if (it.open) {
            std::string extracted = ans::extract_open(output);
            bool ok = ans::open_match(output, it.answer);
            rec["extracted"] = extracted;
            rec["correct"] = ok;
            rec["kind"] = ok ? "answer" : (ans::is_refusal(output) ? "refusal" : extracted.empty() ? "none" : "answer");
            rec["how"] = "open";
          } else {
            auto c = ans::extract_choice(output, it.option_texts());
            rec["extracted"] = c.kind == ans::ChoiceKind::Letter ? json(std::string(1, c.letter)) : json(nullptr);
            rec["kind"] = ans::kind_name(c.kind);
            rec["how"] = c.how;
            rec["correct"] = c.kind == ans::ChoiceKind::Letter && std::string(1, c.letter) == it.answer;
          }
        } catch (const pvm::Error& e) {
          // A broken image in one row: recorded (and counted apart), the evaluation goes on.
          rec["kind"] = "error";
          rec["error"] = e.what();
          rec["correct"] = false;
          rec["tokens"] = 0;
          std::fprintf(stderr, "%s%s\n", tty ? "\n" : "", e.what());
        }
        rec["ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_item).count();
        if (log) {
          std::string l = rec.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
          if (std::fwrite(l.data(), 1, l.size(), log) != l.size() || std::fflush(log) != 0)
            throw pvm::file_error(out_path, "write failed");
        }
        records.push_back(rec);
        done.insert({it.key, run});
        ++n_done;
        n_correct += rec["correct"].get<bool>();
        auto now = std::chrono::steady_clock::now();
        double el = std::chrono::duration<double>(now - t0).count();
        double rate = el > 0 ? n_done / el : 0;
        if (!quiet && (tty || std::chrono::duration<double>(now - last_print).count() >= 10 || n_done == todo)) {
          std::fprintf(stderr, "%s[eval] %lld/%lld  run %d/%lld  %.2f items/s  ETA %s  acc %.1f%%%s", tty ? "\r" : "",
                       n_done, todo, run + 1, runs, rate, fmt_duration(rate > 0 ? (todo - n_done) / rate : -1).c_str(),
                       100.0 * n_correct / n_done, tty ? "   " : "\n");
          std::fflush(stderr);
          last_print = now;
        }
      }
    }
    if (!quiet && tty) std::fprintf(stderr, "\n");
  }
  // The report reads the records back from the log (so old and new runs count alike).
  if (log) {
    std::fflush(log);
    records = read_log(out_path, false).records;
  }
  json rep = build_report(header, records, items, int(runs));
  if (!out_path.empty()) rep["log"] = out_path;
  if (json_out)
    std::printf("%s\n", rep.dump(1, ' ', false, json::error_handler_t::replace).c_str());
  else
    print_report(rep);
  if (g_cancel) {
    std::fprintf(stderr, "interrupted%s\n", out_path.empty() ? "" : "; continue with the same command and --resume");
    return 130;
  }
  return 0;
}

}  // namespace

PVM_COMMAND("eval", "rule-only accuracy on a VLMEvalKit TSV or a JSONL of open questions (or --task scenes)",
            "--data FILE.tsv|FILE.jsonl [--model DIR] [--pvm ADAPTER] [--no-pvm] [--runs N --temperature T "
            "--top-p P --top-k K --seed S] [--max-new-tokens N] [--limit N] [--prompt-style dataset|qwen3vl] "
            "[--system TEXT] [--out FILE.jsonl [--resume]] [--dtype D] [--device D] [--tokenizer FILE] [--json] "
            "[--quiet]\n  or: pvm eval --task scenes ... (see app/cli/eval_scenes.h)",
            run_eval);
