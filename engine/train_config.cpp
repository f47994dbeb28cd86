#include "engine/train_config.h"

#include <cmath>
#include <filesystem>
#include <set>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/pipeline.h"

namespace pvm::train {

using nlohmann::json;

namespace {

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
  void str(const std::string& key, std::string& out, std::initializer_list<const char*> allowed = {}) {
    auto* v = get(key);
    if (!v) return;
    if (!v->is_string()) fail(key, "expected a string, got " + v->dump());
    out = v->get<std::string>();
    if (allowed.size()) {
      std::string list;
      for (auto a : allowed) {
        if (out == a) return;
        list += (list.empty() ? "" : ", ") + std::string("\"") + a + "\"";
      }
      fail(key, "must be one of " + list + ", got \"" + out + "\"");
    }
  }
  void integer(const std::string& key, int64_t& out, int64_t lo, int64_t hi = INT64_MAX) {
    auto* v = get(key);
    if (!v) return;
    const std::string bounds = hi == INT64_MAX ? ">= " + std::to_string(lo) : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    // A whole number beyond 64 bits (JSON reads 99999999999999999999 as 1e20) is out of range, not
    // "not an integer"; an unsigned one above INT64_MAX must not wrap to a negative value.
    const bool whole_float = v->is_number_float() && std::isfinite(v->get<double>()) && std::floor(v->get<double>()) == v->get<double>();
    if ((v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) || (whole_float && std::fabs(v->get<double>()) >= 9e15))
      fail(key, "out of range: must be " + bounds + ", got " + v->dump());
    if (v->is_number_integer()) out = v->get<int64_t>();
    else if (whole_float) out = (int64_t)v->get<double>();
    else fail(key, "expected an integer, got " + v->dump());
    if (out < lo || out > hi) fail(key, "out of range: must be " + bounds + ", got " + std::to_string(out));
  }
  void number(const std::string& key, double& out, double lo, double hi, bool lo_open = false) {
    auto* v = get(key);
    if (!v) return;
    if (!v->is_number()) fail(key, "expected a number, got " + v->dump());
    out = v->get<double>();
    if (!std::isfinite(out) || out < lo || out > hi || (lo_open && out == lo)) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "must be in %s%g, %g], got %g", lo_open ? "(" : "[", lo, hi, out);
      fail(key, buf);
    }
  }
  void boolean(const std::string& key, bool& out) {
    auto* v = get(key);
    if (!v) return;
    if (!v->is_boolean()) fail(key, "expected true or false, got " + v->dump());
    out = v->get<bool>();
  }
  void finish() const {
    for (auto& [k, v] : j_.items())
      if (!seen_.count(k)) fail(k, "unknown key");
  }

 private:
  const json& j_;
  std::string where_, prefix_;
  std::set<std::string> seen_;
};

}  // namespace

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
  json j;
  j["mode"] = mode;
  j["model"] = model;
  if (pvm.enabled())
    j["pvm"] = {{"layers", pvm.layers}, {"hidden_size", pvm.hidden_size}, {"variant", pvm.variant}, {"source", pvm.source}};
  j["adapter"] = adapter;
  j["data"] = data;
  j["eval_data"] = eval_data;
  j["trainable"] = trainable;
  j["steps"] = steps;
  j["batch_size"] = batch_size;
  j["grad_accum"] = grad_accum;
  j["max_length"] = max_length;
  j["lr"] = lr;
  j["min_lr_ratio"] = min_lr_ratio;
  j["warmup_ratio"] = warmup_ratio;
  j["warmup_steps"] = warmup_steps;
  j["schedule"] = schedule;
  j["weight_decay"] = weight_decay;
  j["visual_lr_scale"] = visual_lr_scale;
  j["betas"] = {betas[0], betas[1]};
  j["eps"] = eps;
  j["max_grad_norm"] = max_grad_norm;
  j["seed"] = seed;
  j["save_every"] = save_every;
  j["log_every"] = log_every;
  j["eval_every"] = eval_every;
  j["keep_checkpoints"] = keep_checkpoints;
  j["out"] = out;
  j["device"] = device;
  j["dtype"] = dtype;
  j["grad_checkpointing"] = grad_checkpointing;
  j["workers"] = workers;
  j["bad_lines"] = bad_lines;
  j["threads"] = threads;
  j["grpo"] = {{"group_size", grpo.group_size},       {"prompts_per_step", grpo.prompts_per_step},
               {"temperature", grpo.temperature},     {"top_p", grpo.top_p},
               {"max_new_tokens", grpo.max_new_tokens}, {"eps_low", grpo.eps_low},
               {"eps_high", grpo.eps_high},           {"beta", grpo.beta},
               {"advantage", grpo.advantage},         {"loss_agg", grpo.loss_agg},
               {"inner_epochs", grpo.inner_epochs},   {"reward", grpo.reward},
               {"system", grpo.system}};
  return j;
}

