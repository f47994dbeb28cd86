// pvm eval: a model (with or without PVM) on a VLMEvalKit TSV (MMBench, MMStar, AI2D, SEED, ...) or
// a JSONL of open questions, scored by rule-only answer extraction (engine/base/answer_extract.h),
// with a per-item JSONL log that an interrupted run resumes from; or, with `--task scenes`, on
// held-out scenes of the scenes world. Both are engine/eval.h's loop over an item source
// (DatasetSource, engine/eval_scenes.h ScenesSource); this file parses options, keeps the log and
// prints the reports.
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
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/eval_data.h"
#include "engine/base/file_format.h"
#include "engine/base/fs_util.h"
#include "engine/eval.h"
#include "engine/eval_scenes.h"
#include "engine/pipeline.h"

namespace {

using nlohmann::json;
namespace ev = pvm::eval;
namespace sc = pvm::scenes;

std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel = true; }

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
      pvm::check_file_format(j, "pvm_eval", 1, path, "eval log");  // a newer log may hold records this build misreads
      lg.header = j;
      continue;
    }
    if (!j.is_object() || !j.contains("index") || !j.contains("run") || !j.contains("correct") || !j.contains("kind"))
      throw pvm::Error(path + ":" + std::to_string(line) + ": item record without index/run/correct/kind");
    lg.records.push_back(std::move(j));
  }
  return lg;
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
  if (rep.value("skipped_bad_items", int64_t(0)) > 0)
    std::printf("  %lld items skipped at load (bad images, listed on stderr)\n", rep["skipped_bad_items"].get<long long>());
  if (rep.contains("circular") && !rep["circular"]["accuracy"].is_null())
    std::printf("  %-28s %s\n", "circular (MMBench)", pct(rep["circular"]["accuracy"]).c_str());
  for (const char* sec : {"by_category", "by_l2_category", "by_length"}) {
    if (rep[sec].empty()) continue;
    std::printf("%s:\n", sec + 3);
    if (std::string(sec) == "by_length") {
      for (const char* b : ev::kLengthBuckets) print_group(std::string(b) + " tokens", rep[sec][b]);
    } else {
      for (auto& [k, v] : rep[sec].items()) print_group(k, v);
    }
  }
}

// ---- the scenes world ---------------------------------------------------------------------------

