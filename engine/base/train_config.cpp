#include "engine/base/train_config.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/paths.h"

namespace pvm::train {

using nlohmann::json;

namespace {

constexpr double kNoMax = std::numeric_limits<double>::infinity();

// Builds one row of the table.
struct Def {
  TrainField f;
  Def(const char* key, FieldType type, std::function<json(const TrainConfig&)> get,
      std::function<void(TrainConfig&, const json&)> set) {
    f.key = key;
    f.type = type;
    f.get = std::move(get);
    f.set = std::move(set);
  }
  Def& range(double lo, double hi, bool lo_open = false) {
    f.lo = lo;
    f.hi = hi;
    f.lo_open = lo_open;
    return *this;
  }
  Def& one_of(std::vector<std::string> c) {
    f.choices = std::move(c);
    return *this;
  }
  Def& path(PathKind p) {
    f.path = p;
    return *this;
  }
  Def& common() {
    f.common = true;
    return *this;
  }
  Def& help(const char* h) {
    f.help = h;
    return *this;
  }
  operator TrainField() const { return f; }
};

// Getter and setter of one TrainConfig member (the value handed to the setter is already checked).
#define PVM_MEMBER(m) \
  [](const TrainConfig& c) { return json(c.m); }, [](TrainConfig& c, const json& v) { v.get_to(c.m); }

std::vector<TrainField> make_fields() {
  using T = FieldType;
  return {
      Def("mode", T::Choice, PVM_MEMBER(mode)).one_of({"sft", "grpo", "vismem"}).common()
          .help("sft: supervised fine-tuning on chat samples; grpo: reinforcement learning on sampled answers scored by a reward; "
                "vismem: VisMem stage 1 or 2 (docs/VISMEM.md)"),
      Def("model", T::Text, PVM_MEMBER(model)).path(PathKind::Dir).common()
          .help("base checkpoint folder (empty: assets/default-model)"),
      Def("pvm.layers", T::Layers, PVM_MEMBER(pvm.layers)).common()
          .help("decoder layers that get fresh PVM blocks (docs/MODEL.md); not together with adapter"),
      Def("pvm.hidden_size", T::Int, PVM_MEMBER(pvm.hidden_size)).range(1, kNoMax).help("width of each fresh PVM block"),
      Def("pvm.variant", T::Choice, PVM_MEMBER(pvm.variant)).one_of({"pvm", "mlp"})
          .help("pvm: the PVM block; mlp: an iso-parameter MLP branch (ablation)"),
      Def("pvm.source", T::Choice, PVM_MEMBER(pvm.source)).one_of({"embeddings", "hidden"})
          .help("what the blocks read: the image embeddings, or the decoder's hidden states at the image positions"),
      Def("adapter", T::Text, PVM_MEMBER(adapter)).path(PathKind::Dir).common()
          .help("start from this PVM adapter folder instead of fresh blocks"),
      Def("data", T::Text, PVM_MEMBER(data)).path(PathKind::File).common()
          .help("training data (JSONL): chat samples for SFT, prompts with solutions for GRPO"),
      Def("eval_data", T::Text, PVM_MEMBER(eval_data)).path(PathKind::File)
          .help("held-out SFT data: its loss every eval_every steps"),
      Def("trainable", T::Choice, PVM_MEMBER(trainable)).one_of({"pvm", "pvm+llm", "llm", "all", "vismem", "vismem-policy"}).common()
          .help("pvm: only the PVM blocks (the result is an adapter); pvm+llm, llm: the language model and PVM "
                "(vision tower and merger frozen); all: every parameter; vismem: VisMem's constructor and formers "
                "(stage 1); vismem-policy: VisMem's four token rows (stage 2)"),
      Def("steps", T::Int, PVM_MEMBER(steps)).range(0, kNoMax).common().help("optimizer steps (0: one epoch over data)"),
      Def("batch_size", T::Int, PVM_MEMBER(batch_size)).range(1, kNoMax).common()
          .help("samples per optimizer step, over all processes"),
      Def("grad_accum", T::Int, PVM_MEMBER(grad_accum)).range(1, kNoMax).common()
          .help("micro-batches per process and step (batch_size must divide by it)"),
      Def("max_length", T::Int, PVM_MEMBER(max_length)).range(2, kNoMax).common()
          .help("tokens per sample; longer samples are cut at the end"),
      Def("lr", T::Real, PVM_MEMBER(lr)).range(0, 10, true).common().help("peak learning rate"),
      Def("min_lr_ratio", T::Real, PVM_MEMBER(min_lr_ratio)).range(0, 1).help("the cosine ends at lr * min_lr_ratio"),
      Def("warmup_ratio", T::Real, PVM_MEMBER(warmup_ratio)).range(0, 1).common()
          .help("linear warm-up over this share of the steps"),
      Def("warmup_steps", T::Int, PVM_MEMBER(warmup_steps)).range(-1, kNoMax)
          .help("warm-up steps; overrides warmup_ratio when >= 0"),
      Def("schedule", T::Choice, PVM_MEMBER(schedule)).one_of({"cosine", "constant"}).common()
          .help("learning rate after the warm-up"),
      Def("weight_decay", T::Real, PVM_MEMBER(weight_decay)).range(0, 10).help("AdamW weight decay (matrices only)"),
      Def("visual_lr_scale", T::Real, PVM_MEMBER(visual_lr_scale)).range(0, 100)
          .help("learning rate multiplier for the vision tower and its mergers"),
      Def("betas", T::Pair, PVM_MEMBER(betas)).range(0, 1).help("AdamW beta1, beta2"),
      Def("eps", T::Real, PVM_MEMBER(eps)).range(0, 1, true).help("AdamW epsilon"),
      Def("max_grad_norm", T::Real, PVM_MEMBER(max_grad_norm)).range(0, 1e9)
          .help("clip the gradient norm to this (0: no clipping)"),
      Def("seed", T::Int, PVM_MEMBER(seed)).range(0, kNoMax).common().help("data order, PVM init and rollout sampling"),
      Def("save_every", T::Int, PVM_MEMBER(save_every)).range(0, kNoMax).common()
          .help("checkpoint every N steps (0: only at the end)"),
      Def("log_every", T::Int, PVM_MEMBER(log_every)).range(1, kNoMax).help("a metrics line every N steps"),
      Def("eval_every", T::Int, PVM_MEMBER(eval_every)).range(0, kNoMax).help("eval_data loss every N steps (0: never)"),
      Def("keep_checkpoints", T::Int, PVM_MEMBER(keep_checkpoints)).range(1, kNoMax)
          .help("step checkpoints kept (older ones are removed)"),
      Def("out", T::Text, PVM_MEMBER(out)).path(PathKind::OutDir).common().help("run folder"),
      Def("device", T::Text, PVM_MEMBER(device)).common().help("cpu, cuda or cuda:N"),
      Def("dtype", T::Choice, PVM_MEMBER(dtype)).one_of({"f32", "bf16"}).common()
          .help("bf16: bf16 compute with f32 master weights and optimizer state (CUDA only)"),
      Def("grad_checkpointing", T::Bool, PVM_MEMBER(grad_checkpointing))
          .help("recompute each decoder layer during backward: less memory, more time"),
      Def("history_window", T::Int, PVM_MEMBER(history_window)).range(0, kNoMax)
          .help("SFT: an answer token attends to the prompt and only the last N answer tokens (0: all of them)"),
      Def("visual_restore", T::Real, PVM_MEMBER(visual_restore)).range(-4, 4)
          .help("SFT: an answer token's attention on the image x (n / P)^K, n the keys it sees, P the prompt (0: off; K < 0: the image fades)"),
      Def("workers", T::Int, PVM_MEMBER(workers)).range(0, 64)
          .help("threads that decode and preprocess images ahead of the step"),
      Def("bad_lines", T::Choice, PVM_MEMBER(bad_lines)).one_of({"skip", "fatal"})
          .help("a bad data line or image: skip it with a warning, or stop the run"),
      Def("threads", T::Int, PVM_MEMBER(threads)).range(0, 1024).help("intra-op threads (0: LibTorch's default)"),
      Def("grpo.group_size", T::Int, PVM_MEMBER(grpo.group_size)).range(2, kNoMax).common().help("completions per prompt"),
      Def("grpo.prompts_per_step", T::Int, PVM_MEMBER(grpo.prompts_per_step)).range(1, kNoMax).common()
          .help("prompts per optimizer step, over all processes"),
      Def("grpo.temperature", T::Real, PVM_MEMBER(grpo.temperature)).range(0, 100, true).common()
          .help("sampling temperature of the rollouts"),
      Def("grpo.top_p", T::Real, PVM_MEMBER(grpo.top_p)).range(0, 1, true).help("nucleus sampling of the rollouts"),
      Def("grpo.max_new_tokens", T::Int, PVM_MEMBER(grpo.max_new_tokens)).range(1, kNoMax).common()
          .help("completion length limit (truncated completions are masked out)"),
      Def("grpo.eps_low", T::Real, PVM_MEMBER(grpo.eps_low)).range(0, 1).help("clip range of the ratio below 1"),
      Def("grpo.eps_high", T::Real, PVM_MEMBER(grpo.eps_high)).range(0, 10).help("clip range of the ratio above 1"),
      Def("grpo.beta", T::Real, PVM_MEMBER(grpo.beta)).range(0, 100)
          .help("KL weight to the starting policy (0: no reference model)"),
      Def("grpo.advantage", T::Choice, PVM_MEMBER(grpo.advantage)).one_of({"grpo", "drgrpo"})
          .help("grpo: (r - mean) / std within each group; drgrpo: r - mean"),
      Def("grpo.loss_agg", T::Choice, PVM_MEMBER(grpo.loss_agg)).one_of({"token-mean", "seq-mean", "drgrpo"})
          .help("how token losses are averaged (engine/grpo.h)"),
      Def("grpo.inner_epochs", T::Int, PVM_MEMBER(grpo.inner_epochs)).range(1, 100).help("optimizer steps per rollout"),
      Def("grpo.reward", T::Choice, PVM_MEMBER(grpo.reward)).one_of({"think_answer", "exact", "choice", "scene_description"}).common()
          .help("reward function (engine/base/rewards.h)"),
      Def("grpo.system", T::Text, PVM_MEMBER(grpo.system)).help("system prompt of the rollouts"),
      Def("vismem.adapter", T::Text, PVM_MEMBER(vismem.adapter)).path(PathKind::Dir).common()
          .help("VisMem adapter to start from (pvm init-vismem)"),
      Def("vismem.stage", T::Int, PVM_MEMBER(vismem.stage)).range(1, 2)
          .help("1: train the query constructor and memory formers, backbone frozen; 2: train when to invoke "
                "(the four token rows), constructor and formers frozen"),
      Def("vismem.p", T::Real, PVM_MEMBER(vismem.p)).range(0, 1).help("stage 1: chance of a memory after each separator"),
      Def("vismem.long_fraction", T::Real, PVM_MEMBER(vismem.long_fraction)).range(0, 1)
          .help("stage 1: share of long-term memories among the invocations"),
      Def("vismem.max_invocations", T::Int, PVM_MEMBER(vismem.max_invocations)).range(0, kNoMax)
          .help("memories per completion at most"),
      Def("vismem.type_penalty", T::Real, PVM_MEMBER(vismem.type_penalty)).range(0, 100)
          .help("stage 2: reward minus this x max(0, r_swap - r), r_swap the reward with every memory's type swapped"),
      Def("vismem.neg_penalty", T::Real, PVM_MEMBER(vismem.neg_penalty)).range(0, 100)
          .help("stage 2: reward minus this x max(0, r_skip - r), r_skip the reward with the memories skipped"),
  };
}
#undef PVM_MEMBER

// Reads typed keys from one JSON object and remembers which were seen (unknown keys are errors).
class Reader {
 public:
  Reader(const json& j, std::string where, std::string prefix) : j_(j), where_(std::move(where)), prefix_(std::move(prefix)) {
    if (!j_.is_object()) fail("", "expected an object, got " + std::string(j_.type_name()));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    std::string k = prefix_ + key;
    if (!k.empty() && k.back() == '.') k.pop_back();
    throw Error(where_ + ": " + (k.empty() ? "" : k + ": ") + what);
  }
  // Absent keys take their default; a null is an error naming the key (never a silent default:
  // "seed": null is more likely a template left unfilled than a wish for seed 0).
  const json* get(const std::string& key) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return nullptr;
    if (it->is_null()) fail(key, "is null (give a value, or leave the key out for the default)");
    return &*it;
  }
  // The checked value of field f (null when the key is absent and not required).
  json read(const TrainField& f) {
    const std::string key = f.name();
    const json* v = get(key);
    if (f.type == FieldType::Layers) return layers(key, v);
    if (!v) return nullptr;
    switch (f.type) {
      case FieldType::Text:
      case FieldType::Choice: return str(key, *v, f.choices);
      case FieldType::Int: return integer(key, *v, (int64_t)f.lo, std::isinf(f.hi) ? INT64_MAX : (int64_t)f.hi);
      case FieldType::Real: return number(key, *v, f.lo, f.hi, f.lo_open);
      case FieldType::Bool:
        if (!v->is_boolean()) fail(key, "expected true or false, got " + v->dump());
        return *v;
      case FieldType::Pair: return pair(key, *v, f.lo, f.hi);
      case FieldType::Layers: break;
    }
    return nullptr;
  }
  void finish() const {
    for (auto& [k, v] : j_.items())
      if (!seen_.count(k)) fail(k, "unknown key");
  }

