#include "app/cli/eval_scenes.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/scenes.h"
#include "engine/device.h"
#include "engine/pipeline.h"
#include "engine/pvm.h"

namespace pvm::cli {

namespace {

namespace sc = pvm::scenes;
using nlohmann::json;

// Per-attribute counts show which attribute limits the accuracy (an unmatched object counts as
// wrong on every attribute, as in the overall accuracy).
struct PositionStats {
  long long objects = 0, matched = 0, attributes_total = 0, attributes_correct = 0;
  long long shape = 0, color = 0, size = 0, texture = 0, digit = 0;
  double accuracy() const { return attributes_total ? double(attributes_correct) / attributes_total : 0.0; }
  double rate(long long n) const { return objects ? double(n) / double(objects) : 0.0; }
  void add(const PositionStats& o) {
    objects += o.objects, matched += o.matched, attributes_total += o.attributes_total;
    attributes_correct += o.attributes_correct;
    shape += o.shape, color += o.color, size += o.size, texture += o.texture, digit += o.digit;
  }
  // (name, rate) of each attribute the scene options grade, in report order.
  std::vector<std::pair<std::string, double>> rates(const pvm::scenes::SceneOptions& opt) const {
    std::vector<std::pair<std::string, double>> v{{"shape", rate(shape)}, {"color", rate(color)}, {"size", rate(size)}};
    if (opt.textures) v.emplace_back("texture", rate(texture));
    if (opt.digits) v.emplace_back("digit", rate(digit));
    return v;
  }
  json attributes(const pvm::scenes::SceneOptions& opt) const {
    json j = json::object();
    for (auto& [name, r] : rates(opt)) j[name] = r;
    return j;
  }
};

std::string greedy(const Pipeline& pipe, Qwen3VLForConditionalGeneration& model, const ImageRGB& img,
                   const std::string& prompt, int64_t max_new, bool use_pvm, int64_t* n_tokens, std::string* finish) {
  PromptSpec spec;
  spec.text = prompt;
  spec.images.push_back(img);
  auto prep = pipe.prepare(spec);
  auto& req = prep.request;
  req.max_new_tokens = max_new;
  req.sampling.do_sample = false;
  req.pvm = use_pvm;
  auto res = generate(model, req);
  if (n_tokens) *n_tokens = static_cast<int64_t>(res.tokens[0].size());
  if (finish) *finish = res.finish[0];
  return pipe.decode(res.tokens[0], true);
}

}  // namespace

int run_scenes_eval(const std::vector<std::string>& argv) {
  Args a(argv,
         {"--task", "--model", "--pvm", "--count", "--seed", "--objects", "--max-new-tokens", "--qa-per-scene",
          "--qa-max-new-tokens", "--out", "--csv", "--device", "--dtype", "--tokenizer"},
         {"--json", "--no-pvm", "--textures", "--digits", "--quiet"});
  if (a.has("--task") && a.get("--task") != "scenes") throw Error("--task: expected 'scenes', got '" + a.get("--task") + "'");
  const std::string model_dir = a.get("--model", default_model_dir());
  if (model_dir.empty()) throw Error("no --model given and the default model (assets/default-model) is not present");
  const long long count = a.get_int("--count", 200);
  if (count < 1 || count > 1000000) throw Error("--count must be in 1..1000000");
  const long long seed = a.get_int("--seed", 0);
  if (seed < 0) throw Error("--seed must be >= 0");
  const long long max_new = a.get_int("--max-new-tokens", 768);
  if (max_new < 1 || max_new > 65536) throw Error("--max-new-tokens must be in 1..65536");
  const long long qa_n = a.get_int("--qa-per-scene", 2);
  if (qa_n < 0 || qa_n > 64) throw Error("--qa-per-scene must be in 0..64");
  const long long qa_max_new = a.get_int("--qa-max-new-tokens", 96);
  if (qa_max_new < 1 || qa_max_new > 65536) throw Error("--qa-max-new-tokens must be in 1..65536");
  sc::SceneOptions opt;
  if (a.has("--objects")) sc::parse_objects_option(a.get("--objects"), opt);
  opt.textures = a.has("--textures");
  opt.digits = a.has("--digits");
  opt.validate("options");
  const bool json_out = a.has("--json"), quiet = a.has("--quiet");
  const bool use_pvm = !a.has("--no-pvm");

  auto dev = parse_device(a.get("--device", "auto"));
  LoadOptions lo;
  lo.device = dev;
  lo.dtype = parse_dtype(a.get("--dtype", "auto"), dev);
  if (!quiet) std::fprintf(stderr, "loading %s (%s, %s)...\n", model_dir.c_str(), dev.str().c_str(), dtype_name(lo.dtype).c_str());
  auto pipe = Pipeline::open(model_dir, lo, a.get("--tokenizer"));
  if (a.has("--pvm")) load_pvm_adapter(*pipe.model.model, a.get("--pvm"));
  auto& model = pipe.model.model;

  // Records are streamed to a temp file and renamed at the end (a killed run leaves no half file).
  std::unique_ptr<AtomicWriter> out;
  if (a.has("--out")) out = std::make_unique<AtomicWriter>(a.get("--out"));

  std::map<int, PositionStats> by_pos;
  PositionStats overall;
  long long hallucinated = 0, missing = 0, count_ok = 0, exact = 0, truncated = 0, gen_tokens = 0;
  std::map<std::string, std::pair<long long, long long>> qa_by_kind;  // kind -> (correct, total)
  const auto t0 = std::chrono::steady_clock::now();
  for (long long i = 0; i < count; ++i) {
    const uint64_t s = sc::scene_seed(static_cast<uint64_t>(seed), 1, static_cast<uint64_t>(i));
    auto scene = sc::generate(s, opt);
    auto rimg = sc::render(scene);
    ImageRGB img;
    img.width = rimg.width, img.height = rimg.height, img.rgb = std::move(rimg.rgb);
    img.source = "scene " + std::to_string(s);

    int64_t ntok = 0;
    std::string finish;
    const std::string text = greedy(pipe, model, img, sc::describe_prompt(), max_new, use_pvm, &ntok, &finish);
    auto g = sc::grade(scene, text);
    gen_tokens += ntok;
    truncated += finish == "length";
    hallucinated += g.hallucinated;
    missing += g.missing;
    count_ok += g.count_ok;
    exact += g.accuracy == 1.0 && g.hallucinated == 0 && g.missing == 0;
    for (auto& o : g.objects) {
      auto& p = by_pos[o.position];
      PositionStats one;
      one.objects = 1;
      one.matched = o.matched;
      one.attributes_total = o.attributes_total;
      one.attributes_correct = o.attributes_correct;
      one.shape = o.shape_ok, one.color = o.color_ok, one.size = o.size_ok;
      one.texture = opt.textures && o.texture_ok, one.digit = opt.digits && o.digit_ok;
      p.add(one);
      overall.add(one);
    }
    json qa_rec = json::array();
    for (auto& q : sc::questions(scene, sc::qa_seed(s), static_cast<int>(qa_n))) {
      const std::string ans = greedy(pipe, model, img, sc::qa_prompt(q), qa_max_new, use_pvm, nullptr, nullptr);
      const bool ok = sc::answer_correct(ans, q.answer);
      auto& k = qa_by_kind[q.kind];
      k.first += ok;
      k.second += 1;
      qa_rec.push_back({{"kind", q.kind}, {"question", q.question}, {"answer", q.answer}, {"generated", ans}, {"correct", ok}});
    }
    if (out) {
      json rec = {{"index", i},         {"seed", s},         {"objects", scene.objects.size()}, {"truth", sc::describe(scene)},
                  {"generated", text},  {"finish", finish},  {"grade", g.to_json()},          {"qa", qa_rec}};
      std::string line = rec.dump() + "\n";
      out->write(line.data(), line.size());
    }
    if (!quiet) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rscene %lld/%lld: accuracy %.3f (running %.3f), %.0f s, ETA %.0f s   ", i + 1, count, g.accuracy,
                   overall.accuracy(), el, el / double(i + 1) * double(count - i - 1));
      if (i + 1 == count) std::fprintf(stderr, "\n");
    }
  }
  if (out) out->commit();

  // First three positions: the check that the model itself sees well before dilution.
  PositionStats first3;
  for (int p = 1; p <= 3; ++p)
    if (by_pos.count(p)) first3.add(by_pos[p]);
  long long qa_c = 0, qa_t = 0;
  for (auto& [k, v] : qa_by_kind) qa_c += v.first, qa_t += v.second;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  json rep;
  rep["task"] = "scenes";
  rep["model"] = model_dir;
  rep["pvm_adapter"] = a.get("--pvm");
  rep["pvm"] = use_pvm;
  rep["count"] = count;
  rep["seed"] = seed;
  rep["objects"] = std::to_string(opt.min_objects) + "-" + std::to_string(opt.max_objects);
  rep["textures"] = opt.textures;
  rep["digits"] = opt.digits;
  rep["accuracy"] = overall.accuracy();
  rep["accuracy_first3"] = first3.accuracy();
  rep["by_attribute"] = overall.attributes(opt);
  rep["by_attribute_first3"] = first3.attributes(opt);
  rep["objects_total"] = overall.objects;
  rep["objects_described"] = overall.matched;
  rep["hallucinated"] = hallucinated;
  rep["missing"] = missing;
  rep["count_stated_correctly"] = count_ok;
  rep["exact_descriptions"] = exact;
  rep["truncated"] = truncated;
  rep["mean_generated_tokens"] = double(gen_tokens) / double(count);
  rep["seconds"] = secs;
  json bp = json::array();
  for (auto& [p, st] : by_pos)
    bp.push_back({{"position", p},
                  {"objects", st.objects},
                  {"described", st.matched},
                  {"attributes_total", st.attributes_total},
                  {"attributes_correct", st.attributes_correct},
                  {"accuracy", st.accuracy()},
                  {"by_attribute", st.attributes(opt)}});
  rep["by_position"] = bp;
  json qk = json::object();
  for (auto& [k, v] : qa_by_kind)
    qk[k] = {{"correct", v.first}, {"total", v.second}, {"accuracy", v.second ? double(v.first) / v.second : 0.0}};
  rep["qa"] = {{"correct", qa_c}, {"total", qa_t}, {"accuracy", qa_t ? double(qa_c) / qa_t : 0.0}, {"by_kind", qk}};

  if (a.has("--csv")) {  // accuracy by object position, for plots (experiments/dilution)
    std::string csv = "position,objects,described,attributes_total,attributes_correct,accuracy";
    for (auto& [name, r] : PositionStats{}.rates(opt)) csv += "," + name;
    csv += "\n";
    for (auto& [p, st] : by_pos) {
      csv += std::to_string(p) + "," + std::to_string(st.objects) + "," + std::to_string(st.matched) + "," +
             std::to_string(st.attributes_total) + "," + std::to_string(st.attributes_correct) + "," +
             std::to_string(st.accuracy());
      for (auto& [name, r] : st.rates(opt)) csv += "," + std::to_string(r);
      csv += "\n";
    }
    atomic_write_file(a.get("--csv"), csv);
  }
  if (json_out) {
    std::printf("%s\n", rep.dump().c_str());
    return 0;
  }
  std::printf("scenes eval: %lld held-out scenes (seed %lld, %d-%d objects), model %s%s\n", count, seed, opt.min_objects,
              opt.max_objects, model_dir.c_str(),
              a.has("--pvm") ? (" + PVM " + a.get("--pvm") + (use_pvm ? "" : " (off)")).c_str() : (use_pvm ? "" : " (PVM off)"));
  std::printf("attribute accuracy: %.4f overall, %.4f on the first 3 objects\n", overall.accuracy(), first3.accuracy());
  auto print_attrs = [&](const char* what, const PositionStats& st) {
    std::printf("  %s: shape %.3f, colour %.3f, size %.3f", what, st.rate(st.shape), st.rate(st.color), st.rate(st.size));
    if (opt.textures) std::printf(", texture %.3f", st.rate(st.texture));
    if (opt.digits) std::printf(", digit %.3f", st.rate(st.digit));
    std::printf("\n");
  };
  print_attrs("by attribute, all objects", overall);
  print_attrs("by attribute, first 3 objects", first3);
  std::printf("objects: %lld, described %lld, missing %lld, hallucinated %lld; count stated right in %lld/%lld; exact %lld/%lld\n",
              overall.objects, overall.matched, missing, hallucinated, count_ok, count, exact, count);
  std::printf("generated %.1f tokens per description on average, %lld truncated at --max-new-tokens\n",
              double(gen_tokens) / double(count), truncated);
  std::printf("\n%8s %8s %10s %9s %7s %7s %7s\n", "position", "objects", "described", "accuracy", "shape", "colour", "size");
  for (auto& [p, st] : by_pos)
    std::printf("%8d %8lld %10lld %9.4f %7.3f %7.3f %7.3f\n", p, st.objects, st.matched, st.accuracy(), st.rate(st.shape),
                st.rate(st.color), st.rate(st.size));
  if (qa_t) {
    std::printf("\nQA accuracy: %.4f (%lld/%lld)", double(qa_c) / qa_t, qa_c, qa_t);
    for (auto& [k, v] : qa_by_kind) std::printf("; %s %.3f (%lld)", k.c_str(), v.second ? double(v.first) / v.second : 0.0, v.second);
    std::printf("\n");
  }
  std::printf("%.1f s\n", secs);
  return 0;
}

}  // namespace pvm::cli