// Scene i has seed scenes::scene_seed(S, 1, i): the held-out split of `pvm scenes --seed S`.
int run_scenes(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv,
                   {"--task", "--model", "--pvm", "--count", "--seed", "--objects", "--max-new-tokens", "--qa-per-scene",
                    "--qa-max-new-tokens", "--out", "--csv", "--device", "--threads", "--dtype", "--tokenizer", "--vismem",
                    "--vismem-invoke", "--vismem-max", "--vismem-p", "--vismem-long", "--visual-scale", "--visual-restore", "--history-window", "--size"},
                   {"--json", "--no-pvm", "--textures", "--digits", "--quiet", "--no-vismem"});
  if (a.has("--task") && a.get("--task") != "scenes")
    throw pvm::Error("--task: expected 'scenes', got '" + a.get("--task") + "'");
  const std::string model_dir = pvm::model_dir_or_default(a.get("--model"));
  ev::ScenesSettings st;
  const long long count = a.get_int("--count", 200, 1, 1000000);
  const long long seed = a.get_int("--seed", 0, 0, INT64_MAX);
  const long long max_new = a.get_int("--max-new-tokens", 768, 1, 65536);
  const long long qa_n = a.get_int("--qa-per-scene", 2, 0, 64);
  const long long qa_max_new = a.get_int("--qa-max-new-tokens", 96, 1, 65536);
  sc::SceneOptions& opt = st.scene;
  if (a.has("--objects")) sc::parse_objects_option(a.get("--objects"), opt);
  if (a.has("--size")) {  // image side in pixels, as pvm scenes --size: more pixels, more visual tokens
    const long long px = a.get_int("--size", 256, 64, 4096);
    opt.width = opt.height = static_cast<int>(px);
  }
  opt.textures = a.has("--textures");
  opt.digits = a.has("--digits");
  opt.validate("options");
  st.count = count, st.seed = uint64_t(seed), st.max_new_tokens = max_new;
  st.qa_per_scene = int(qa_n), st.qa_max_new_tokens = qa_max_new;
  const bool json_out = a.has("--json"), quiet = a.has("--quiet");
  const bool use_pvm = !a.has("--no-pvm");
  // VisMem (docs/VISMEM.md): on when an adapter is given; --no-vismem = the baseline on the same model.
  pvm::VismemGenerate vm;
  vm.enabled = a.has("--vismem") && !a.has("--no-vismem");
  vm.invoke = a.get("--vismem-invoke", "model");
  if (vm.invoke != "model" && vm.invoke != "separators")
    throw pvm::Error("option --vismem-invoke: must be model or separators, got '" + vm.invoke + "'");
  vm.max_invocations = a.get_int("--vismem-max", 4, 0, 1 << 20);
  vm.p = a.get_double("--vismem-p", 1.0);
  if (!(vm.p >= 0.0 && vm.p <= 1.0)) throw pvm::Error("option --vismem-p: out of range (must be in 0..1)");
  // separators mode: the share of long-term memories (0 = short-term only, 1 = long-term only)
  vm.long_fraction = a.get_double("--vismem-long", 0.5);
  if (!(vm.long_fraction >= 0.0 && vm.long_fraction <= 1.0))
    throw pvm::Error("option --vismem-long: out of range (must be in 0..1)");
  if (!a.has("--vismem") &&
      (a.has("--vismem-invoke") || a.has("--vismem-max") || a.has("--vismem-p") || a.has("--vismem-long")))
    throw pvm::Error("options --vismem-invoke/--vismem-max/--vismem-p/--vismem-long need --vismem DIR");
  const auto visual = pvm::cli::visual_intervention(a, vm.enabled);

  auto pipe = pvm::open_pipeline(pvm::cli::open_options(a, quiet));
  // Records are streamed to a temp file and renamed at the end (a killed run leaves no half file).
  std::unique_ptr<pvm::AtomicWriter> out;
  if (a.has("--out")) out = std::make_unique<pvm::AtomicWriter>(a.get("--out"));

  ev::ScenesSource src(st);
  ev::LoopOptions lo;
  lo.use_pvm = use_pvm;
  lo.vismem = vm;
  lo.visual_attention_scale = visual.scale;
  lo.visual_attention_restore = visual.restore;
  lo.history_window = visual.window;
  const auto t0 = std::chrono::steady_clock::now();
  lo.on_record = [&](const json& rec, size_t i, int) {
    if (out) {
      std::string line = rec.dump() + "\n";
      out->write(line.data(), line.size());
    }
    if (!quiet) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rscene %lld/%lld: accuracy %.3f (running %.3f), %.0f s, ETA %.0f s   ", (long long)i + 1, count,
                   rec["grade"]["accuracy"].get<double>(), src.tally().overall.accuracy(), el,
                   el / double(i + 1) * double(count - (long long)i - 1));
      if ((long long)i + 1 == count) std::fprintf(stderr, "\n");
    }
  };
  ev::run_eval(pipe, src, lo);
  if (out) out->commit();

  const ev::ScenesTally& t = src.tally();
  const ev::PositionStats first3 = t.first3();
  const long long qa_c = t.qa_correct(), qa_t = t.qa_total();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json rep = src.report();
  rep["model"] = model_dir;
  rep["pvm_adapter"] = a.get("--pvm");
  rep["pvm"] = use_pvm;
  rep["vismem_adapter"] = a.get("--vismem");
  rep["vismem"] = vm.enabled;
  rep["visual_attention_scale"] = visual.scale;
  rep["visual_attention_restore"] = visual.restore;
  rep["history_window"] = visual.window;
  if (vm.enabled) {
    rep["vismem_invoke"] = vm.invoke;
    if (vm.invoke == "separators") rep["vismem_long_fraction"] = vm.long_fraction;
  }
  rep["seconds"] = secs;
  if (a.has("--csv")) pvm::atomic_write_file(a.get("--csv"), src.by_position_csv());
  if (json_out) {
    std::printf("%s\n", rep.dump().c_str());
    return 0;
  }
  std::printf("scenes eval: %lld held-out scenes (seed %lld, %d-%d objects), model %s%s\n", count, seed, opt.min_objects,
              opt.max_objects, model_dir.c_str(),
              a.has("--pvm") ? (" + PVM " + a.get("--pvm") + (use_pvm ? "" : " (off)")).c_str() : (use_pvm ? "" : " (PVM off)"));
  std::printf("attribute accuracy: %.4f overall, %.4f on the first 3 objects\n", t.overall.accuracy(), first3.accuracy());
  auto print_attrs = [&](const char* what, const ev::PositionStats& ps) {
    std::printf("  %s: shape %.3f, colour %.3f, size %.3f", what, ps.rate(ps.shape), ps.rate(ps.color), ps.rate(ps.size));
    if (opt.textures) std::printf(", texture %.3f", ps.rate(ps.texture));
    if (opt.digits) std::printf(", digit %.3f", ps.rate(ps.digit));
    std::printf("\n");
  };
  print_attrs("by attribute, all objects", t.overall);
  print_attrs("by attribute, first 3 objects", first3);
  std::printf("objects: %lld, described %lld, missing %lld, hallucinated %lld; count stated right in %lld/%lld; exact %lld/%lld\n",
              t.overall.objects, t.overall.matched, t.missing, t.hallucinated, t.count_ok, count, t.exact, count);
  std::printf("generated %.1f tokens per description on average, %lld truncated at --max-new-tokens\n",
              double(t.gen_tokens) / double(count), t.truncated);
  std::printf("decode: %.2f ms per token%s\n", rep["decode_ms_per_token"].get<double>(),
              vm.enabled ? (", " + std::to_string(t.invocations) + " VisMem memories inserted").c_str() : "");
  std::printf("\n%8s %8s %10s %9s %7s %7s %7s\n", "position", "objects", "described", "accuracy", "shape", "colour", "size");
  for (auto& [p, ps] : t.by_pos)
    std::printf("%8d %8lld %10lld %9.4f %7.3f %7.3f %7.3f\n", p, ps.objects, ps.matched, ps.accuracy(), ps.rate(ps.shape),
                ps.rate(ps.color), ps.rate(ps.size));
  if (qa_t) {
    std::printf("\nQA accuracy: %.4f (%lld/%lld)", double(qa_c) / qa_t, qa_c, qa_t);
    for (auto& [k, v] : t.qa_by_kind)
      std::printf("; %s %.3f (%lld)", k.c_str(), v.second ? double(v.first) / v.second : 0.0, v.second);
    std::printf("\n");
  }
  std::printf("%.1f s\n", secs);
  return 0;
}