 private:
  json str(const std::string& key, const json& v, const std::vector<std::string>& allowed) const {
    if (!v.is_string()) fail(key, "expected a string, got " + v.dump());
    const std::string out = v.get<std::string>();
    if (allowed.empty()) return out;
    std::string list;
    for (auto& a : allowed) {
      if (out == a) return out;
      list += (list.empty() ? "" : ", ") + std::string("\"") + a + "\"";
    }
    fail(key, "must be one of " + list + ", got \"" + out + "\"");
  }
  json integer(const std::string& key, const json& v, int64_t lo, int64_t hi) const {
    int64_t out = 0;
    const std::string bounds = hi == INT64_MAX ? ">= " + std::to_string(lo) : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    // A whole number beyond 64 bits (JSON reads 99999999999999999999 as 1e20) is out of range, not
    // "not an integer"; an unsigned one above INT64_MAX must not wrap to a negative value.
    const bool whole_float = v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>();
    if ((v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) || (whole_float && std::fabs(v.get<double>()) >= 9e15))
      fail(key, "out of range: must be " + bounds + ", got " + v.dump());
    if (v.is_number_integer()) out = v.get<int64_t>();
    else if (whole_float) out = (int64_t)v.get<double>();
    else fail(key, "expected an integer, got " + v.dump());
    if (out < lo || out > hi) fail(key, "out of range: must be " + bounds + ", got " + std::to_string(out));
    return out;
  }
  json number(const std::string& key, const json& v, double lo, double hi, bool lo_open) const {
    if (!v.is_number()) fail(key, "expected a number, got " + v.dump());
    const double out = v.get<double>();
    if (!std::isfinite(out) || out < lo || out > hi || (lo_open && out == lo)) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "must be in %s%g, %g], got %g", lo_open ? "(" : "[", lo, hi, out);
      fail(key, buf);
    }
    return out;
  }
  json pair(const std::string& key, const json& v, double lo, double hi) const {
    if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
      fail(key, "expected two numbers [a, b], got " + v.dump());
    for (int i = 0; i < 2; ++i) {
      const double x = v[i].get<double>();
      if (!(x >= lo && x < hi)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "each must be in [%g, %g), got ", lo, hi);
        fail(key, buf + v.dump());
      }
    }
    return json::array({v[0].get<double>(), v[1].get<double>()});
  }
  json layers(const std::string& key, const json* v) const {
    if (!v || !v->is_array() || v->empty())
      fail(key, "expected a non-empty list of layer indices" + (v ? ", got " + v->dump() : std::string()));
    json out = json::array();
    for (auto& l : *v) {
      if (!l.is_number_integer() || l.get<int64_t>() < 0) fail(key, "expected non-negative integers, got " + l.dump());
      out.push_back(l.get<int64_t>());
    }
    return out;
  }

  const json& j_;
  std::string where_, prefix_;
  std::set<std::string> seen_;
};

}  // namespace

