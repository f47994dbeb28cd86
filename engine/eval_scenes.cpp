#include "engine/eval_scenes.h"

namespace pvm::eval {

namespace sc = pvm::scenes;
using nlohmann::json;

void PositionStats::add(const PositionStats& o) {
  objects += o.objects, matched += o.matched, attributes_total += o.attributes_total;
  attributes_correct += o.attributes_correct;
  shape += o.shape, color += o.color, size += o.size, texture += o.texture, digit += o.digit;
}

std::vector<std::pair<std::string, double>> PositionStats::rates(const sc::SceneOptions& opt) const {
  std::vector<std::pair<std::string, double>> v{{"shape", rate(shape)}, {"color", rate(color)}, {"size", rate(size)}};
  if (opt.textures) v.emplace_back("texture", rate(texture));
  if (opt.digits) v.emplace_back("digit", rate(digit));
  return v;
}

json PositionStats::attributes(const sc::SceneOptions& opt) const {
  json j = json::object();
  for (auto& [name, r] : rates(opt)) j[name] = r;
  return j;
}

PositionStats ScenesTally::first3() const {
  PositionStats f;
  for (int p = 1; p <= 3; ++p)
    if (auto it = by_pos.find(p); it != by_pos.end()) f.add(it->second);
  return f;
}

long long ScenesTally::qa_correct() const {
  long long c = 0;
  for (auto& [k, v] : qa_by_kind) c += v.first;
  return c;
}

long long ScenesTally::qa_total() const {
  long long c = 0;
  for (auto& [k, v] : qa_by_kind) c += v.second;
  return c;
}

std::optional<json> ScenesSource::evaluate(size_t i, int, const Ask& ask) {
  const sc::SceneOptions& opt = s_.scene;
  const uint64_t s = sc::scene_seed(s_.seed, 1, uint64_t(i));
  auto scene = sc::generate(s, opt);
  auto rimg = sc::render(scene);
  ImageRGB img;
  img.width = rimg.width, img.height = rimg.height, img.rgb = std::move(rimg.rgb);
  img.source = "scene " + std::to_string(s);
  SamplingParams greedy;
  greedy.do_sample = false;
  auto prompt = [&](const std::string& text) {
    PromptSpec spec;
    spec.text = text;
    spec.images.push_back(img);
    return spec;
  };

  const Answer a = ask(prompt(sc::describe_prompt()), s_.max_new_tokens, greedy);
  if (a.finish == "cancelled") return std::nullopt;
  auto g = sc::grade(scene, a.text);
  ++t_.scenes;
  t_.gen_tokens += int64_t(a.ids.size());
  t_.invocations += a.invocations;
  t_.decode_ms += a.decode_ms;
  t_.truncated += a.finish == "length";
  t_.hallucinated += g.hallucinated;
  t_.missing += g.missing;
  t_.count_ok += g.count_ok;
  t_.exact += g.accuracy == 1.0 && g.hallucinated == 0 && g.missing == 0;
  for (auto& o : g.objects) {
    PositionStats one;
    one.objects = 1;
    one.matched = o.matched;
    one.attributes_total = o.attributes_total;
    one.attributes_correct = o.attributes_correct;
    one.shape = o.shape_ok, one.color = o.color_ok, one.size = o.size_ok;
    one.texture = opt.textures && o.texture_ok, one.digit = opt.digits && o.digit_ok;
    t_.by_pos[o.position].add(one);
    t_.overall.add(one);
  }
  json qa_rec = json::array();
  for (auto& q : sc::questions(scene, sc::qa_seed(s), s_.qa_per_scene)) {
    const std::string ans = ask(prompt(sc::qa_prompt(q)), s_.qa_max_new_tokens, greedy).text;
    const bool ok = sc::answer_correct(ans, q.answer);
    auto& k = t_.qa_by_kind[q.kind];
    k.first += ok;
    k.second += 1;
    qa_rec.push_back({{"kind", q.kind}, {"question", q.question}, {"answer", q.answer}, {"generated", ans}, {"correct", ok}});
  }
  return json{{"index", i},        {"seed", s},          {"objects", scene.objects.size()}, {"truth", sc::describe(scene)},
              {"generated", a.text}, {"finish", a.finish}, {"tokens", a.ids.size()},    {"invocations", a.invocations},
              {"decode_ms", a.decode_ms}, {"grade", g.to_json()}, {"qa", qa_rec}};
}

json ScenesSource::report() const {
  const sc::SceneOptions& opt = s_.scene;
  const ScenesTally& t = t_;
  const PositionStats first3 = t.first3();
  const long long count = s_.count;
  json rep;
  rep["task"] = "scenes";
  rep["count"] = count;
  rep["seed"] = s_.seed;
  rep["objects"] = std::to_string(opt.min_objects) + "-" + std::to_string(opt.max_objects);
  rep["textures"] = opt.textures;
  rep["digits"] = opt.digits;
  rep["accuracy"] = t.overall.accuracy();
  rep["accuracy_first3"] = first3.accuracy();
  rep["by_attribute"] = t.overall.attributes(opt);
  rep["by_attribute_first3"] = first3.attributes(opt);
  rep["objects_total"] = t.overall.objects;
  rep["objects_described"] = t.overall.matched;
  rep["hallucinated"] = t.hallucinated;
  rep["missing"] = t.missing;
  rep["count_stated_correctly"] = t.count_ok;
  rep["exact_descriptions"] = t.exact;
  rep["truncated"] = t.truncated;
  rep["mean_generated_tokens"] = double(t.gen_tokens) / double(count);
  // Time cost per generated token of the descriptions (VisMem's inserted memories included).
  rep["decode_ms_per_token"] = t.gen_tokens ? t.decode_ms / double(t.gen_tokens) : 0.0;
  rep["invocations"] = t.invocations;
  rep["invocations_per_description"] = t.scenes ? double(t.invocations) / double(t.scenes) : 0.0;
  json bp = json::array();
  for (auto& [p, st] : t.by_pos)
    bp.push_back({{"position", p},
                  {"objects", st.objects},
                  {"described", st.matched},
                  {"attributes_total", st.attributes_total},
                  {"attributes_correct", st.attributes_correct},
                  {"accuracy", st.accuracy()},
                  {"by_attribute", st.attributes(opt)}});
  rep["by_position"] = bp;
  json qk = json::object();
  for (auto& [k, v] : t.qa_by_kind)
    qk[k] = {{"correct", v.first}, {"total", v.second}, {"accuracy", v.second ? double(v.first) / v.second : 0.0}};
  const long long qa_c = t.qa_correct(), qa_t = t.qa_total();
  rep["qa"] = {{"correct", qa_c}, {"total", qa_t}, {"accuracy", qa_t ? double(qa_c) / qa_t : 0.0}, {"by_kind", qk}};
  return rep;
}

std::string ScenesSource::by_position_csv() const {
  const sc::SceneOptions& opt = s_.scene;
  std::string csv = "position,objects,described,attributes_total,attributes_correct,accuracy";
  for (auto& [name, r] : PositionStats{}.rates(opt)) csv += "," + name;
  csv += "\n";
  for (auto& [p, st] : t_.by_pos) {
    csv += std::to_string(p) + "," + std::to_string(st.objects) + "," + std::to_string(st.matched) + "," +
           std::to_string(st.attributes_total) + "," + std::to_string(st.attributes_correct) + "," +
           std::to_string(st.accuracy());
    for (auto& [name, r] : st.rates(opt)) csv += "," + std::to_string(r);
    csv += "\n";
  }
  return csv;
}

}  // namespace pvm::eval