// ---- VLMEvalKit TSV / JSONL ---------------------------------------------------------------------

int run_dataset(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv,
                   {"--data", "--model", "--pvm", "--runs", "--temperature", "--top-p", "--top-k", "--seed",
                    "--max-new-tokens", "--limit", "--out", "--prompt-style", "--system", "--dtype", "--device", "--threads",
                    "--tokenizer", "--bad-lines"},
                   {"--json", "--resume", "--no-pvm", "--quiet"});
  const std::string data_path = a.require("--data");
  const bool json_out = a.has("--json"), quiet = a.has("--quiet");
  const long long runs = a.get_int("--runs", 1, 1, 1000);
  const double temp = a.get_double("--temperature", 0.0);
  if (temp < 0) throw pvm::Error("--temperature must be >= 0 (0 = greedy)");
  const double top_p = a.get_double("--top-p", 1.0);
  const long long top_k = a.get_int("--top-k", 0, 0, 1 << 30);
  const long long seed = a.get_int("--seed", 0, 0, INT64_MAX);
  const long long max_new = a.get_int("--max-new-tokens", 1024, 1, 1 << 20);
  const long long limit = a.get_int("--limit", 0, 0, INT64_MAX);  // 0 = all items
  const auto style = ev::parse_prompt_style(a.get("--prompt-style", "dataset"));
  const std::string out_path = a.get("--out");
  const bool resume = a.has("--resume");
  if (resume && out_path.empty()) throw pvm::Error("--resume needs --out FILE.jsonl (the log to continue)");
  const bool use_pvm = !a.has("--no-pvm");
  const std::string model_dir = pvm::model_dir_or_default(a.get("--model"));
  ev::DatasetSettings ds;
  ds.style = style;
  ds.system = a.get("--system");
  ds.seed = uint64_t(seed);
  ds.max_new_tokens = max_new;
  pvm::SamplingParams& sp = ds.sampling;
  sp.do_sample = temp > 0;
  sp.temperature = temp > 0 ? temp : 1.0;
  sp.top_p = top_p;
  sp.top_k = top_k;
  sp.validate();
  if (runs > 1 && temp == 0 && !quiet)
    std::fprintf(stderr, "note: --runs %lld with greedy decoding (--temperature 0) repeats the same answers\n", runs);

  const std::string bad_lines = a.get("--bad-lines", "skip");
  if (bad_lines != "skip" && bad_lines != "fatal") throw pvm::Error("option --bad-lines: expected skip or fatal, got '" + bad_lines + "'");

  ev::EvalData data = ev::load_eval_data(data_path);
  if (data.skipped_no_image && !quiet)
    std::fprintf(stderr, "%s: %d rows without an image skipped (as VLMEvalKit does)\n", data_path.c_str(), data.skipped_no_image);
  if (limit > 0 && (size_t)limit < data.items.size()) data.items.resize(size_t(limit));
  // Every image is decoded now, not when its item comes up (the training data's policy).
  pvm::train::BadLinePolicy policy;
  policy.fatal = bad_lines == "fatal";
  const int64_t bad_items = ev::validate_images(data, policy);
  ev::DatasetSource src(data_path, std::move(data), ds);  // throws when no item is usable
  std::vector<ev::EvalItem>& items = src.items();

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
    auto pipe = pvm::open_pipeline(pvm::cli::open_options(a, quiet));
    std::signal(SIGINT, on_sigint);
    const bool tty = ::isatty(2);
    const auto t0 = std::chrono::steady_clock::now();
    auto last_print = t0;
    long long n_done = 0, n_correct = 0;
    ev::LoopOptions lo;
    lo.runs = int(runs);
    lo.use_pvm = use_pvm;
    lo.cancel = &g_cancel;
    lo.done = [&](const std::string& key, int run) { return done.count({key, run}) > 0; };
    lo.on_record = [&](const json& rec, size_t k, int run) {
      if (rec.value("kind", "") == "error") std::fprintf(stderr, "%s%s\n", tty ? "\n" : "", rec.value("error", "").c_str());
      if (log) {
        std::string l = rec.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        if (std::fwrite(l.data(), 1, l.size(), log) != l.size() || std::fflush(log) != 0)
          throw pvm::file_error(out_path, "write failed");
      }
      records.push_back(rec);
      done.insert({items[k].key, run});
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
    };
    ev::run_eval(pipe, src, lo);
    if (!quiet && tty) std::fprintf(stderr, "\n");
  }
  // The report reads the records back from the log (so old and new runs count alike).
  if (log) {
    std::fflush(log);
    records = read_log(out_path, false).records;
  }
  json rep = ev::dataset_report(header, records, items, int(runs));
  rep["skipped_bad_items"] = bad_items;
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