std::string TrainField::section() const {
  auto d = key.find('.');
  return d == std::string::npos ? "" : key.substr(0, d);
}

std::string TrainField::name() const {
  auto d = key.find('.');
  return d == std::string::npos ? key : key.substr(d + 1);
}

std::string TrainField::range_text() const {
  char b[96];
  switch (type) {
    case FieldType::Choice: {
      std::string s = "one of ";
      for (size_t i = 0; i < choices.size(); ++i) s += (i ? ", \"" : "\"") + choices[i] + "\"";
      return s;
    }
    case FieldType::Int:
      if (std::isinf(hi)) std::snprintf(b, sizeof b, ">= %lld", (long long)lo);
      else std::snprintf(b, sizeof b, "in [%lld, %lld]", (long long)lo, (long long)hi);
      return b;
    case FieldType::Real:
      std::snprintf(b, sizeof b, "in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
      return b;
    case FieldType::Pair:
      std::snprintf(b, sizeof b, "two numbers, each in [%g, %g)", lo, hi);
      return b;
    case FieldType::Layers: return "layer indices, e.g. 8,16,24";
    case FieldType::Bool: return "true or false";
    case FieldType::Text: return "";
  }
  return "";
}

const std::vector<TrainField>& train_fields() {
  static const std::vector<TrainField> fields = make_fields();
  return fields;
}

const TrainField* find_train_field(const std::string& key) {
  for (auto& f : train_fields())
    if (f.key == key) return &f;
  return nullptr;
}

int64_t TrainConfig::warmup_for(int64_t total) const {
  if (warmup_steps >= 0) return warmup_steps;
  return (int64_t)std::ceil(warmup_ratio * (double)total);  // HF: math.ceil(ratio * max_steps)
}

double TrainConfig::lr_at(int64_t step, int64_t total) const {
  const int64_t w = warmup_for(total);
  if (step < w) return lr * (double)step / (double)std::max<int64_t>(1, w);
  if (schedule == "constant") return lr;
  double progress = (double)(step - w) / (double)std::max<int64_t>(1, total - w);
  progress = std::min(1.0, std::max(0.0, progress));
  double c = 0.5 * (1.0 + std::cos(M_PI * progress));
  return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * c);
}