TrainConfig parse_train_config(const json& j, const std::string& where) {
  TrainConfig c;
  c.source = where;
  Reader r(j, where, "");
  r.str("mode", c.mode, {"sft", "grpo"});
  c.model = default_model_dir();
  r.str("model", c.model);
  if (auto* p = r.get("pvm")) {
    Reader q(*p, where, "pvm.");
    auto* layers = q.get("layers");
    if (!layers || !layers->is_array() || layers->empty())
      q.fail("layers", "expected a non-empty list of layer indices");
    for (auto& l : *layers) {
      if (!l.is_number_integer() || l.get<int64_t>() < 0) q.fail("layers", "expected non-negative integers, got " + l.dump());
      c.pvm.layers.push_back(l.get<int64_t>());
    }
    q.integer("hidden_size", c.pvm.hidden_size, 1);
    q.str("variant", c.pvm.variant, {"pvm", "mlp"});
    q.str("source", c.pvm.source, {"embeddings", "hidden"});
    q.finish();
  }
  r.str("adapter", c.adapter);
  if (c.pvm.enabled() && !c.adapter.empty()) r.fail("adapter", "give either pvm (fresh blocks) or adapter, not both");
  r.str("data", c.data);
  r.str("eval_data", c.eval_data);
  r.str("trainable", c.trainable, {"pvm", "pvm+llm", "llm", "all"});
  r.integer("steps", c.steps, 0);
  r.integer("batch_size", c.batch_size, 1);
  r.integer("grad_accum", c.grad_accum, 1);
  r.integer("max_length", c.max_length, 2);
  r.number("lr", c.lr, 0, 10, true);
  r.number("min_lr_ratio", c.min_lr_ratio, 0, 1);
  r.number("warmup_ratio", c.warmup_ratio, 0, 1);
  r.integer("warmup_steps", c.warmup_steps, -1);
  r.str("schedule", c.schedule, {"cosine", "constant"});
  r.number("weight_decay", c.weight_decay, 0, 10);
  r.number("visual_lr_scale", c.visual_lr_scale, 0, 100);
  if (auto* b = r.get("betas")) {
    if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number() || !(*b)[1].is_number())
      r.fail("betas", "expected two numbers [beta1, beta2], got " + b->dump());
    for (int i = 0; i < 2; ++i) {
      c.betas[i] = (*b)[i].get<double>();
      if (!(c.betas[i] >= 0 && c.betas[i] < 1)) r.fail("betas", "each must be in [0, 1), got " + b->dump());
    }
  }
  r.number("eps", c.eps, 0, 1, true);
  r.number("max_grad_norm", c.max_grad_norm, 0, 1e9);
  int64_t seed = 0;
  r.integer("seed", seed, 0);
  c.seed = (uint64_t)seed;
  r.integer("save_every", c.save_every, 0);
  r.integer("log_every", c.log_every, 1);
  r.integer("eval_every", c.eval_every, 0);
  r.integer("keep_checkpoints", c.keep_checkpoints, 1);
  r.str("out", c.out);
  r.str("device", c.device);
  r.str("dtype", c.dtype, {"f32", "bf16"});
  r.boolean("grad_checkpointing", c.grad_checkpointing);
  r.integer("workers", c.workers, 0, 64);
  r.str("bad_lines", c.bad_lines, {"skip", "fatal"});
  r.integer("threads", c.threads, 0, 1024);
  if (auto* g = r.get("grpo")) {
    Reader q(*g, where, "grpo.");
    auto& G = c.grpo;
    q.integer("group_size", G.group_size, 2);
    q.integer("prompts_per_step", G.prompts_per_step, 1);
    q.number("temperature", G.temperature, 0, 100, true);
    q.number("top_p", G.top_p, 0, 1, true);
    q.integer("max_new_tokens", G.max_new_tokens, 1);
    q.number("eps_low", G.eps_low, 0, 1);
    q.number("eps_high", G.eps_high, 0, 10);
    q.number("beta", G.beta, 0, 100);
    q.str("advantage", G.advantage, {"grpo", "drgrpo"});
    q.str("loss_agg", G.loss_agg, {"token-mean", "seq-mean", "drgrpo"});
    q.integer("inner_epochs", G.inner_epochs, 1, 100);
    q.str("reward", G.reward, {"think_answer", "exact", "choice"});
    q.str("system", G.system);
    q.finish();
  }
  r.finish();
  // Cross-key checks.
  if (c.model.empty()) r.fail("model", "no base model given and assets/default-model is not there");
  if (c.data.empty()) r.fail("data", "a training data file (JSONL) is required");
  if (c.batch_size % c.grad_accum != 0)
    r.fail("grad_accum", "batch_size " + std::to_string(c.batch_size) + " is not divisible by grad_accum " +
                             std::to_string(c.grad_accum));
  if (c.mode == "grpo" && c.trainable == "pvm" && !j.contains("trainable")) c.trainable = "llm";  // stage-2 default
  if (c.dtype == "bf16" && c.device.rfind("cuda", 0) != 0)
    r.fail("dtype", "bf16 training is only supported on CUDA (device is \"" + c.device + "\"); use f32 on CPU");
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
  auto resolve = [&](const char* key) {
    if (path.empty() || !j.contains(key) || !j[key].is_string()) return;
    std::string s = j[key];
    if (s.empty() || s[0] == '/') return;
    bool from_set = false;
    for (auto& kv : overrides)
      if (kv.rfind(std::string(key) + "=", 0) == 0) from_set = true;
    if (!from_set) j[key] = join_path(parent_dir(path), s);
  };
  for (auto k : {"model", "data", "eval_data", "adapter", "out"}) resolve(k);
  // The resolved config (written to the run dir, read back by --resume) holds absolute paths.
  for (auto k : {"model", "data", "eval_data", "adapter"})
    if (j.contains(k) && j[k].is_string() && !j[k].get<std::string>().empty())
      j[k] = std::filesystem::absolute(j[k].get<std::string>()).lexically_normal().string();
  return parse_train_config(j, where);
}

}  // namespace pvm::train