int run_eval(const std::vector<std::string>& argv) {
  for (auto& s : argv)
    if (s == "--task" || s.rfind("--task=", 0) == 0) return run_scenes(argv);
  return run_dataset(argv);
}

}  // namespace

PVM_COMMAND("eval", "rule-only accuracy on a VLMEvalKit TSV or a JSONL of open questions (or --task scenes)",
            "--data FILE.tsv|FILE.jsonl [--model DIR] [--pvm ADAPTER] [--no-pvm] [--runs N --temperature T "
            "--top-p P --top-k K --seed S] [--max-new-tokens N] [--limit N] [--prompt-style dataset|qwen3vl] "
            "[--system TEXT] [--out FILE.jsonl [--resume]] [--bad-lines skip|fatal] [--dtype D] [--device D] [--threads N] "
            "[--tokenizer FILE] [--json] [--quiet]\n  or: pvm eval --task scenes [--model DIR] [--pvm ADAPTER] [--no-pvm] [--count N] [--seed S] "
            "[--objects MIN-MAX] [--size PX] [--textures] [--digits] [--max-new-tokens N] [--qa-per-scene K] "
            "[--qa-max-new-tokens N] [--device D] [--threads N] [--dtype T] [--tokenizer FILE] [--json] [--out FILE.jsonl] "
            "[--csv FILE.csv] [--vismem ADAPTER [--vismem-invoke model|separators] [--vismem-max N] [--vismem-p P] [--vismem-long F] "
            "[--no-vismem]] [--visual-scale S] [--visual-restore K] [--history-window N] [--quiet]",
            run_eval);