json TrainConfig::to_json() const {
  json j = json::object();
  for (const TrainField& f : train_fields()) {
    const std::string s = f.section();
    if (s == "pvm" && !pvm.enabled()) continue;  // no fresh blocks: no pvm section
    if (s == "vismem" && mode != "vismem") continue;
    (s.empty() ? j[f.key] : j[s][f.name()]) = f.get(*this);
  }
  return j;
}

TrainConfig parse_train_config(const json& j, const std::string& where) {
  TrainConfig c;
  c.source = where;
  c.model = default_model_dir();
  Reader top(j, where, "");
  // Fields in table order; a section's fields are contiguous, read from its object when given.
  std::string section;
  std::unique_ptr<Reader> sec;
  bool sec_given = false;
  for (const TrainField& f : train_fields()) {
    const std::string s = f.section();
    if (s != section) {
      if (sec) sec->finish();
      sec.reset();
      section = s;
      const json* v = s.empty() ? nullptr : top.get(s);
      sec_given = v != nullptr;
      if (v) sec = std::make_unique<Reader>(*v, where, s + ".");
    }
    if (!s.empty() && !sec_given) continue;
    json v = (s.empty() ? top : *sec).read(f);
    if (!v.is_null()) f.set(c, v);
  }
  if (sec) sec->finish();
  top.finish();
  // Cross-key checks.
  if (c.pvm.enabled() && !c.adapter.empty()) top.fail("adapter", "give either pvm (fresh blocks) or adapter, not both");
  if (c.model.empty()) top.fail("model", "no base model given and assets/default-model is not there");
  if (c.data.empty()) top.fail("data", "a training data file (JSONL) is required");
  if (c.batch_size % c.grad_accum != 0)
    top.fail("grad_accum", "batch_size " + std::to_string(c.batch_size) + " is not divisible by grad_accum " +
                               std::to_string(c.grad_accum));
  if (c.mode == "grpo" && c.trainable == "pvm" && !j.contains("trainable")) c.trainable = "llm";  // stage-2 default
  if (c.history_window > 0 && c.mode != "sft")
    top.fail("history_window", "only SFT trains with an answer-history window (mode is \"" + c.mode + "\")");
  if (c.visual_restore != 0 && c.mode != "sft")
    top.fail("visual_restore", "only SFT trains with the image attention restored (mode is \"" + c.mode + "\")");
  if (c.mode == "vismem") {
    const bool s2 = c.vismem.stage == 2;
    const std::string want = s2 ? "vismem-policy" : "vismem";
    if (!j.contains("trainable")) c.trainable = want;
    if (c.trainable != want)
      top.fail("trainable", s2 ? "VisMem stage 2 trains \"vismem-policy\" only (the four token rows; constructor and formers frozen)"
                               : "VisMem stage 1 trains \"vismem\" only (the backbone is frozen)");
    if (c.vismem.adapter.empty()) top.fail("vismem", "vismem.adapter is required (make one with pvm init-vismem)");
    if (c.pvm.enabled()) top.fail("pvm", "fresh PVM blocks cannot be trained with VisMem");
    if (s2 && c.vismem.max_invocations < 1)
      top.fail("vismem.max_invocations", "stage 2 learns when to invoke: at least 1 memory per completion");
  } else if (c.trainable == "vismem" || c.trainable == "vismem-policy") {
    top.fail("trainable", "\"" + c.trainable + "\" is for mode vismem");
  }
  if (c.dtype == "bf16" && c.device.rfind("cuda", 0) != 0)
    top.fail("dtype", "bf16 training is only supported on CUDA (device is \"" + c.device + "\"); use f32 on CPU");
  return c;
}

void apply_override(json& j, const std::string& kv) {
  auto eq = kv.find('=');
  const std::string where = "--set " + kv;
  if (eq == std::string::npos || eq == 0) throw Error(where + ": expected key=value");
  std::string key = kv.substr(0, eq), val = kv.substr(eq + 1);
  json v;
  try {
    v = json::parse(val);
  } catch (const json::exception&) {
    v = val;  // not JSON: a plain string
  }
  json* cur = &j;
  size_t p = 0;
  while (true) {
    size_t d = key.find('.', p);
    std::string part = key.substr(p, d == std::string::npos ? std::string::npos : d - p);
    if (part.empty()) throw Error(where + ": empty key component in '" + key + "'");
    if (!cur->is_object()) throw Error(where + ": '" + key.substr(0, p - 1) + "' is not an object");
    if (d == std::string::npos) {
      if (v.is_null()) cur->erase(part);  // --set key=null: back to the default
      else (*cur)[part] = v;
      return;
    }
    if (!cur->contains(part) || (*cur)[part].is_null()) (*cur)[part] = json::object();
    cur = &(*cur)[part];
    p = d + 1;
  }
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides, const std::string& mode) {
  json j = json::object();
  if (!path.empty()) {
    auto text = read_file_to_string(path, 64 << 20);
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      std::string m = e.what();
      throw file_error(path, "not valid JSON (" + m.substr(m.find(']') == std::string::npos ? 0 : m.find(']') + 2) + ")");
    }
    if (!j.is_object()) throw file_error(path, "expected a JSON object at the top level");
  }
  // Values given with --set are checked against the same rules; an error there names the --set.
  for (auto& kv : overrides) apply_override(j, kv);
  if (!mode.empty()) {
    if (j.contains("mode") && j["mode"].is_string() && j["mode"] != mode)
      throw Error((path.empty() ? std::string("config") : path) + ": mode is \"" + j["mode"].get<std::string>() +
                  "\" but the command is `pvm train " + mode + "`");
    j["mode"] = mode;
  }
  std::string where = path.empty() ? std::string("config") : path;
  if (!overrides.empty()) where += " (with --set)";
  // Relative paths in a config file are relative to the file.
  // The JSON value of a field ("vismem.adapter" lives in the "vismem" object), or null.
  auto slot = [&](const TrainField& f) -> json* {
    const std::string sec = f.section();
    json* o = sec.empty() ? &j : (j.contains(sec) && j[sec].is_object() ? &j[sec] : nullptr);
    const std::string k = sec.empty() ? f.key : f.name();
    return o && o->contains(k) && (*o)[k].is_string() ? &(*o)[k] : nullptr;
  };
  auto resolve = [&](const TrainField& f) {
    json* v = slot(f);
    if (path.empty() || !v) return;
    std::string s = *v;
    if (s.empty() || s[0] == '/') return;
    bool from_set = false;
    for (auto& kv : overrides)
      if (kv.rfind(f.key + "=", 0) == 0) from_set = true;
    if (!from_set) *v = join_path(parent_dir(path), s);
  };
  for (const TrainField& f : train_fields())
    if (f.path != PathKind::None) resolve(f);
  // The resolved config (written to the run dir, read back by --resume) holds absolute input paths.
  for (const TrainField& f : train_fields()) {
    json* v = slot(f);
    if (f.path != PathKind::None && f.path != PathKind::OutDir && v && !v->get<std::string>().empty())
      *v = std::filesystem::absolute(v->get<std::string>()).lexically_normal().string();
  }
  return parse_train_config(j, where);
}

}  // namespace pvm::train
