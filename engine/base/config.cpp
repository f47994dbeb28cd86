#include "engine/base/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"

namespace pvm {

using nlohmann::json;

namespace {
// Upper bounds enforced by ModelConfig::validate (real Qwen3-VL 2B..32B configs are far below them):
// no config can ask for an absurd allocation or overflow the int64 size arithmetic.
constexpr int64_t kMaxVocab = int64_t(1) << 22;         // 4M tokens
constexpr int64_t kMaxWidth = int64_t(1) << 16;         // hidden sizes
constexpr int64_t kMaxIntermediate = int64_t(1) << 18;  // MLP widths
constexpr int64_t kMaxLayers = 1024;                    // text layers / vision blocks
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxPositions = int64_t(1) << 24;  // max_position_embeddings
constexpr int64_t kMaxParameters = 200'000'000'000;  // 200B parameters in all
constexpr int64_t kMaxConfigBytes = 16 << 20;        // config.json file size
}  // namespace

int64_t ModelConfig::pvm_kv_heads() const {
  int64_t ratio = std::max<int64_t>(1, text.num_attention_heads / std::max<int64_t>(1, text.num_key_value_heads));
  return std::max<int64_t>(1, pvm_heads() / ratio);
}

int64_t ModelConfig::pvm_intermediate() const {
  // int(d * I / H) in Python: floor of the exact quotient for positive ints.
  return text.pvm_hidden_size * text.intermediate_size / text.hidden_size;
}

void ModelConfig::validate(const std::string& where) const {
  auto bad = [&](const std::string& what) { return file_error(where, what); };
  auto pos = [&](int64_t v, const char* name) {
    if (v <= 0) throw bad(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  // Upper bounds: generous for real Qwen3-VL configs (2B..32B: hidden <= 5120, 64 layers, vocab
  // 151936) but small enough that no single field, and below the total parameter count, can ask for an
  // absurd allocation or overflow int64 arithmetic in expected_tensors / parameter_counts.
  auto range = [&](int64_t x, const char* name, int64_t hi) {
    if (x <= 0) throw bad(std::string(name) + " must be positive, got " + std::to_string(x));
    if (x > hi) throw bad(std::string(name) + " is " + std::to_string(x) + ", above the limit " + std::to_string(hi));
  };
  const auto& t = text;
  const auto& v = vision;
  range(t.vocab_size, "text_config.vocab_size", kMaxVocab);
  range(t.hidden_size, "text_config.hidden_size", kMaxWidth);
  range(t.intermediate_size, "text_config.intermediate_size", kMaxIntermediate);
  range(t.num_hidden_layers, "text_config.num_hidden_layers", kMaxLayers);
  range(t.num_attention_heads, "text_config.num_attention_heads", kMaxHeads);
  range(t.num_key_value_heads, "text_config.num_key_value_heads", kMaxHeads);
  range(t.head_dim, "text_config.head_dim", kMaxHeadDim);
  range(t.max_position_embeddings, "text_config.max_position_embeddings", kMaxPositions);
  range(t.pvm_hidden_size, "text_config.pvm_hidden_size", kMaxWidth);
  range(v.depth, "vision_config.depth", kMaxLayers);
  range(v.hidden_size, "vision_config.hidden_size", kMaxWidth);
  range(v.intermediate_size, "vision_config.intermediate_size", kMaxIntermediate);
  range(v.num_heads, "vision_config.num_heads", kMaxHeads);
  range(v.in_channels, "vision_config.in_channels", 64);
  range(v.patch_size, "vision_config.patch_size", 1024);
  range(v.temporal_patch_size, "vision_config.temporal_patch_size", 64);
  range(v.spatial_merge_size, "vision_config.spatial_merge_size", 16);
  range(v.out_hidden_size, "vision_config.out_hidden_size", kMaxWidth);
  range(v.num_position_embeddings, "vision_config.num_position_embeddings", 1 << 20);
  if (!std::isfinite(t.rms_norm_eps) || !(t.rms_norm_eps > 0) || t.rms_norm_eps >= 1)
    throw bad("text_config.rms_norm_eps must be in (0, 1), got " + std::to_string(t.rms_norm_eps));
  if (!std::isfinite(t.rope_theta) || !(t.rope_theta >= 1) || t.rope_theta > 1e12)
    throw bad("text_config.rope_theta must be in [1, 1e12], got " + std::to_string(t.rope_theta));
  if ((int64_t)v.deepstack_visual_indexes.size() > v.depth)
    throw bad("vision_config.deepstack_visual_indexes has " + std::to_string(v.deepstack_visual_indexes.size()) +
              " entries, more than depth (" + std::to_string(v.depth) + ")");
  if ((int64_t)t.pvm_layers.size() > t.num_hidden_layers)
    throw bad("text_config.pvm_layers has " + std::to_string(t.pvm_layers.size()) + " entries, more than num_hidden_layers (" +
              std::to_string(t.num_hidden_layers) + ")");
  if (eos_token_ids.size() > 64) throw bad("eos_token_id lists " + std::to_string(eos_token_ids.size()) + " ids (at most 64)");
  if (t.num_key_value_heads > t.num_attention_heads)
    throw bad("text_config.num_key_value_heads (" + std::to_string(t.num_key_value_heads) +
              ") is more than num_attention_heads (" + std::to_string(t.num_attention_heads) + ")");
  pos(t.vocab_size, "text_config.vocab_size");
  pos(t.hidden_size, "text_config.hidden_size");
  pos(t.intermediate_size, "text_config.intermediate_size");
  pos(t.num_hidden_layers, "text_config.num_hidden_layers");
  pos(t.num_attention_heads, "text_config.num_attention_heads");
  pos(t.num_key_value_heads, "text_config.num_key_value_heads");
  pos(t.head_dim, "text_config.head_dim");
  if (t.head_dim % 2) throw bad("text_config.head_dim must be even, got " + std::to_string(t.head_dim));
  if (t.num_attention_heads % t.num_key_value_heads)
    throw bad("text_config.num_attention_heads (" + std::to_string(t.num_attention_heads) +
              ") is not a multiple of num_key_value_heads (" + std::to_string(t.num_key_value_heads) + ")");
  if (!(t.rms_norm_eps > 0)) throw bad("text_config.rms_norm_eps must be positive");
  if (!(t.rope_theta > 0)) throw bad("text_config.rope_theta must be positive");
  if (t.mrope_section.size() != 3) throw bad("text_config.rope_scaling.mrope_section must have 3 entries");
  int64_t sec = 0;
  for (auto s : t.mrope_section) {
    if (s < 0) throw bad("text_config.rope_scaling.mrope_section has a negative entry");
    if (s > t.head_dim) throw bad("text_config.rope_scaling.mrope_section has an entry larger than head_dim");
    sec += s;
  }
  // Interleaved MRoPE uses sections[1], [2] at indices 1,4,.. and 2,5,..; they must fit in head_dim/2.
  if (sec != t.head_dim / 2 || 3 * std::max(t.mrope_section[1], t.mrope_section[2]) > t.head_dim / 2)
    throw bad("text_config.rope_scaling.mrope_section sums to " + std::to_string(sec) + ", expected head_dim/2 = " +
              std::to_string(t.head_dim / 2));
  pos(v.depth, "vision_config.depth");
  pos(v.hidden_size, "vision_config.hidden_size");
  pos(v.intermediate_size, "vision_config.intermediate_size");
  pos(v.num_heads, "vision_config.num_heads");
  pos(v.in_channels, "vision_config.in_channels");
  pos(v.patch_size, "vision_config.patch_size");
  pos(v.temporal_patch_size, "vision_config.temporal_patch_size");
  pos(v.spatial_merge_size, "vision_config.spatial_merge_size");
  pos(v.num_position_embeddings, "vision_config.num_position_embeddings");
  if (v.hidden_size % v.num_heads) throw bad("vision_config.hidden_size is not a multiple of num_heads");
  if (v.head_dim() % 4) throw bad("vision_config head_dim (hidden_size/num_heads) must be a multiple of 4 for 2-D RoPE");
  int64_t g = 1;
  while ((g + 1) * (g + 1) <= v.num_position_embeddings) ++g;
  if (g * g != v.num_position_embeddings)
    throw bad("vision_config.num_position_embeddings (" + std::to_string(v.num_position_embeddings) +
              ") is not a perfect square");
  if (v.out_hidden_size != t.hidden_size)
    throw bad("vision_config.out_hidden_size (" + std::to_string(v.out_hidden_size) +
              ") differs from text_config.hidden_size (" + std::to_string(t.hidden_size) + ")");
  for (size_t k = 0; k < v.deepstack_visual_indexes.size(); ++k) {
    const int64_t i = v.deepstack_visual_indexes[k];
    if (i < 0 || i >= v.depth)
      throw bad("vision_config.deepstack_visual_indexes has " + std::to_string(i) + ", outside 0.." +
                std::to_string(v.depth - 1));
    // A repeated tap would feed the same vision layer into two text layers: never what a checkpoint means.
    for (size_t q = 0; q < k; ++q)
      if (v.deepstack_visual_indexes[q] == i)
        throw bad("vision_config.deepstack_visual_indexes lists layer " + std::to_string(i) + " twice");
  }
  if ((int64_t)v.deepstack_visual_indexes.size() > t.num_hidden_layers)
    throw bad("more deepstack taps than text layers");
  const std::pair<const char*, int64_t> ids[] = {{"image_token_id", image_token_id},
                                                 {"video_token_id", video_token_id},
                                                 {"vision_start_token_id", vision_start_token_id},
                                                 {"vision_end_token_id", vision_end_token_id}};
  for (auto& [name, id] : ids)
    if (id < 0 || id >= t.vocab_size)
      throw bad(std::string(name) + " " + std::to_string(id) + " is outside the vocabulary (size " +
                std::to_string(t.vocab_size) + ")");
  for (auto id : eos_token_ids)
    if (id < 0 || id >= t.vocab_size)
      throw bad("eos_token_id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(t.vocab_size) + ")");
  // PVM
  if (has_pvm()) {
    if (t.pvm_hidden_size <= 0 || t.pvm_hidden_size % t.head_dim)
      throw bad("text_config.pvm_hidden_size (" + std::to_string(t.pvm_hidden_size) +
                ") must be a positive multiple of head_dim (" + std::to_string(t.head_dim) + ")");
    std::vector<int64_t> seen;
    for (auto l : t.pvm_layers) {
      if (l < 0 || l >= t.num_hidden_layers)
        throw bad("text_config.pvm_layers has layer " + std::to_string(l) + ", but the model has " +
                  std::to_string(t.num_hidden_layers) + " layers (0.." + std::to_string(t.num_hidden_layers - 1) + ")");
      if (std::find(seen.begin(), seen.end(), l) != seen.end())
        throw bad("text_config.pvm_layers lists layer " + std::to_string(l) + " twice");
      seen.push_back(l);
    }
    if (pvm_heads() % pvm_kv_heads()) throw bad("PVM query heads are not a multiple of PVM kv heads");
  }
  // Total size, summed in 128 bits over the tensors the config asks for (every field is bounded
  // above, so the list itself is small), before anything is allocated.
  {
    __int128 total = 0;
    for (auto& s : expected_tensors(*this)) {
      __int128 n = 1;
      for (auto d : s.shape) {
        if (d <= 0) throw bad("tensor " + s.name + " would have a non-positive dimension " + std::to_string(d));
        n *= d;
      }
      total += n;
    }
    if (total > (__int128)kMaxParameters)
    {
      char buf[96];
      std::snprintf(buf, sizeof buf, "the config asks for %.4g parameters, above the limit %.4g", (double)total,
                    (double)kMaxParameters);
      throw bad(buf);
    }
  }
  if (t.pvm_source != "embeddings" && t.pvm_source != "hidden")
    throw bad("text_config.pvm_source must be 'embeddings' or 'hidden', got '" + t.pvm_source + "'");
  if (t.pvm_variant != "pvm" && t.pvm_variant != "mlp")
    throw bad("text_config.pvm_variant must be 'pvm' or 'mlp', got '" + t.pvm_variant + "'");
}

namespace {

// Typed field readers that turn nlohmann's type errors into one-line errors naming the field.
// A field that is absent takes its default; a field that is present must have the right type: null,
// a string, a bool or a float where an integer is needed is an error, never a silent default.
struct Reader {
  const json& j;
  std::string where, prefix;
  Error wrong(const char* key, const json& v, const char* want) const {
    std::string got = v.dump();
    if (got.size() > 40) got = got.substr(0, 40) + "...";
    return file_error(where, prefix + key + " must be " + want + ", got " + got);
  }
  const json* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  void get_string(const char* key, std::string& out) const {
    if (auto* v = find(key)) {
      if (!v->is_string()) throw wrong(key, *v, "a string");
      out = v->get<std::string>();
    }
  }
  void get_bool(const char* key, bool& out) const {
    if (auto* v = find(key)) {
      if (!v->is_boolean()) throw wrong(key, *v, "true or false");
      out = v->get<bool>();
    }
  }
  void get_double(const char* key, double& out) const {
    if (auto* v = find(key)) {
      if (!v->is_number()) throw wrong(key, *v, "a number");
      out = v->get<double>();
      if (!std::isfinite(out)) throw wrong(key, *v, "a finite number");
    }
  }
  int64_t as_int(const char* key, const json& v, const char* want) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > (uint64_t)INT64_MAX) throw wrong(key, v, want);
      return (int64_t)v.get<uint64_t>();
    }
    if (!v.is_number_integer()) throw wrong(key, v, want);
    return v.get<int64_t>();
  }
  // null_is_absent: only for fields whose null HF documents as "not set" (pad/bos token ids).
  void get_int(const char* key, int64_t& out, bool null_is_absent = false) const {
    if (auto* v = find(key)) {
      if (v->is_null() && null_is_absent) return;
      out = as_int(key, *v, "an integer");
    }
  }
  void require_int(const char* key, int64_t& out) const {
    if (!j.contains(key)) throw file_error(where, "missing required field " + prefix + key);
    get_int(key, out);
  }
  void get_int_list(const char* key, std::vector<int64_t>& out) const {
    auto* v = find(key);
    if (!v) return;
    if (v->is_number()) {
      out = {as_int(key, *v, "an integer or a list of integers")};
      return;
    }
    if (!v->is_array()) throw wrong(key, *v, "a list of integers");
    if (v->size() > 4096) throw file_error(where, prefix + key + " has " + std::to_string(v->size()) + " entries (at most 4096)");
    std::vector<int64_t> r;
    for (auto& e : *v) r.push_back(as_int(key, e, "a list of integers"));
    out = std::move(r);
  }
};

}  // namespace

ModelConfig parse_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and numbers out of range (1e400)
    std::string msg = e.what();
    throw file_error(where, "not valid JSON (" + msg.substr(msg.find(']') == std::string::npos ? 0 : msg.find(']') + 2) + ")");
  }
  if (!j.is_object()) throw file_error(where, "config must be a JSON object");
  ModelConfig c;
  Reader top{j, where, ""};
  top.get_string("model_type", c.model_type);
  if (c.model_type != "qwen3_vl" && c.model_type != "pvm_qwen3_vl")
    throw file_error(where, "model_type '" + c.model_type + "' is not supported (expected qwen3_vl)");
  if (!j.contains("text_config") || !j["text_config"].is_object())
    throw file_error(where, "missing required object text_config");
  if (!j.contains("vision_config") || !j["vision_config"].is_object())
    throw file_error(where, "missing required object vision_config");
  const json& tj = j["text_config"];
  const json& vj = j["vision_config"];
  Reader tr{tj, where, "text_config."}, vr{vj, where, "vision_config."};
  auto& t = c.text;
  tr.require_int("vocab_size", t.vocab_size);
  tr.require_int("hidden_size", t.hidden_size);
  tr.require_int("intermediate_size", t.intermediate_size);
  tr.require_int("num_hidden_layers", t.num_hidden_layers);
  tr.require_int("num_attention_heads", t.num_attention_heads);
  t.num_key_value_heads = t.num_attention_heads;
  tr.get_int("num_key_value_heads", t.num_key_value_heads);
  if (tj.contains("head_dim")) {
    tr.get_int("head_dim", t.head_dim);
  } else {
    // derived (HF: hidden_size // num_attention_heads): check before dividing
    if (t.num_attention_heads <= 0)
      throw file_error(where, "text_config.num_attention_heads must be positive, got " + std::to_string(t.num_attention_heads));
    if (t.hidden_size % t.num_attention_heads)
      throw file_error(where, "text_config.hidden_size (" + std::to_string(t.hidden_size) +
                                  ") is not a multiple of num_attention_heads (" + std::to_string(t.num_attention_heads) +
                                  ") and head_dim is not given");
    t.head_dim = t.hidden_size / t.num_attention_heads;
  }
  tr.get_double("rms_norm_eps", t.rms_norm_eps);
  tr.get_double("rope_theta", t.rope_theta);
  tr.get_int("max_position_embeddings", t.max_position_embeddings);
  tr.get_bool("attention_bias", t.attention_bias);
  tr.get_string("hidden_act", t.hidden_act);
  // transformers 4.57 writes rope_scaling; main renamed it rope_parameters (and may carry rope_theta).
  // null means "none" in HF (defaults apply); anything else but an object is an error.
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!tj.contains(key) || tj[key].is_null()) continue;
    if (!tj[key].is_object()) throw tr.wrong(key, tj[key], "an object");
    Reader rr{tj[key], where, std::string("text_config.") + key + "."};
    rr.get_int_list("mrope_section", t.mrope_section);
    rr.get_double("rope_theta", t.rope_theta);
  }
  tr.get_int("pvm_hidden_size", t.pvm_hidden_size);
  tr.get_int_list("pvm_layers", t.pvm_layers);
  tr.get_string("pvm_source", t.pvm_source);
  tr.get_string("pvm_variant", t.pvm_variant);
  if (t.hidden_act != "silu") throw file_error(where, "text_config.hidden_act '" + t.hidden_act + "' is not supported (silu)");
  if (t.attention_bias) throw file_error(where, "text_config.attention_bias=true is not supported by Qwen3-VL");

  auto& v = c.vision;
  vr.require_int("depth", v.depth);
  vr.require_int("hidden_size", v.hidden_size);
  vr.require_int("intermediate_size", v.intermediate_size);
  vr.require_int("num_heads", v.num_heads);
  vr.get_int("in_channels", v.in_channels);
  vr.get_int("patch_size", v.patch_size);
  vr.get_int("temporal_patch_size", v.temporal_patch_size);
  vr.get_int("spatial_merge_size", v.spatial_merge_size);
  v.out_hidden_size = t.hidden_size;
  vr.get_int("out_hidden_size", v.out_hidden_size);
  vr.get_int("num_position_embeddings", v.num_position_embeddings);
  vr.get_int_list("deepstack_visual_indexes", v.deepstack_visual_indexes);
  vr.get_string("hidden_act", v.hidden_act);
  if (v.hidden_act != "gelu_pytorch_tanh")
    throw file_error(where, "vision_config.hidden_act '" + v.hidden_act + "' is not supported (gelu_pytorch_tanh)");

  // tie_word_embeddings may sit at the top level, in text_config, or both (the top level wins, as in HF).
  tr.get_bool("tie_word_embeddings", c.tie_word_embeddings);
  top.get_bool("tie_word_embeddings", c.tie_word_embeddings);
  top.get_int("image_token_id", c.image_token_id);
  top.get_int("video_token_id", c.video_token_id);
  top.get_int("vision_start_token_id", c.vision_start_token_id);
  top.get_int("vision_end_token_id", c.vision_end_token_id);
  tr.get_int("bos_token_id", c.bos_token_id, /*null_is_absent=*/true);
  tr.get_int_list("eos_token_id", c.eos_token_ids);
  top.get_int_list("eos_token_id", c.eos_token_ids);
  tr.get_int("pad_token_id", c.pad_token_id, /*null_is_absent=*/true);
  top.get_int("pad_token_id", c.pad_token_id, /*null_is_absent=*/true);
  // bos/pad defaults are Qwen's ids; check them against the vocabulary only when the file sets them.
  for (auto [key, id] : {std::pair<const char*, int64_t>{"bos_token_id", c.bos_token_id}, {"pad_token_id", c.pad_token_id}}) {
    bool given = (tj.contains(key) && !tj[key].is_null()) || (j.contains(key) && !j[key].is_null());
    if (given && (id < 0 || id >= t.vocab_size) && t.vocab_size > 0)
      throw file_error(where, std::string(key) + " " + std::to_string(id) + " is outside the vocabulary (size " +
                                  std::to_string(t.vocab_size) + ")");
  }
  c.validate(where);
  return c;
}

ModelConfig load_config(const std::string& path) {
  // A directory, FIFO, socket or device is an error, not a hang or an endless read.
  return parse_config(read_file_to_string(path, uint64_t(kMaxConfigBytes), "config"), path);
}

std::string config_to_json(const ModelConfig& c) {
  const auto& t = c.text;
  const auto& v = c.vision;
  json tj = {{"model_type", "qwen3_vl_text"},
             {"vocab_size", t.vocab_size},
             {"hidden_size", t.hidden_size},
             {"intermediate_size", t.intermediate_size},
             {"num_hidden_layers", t.num_hidden_layers},
             {"num_attention_heads", t.num_attention_heads},
             {"num_key_value_heads", t.num_key_value_heads},
             {"head_dim", t.head_dim},
             {"rms_norm_eps", t.rms_norm_eps},
             {"rope_theta", t.rope_theta},
             {"rope_scaling", {{"rope_type", "default"}, {"mrope_section", t.mrope_section}, {"mrope_interleaved", true}}},
             {"max_position_embeddings", t.max_position_embeddings},
             {"attention_bias", t.attention_bias},
             {"hidden_act", t.hidden_act},
             {"tie_word_embeddings", c.tie_word_embeddings},
             {"bos_token_id", c.bos_token_id},
             {"eos_token_id", c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0]) : json(c.eos_token_ids)}};
  if (c.has_pvm()) {
    tj["pvm_hidden_size"] = t.pvm_hidden_size;
    tj["pvm_layers"] = t.pvm_layers;
    if (t.pvm_source != "embeddings") tj["pvm_source"] = t.pvm_source;
    if (t.pvm_variant != "pvm") tj["pvm_variant"] = t.pvm_variant;
  }
  json vj = {{"model_type", "qwen3_vl"},
             {"depth", v.depth},
             {"hidden_size", v.hidden_size},
             {"intermediate_size", v.intermediate_size},
             {"num_heads", v.num_heads},
             {"in_channels", v.in_channels},
             {"patch_size", v.patch_size},
             {"temporal_patch_size", v.temporal_patch_size},
             {"spatial_merge_size", v.spatial_merge_size},
             {"out_hidden_size", v.out_hidden_size},
             {"num_position_embeddings", v.num_position_embeddings},
             {"deepstack_visual_indexes", v.deepstack_visual_indexes},
             {"hidden_act", v.hidden_act}};
  json j = {{"architectures", {"Qwen3VLForConditionalGeneration"}},
            {"model_type", "qwen3_vl"},
            {"text_config", tj},
            {"vision_config", vj},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"image_token_id", c.image_token_id},
            {"video_token_id", c.video_token_id},
            {"vision_start_token_id", c.vision_start_token_id},
            {"vision_end_token_id", c.vision_end_token_id},
            {"eos_token_id", c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0]) : json(c.eos_token_ids)},
            {"pad_token_id", c.pad_token_id}};
  return j.dump(2) + "\n";
}

void save_config(const ModelConfig& c, const std::string& path) { atomic_write_file(path, config_to_json(c)); }

std::vector<std::string> preset_names() { return {"qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b", "qwen3-vl-tiny"}; }

ModelConfig preset_config(const std::string& name_in) {
  std::string name = name_in;
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  for (const char* suffix : {"-instruct"})
    if (name.size() > strlen(suffix) && name.compare(name.size() - strlen(suffix), strlen(suffix), suffix) == 0)
      name.resize(name.size() - strlen(suffix));
  ModelConfig c;  // defaults = common Qwen3-VL values
  auto& t = c.text;
  auto& v = c.vision;
  if (name == "qwen3-vl-2b") {
    t.hidden_size = 2048, t.num_hidden_layers = 28, t.num_attention_heads = 16, t.intermediate_size = 6144;
    c.tie_word_embeddings = true;
    v.depth = 24, v.hidden_size = 1024, v.intermediate_size = 4096, v.deepstack_visual_indexes = {5, 11, 17};
  } else if (name == "qwen3-vl-4b") {
    t.hidden_size = 2560, t.num_hidden_layers = 36, t.num_attention_heads = 32, t.intermediate_size = 9728;
    c.tie_word_embeddings = true;
    v.depth = 24, v.hidden_size = 1024, v.intermediate_size = 4096, v.deepstack_visual_indexes = {5, 11, 17};
  } else if (name == "qwen3-vl-8b") {
    t.hidden_size = 4096, t.num_hidden_layers = 36, t.num_attention_heads = 32, t.intermediate_size = 12288;
    c.tie_word_embeddings = false;
    v.depth = 27, v.hidden_size = 1152, v.intermediate_size = 4304, v.deepstack_visual_indexes = {8, 16, 24};
  } else if (name == "qwen3-vl-tiny") {
    // Not a released model: the real vocabulary, token ids and processor with tiny widths, for
    // random-weight demos and end-to-end tests that run in seconds on a laptop.
    t.hidden_size = 128, t.num_hidden_layers = 4, t.num_attention_heads = 4, t.num_key_value_heads = 2;
    t.head_dim = 32, t.intermediate_size = 256, t.mrope_section = {8, 4, 4};
    c.tie_word_embeddings = true;
    v.depth = 2, v.hidden_size = 64, v.num_heads = 4, v.intermediate_size = 128, v.deepstack_visual_indexes = {0, 1};
  } else {
    std::string known;
    for (auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown preset '" + name_in + "' (known: " + known + ")");
  }
  v.out_hidden_size = t.hidden_size;
  c.eos_token_ids = {151645, 151643};
  c.validate("preset " + name);
  return c;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c, bool include_pvm) {
  std::vector<TensorSpec> out;
  const auto& v = c.vision;
  const auto& t = c.text;
  const int64_t Dv = v.hidden_size, Iv = v.intermediate_size, H = t.hidden_size;
  const int64_t M = Dv * v.spatial_merge_size * v.spatial_merge_size;  // merged width 4Dv
  auto add = [&](const std::string& n, std::vector<int64_t> s, const char* part) { out.push_back({n, std::move(s), part}); };
  const std::string vp = "model.visual.";
  add(vp + "patch_embed.proj.weight", {Dv, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size}, "vision");
  add(vp + "patch_embed.proj.bias", {Dv}, "vision");
  add(vp + "pos_embed.weight", {v.num_position_embeddings, Dv}, "vision");
  for (int64_t i = 0; i < v.depth; ++i) {
    std::string b = vp + "blocks." + std::to_string(i) + ".";
    add(b + "norm1.weight", {Dv}, "vision");
    add(b + "norm1.bias", {Dv}, "vision");
    add(b + "norm2.weight", {Dv}, "vision");
    add(b + "norm2.bias", {Dv}, "vision");
    add(b + "attn.qkv.weight", {3 * Dv, Dv}, "vision");
    add(b + "attn.qkv.bias", {3 * Dv}, "vision");
    add(b + "attn.proj.weight", {Dv, Dv}, "vision");
    add(b + "attn.proj.bias", {Dv}, "vision");
    add(b + "mlp.linear_fc1.weight", {Iv, Dv}, "vision");
    add(b + "mlp.linear_fc1.bias", {Iv}, "vision");
    add(b + "mlp.linear_fc2.weight", {Dv, Iv}, "vision");
    add(b + "mlp.linear_fc2.bias", {Dv}, "vision");
  }
  auto merger = [&](const std::string& p, int64_t norm_dim) {
    add(p + "norm.weight", {norm_dim}, "vision");
    add(p + "norm.bias", {norm_dim}, "vision");
    add(p + "linear_fc1.weight", {M, M}, "vision");
    add(p + "linear_fc1.bias", {M}, "vision");
    add(p + "linear_fc2.weight", {v.out_hidden_size, M}, "vision");
    add(p + "linear_fc2.bias", {v.out_hidden_size}, "vision");
  };
  merger(vp + "merger.", Dv);
  for (size_t j = 0; j < v.deepstack_visual_indexes.size(); ++j)
    merger(vp + "deepstack_merger_list." + std::to_string(j) + ".", M);

  const std::string tp = "model.language_model.";
  const int64_t q = t.num_attention_heads * t.head_dim, kv = t.num_key_value_heads * t.head_dim;
  add(tp + "embed_tokens.weight", {t.vocab_size, H}, "text");
  for (int64_t l = 0; l < t.num_hidden_layers; ++l) {
    std::string b = tp + "layers." + std::to_string(l) + ".";
    add(b + "input_layernorm.weight", {H}, "text");
    add(b + "post_attention_layernorm.weight", {H}, "text");
    add(b + "self_attn.q_proj.weight", {q, H}, "text");
    add(b + "self_attn.k_proj.weight", {kv, H}, "text");
    add(b + "self_attn.v_proj.weight", {kv, H}, "text");
    add(b + "self_attn.o_proj.weight", {H, q}, "text");
    add(b + "self_attn.q_norm.weight", {t.head_dim}, "text");
    add(b + "self_attn.k_norm.weight", {t.head_dim}, "text");
    add(b + "mlp.gate_proj.weight", {t.intermediate_size, H}, "text");
    add(b + "mlp.up_proj.weight", {t.intermediate_size, H}, "text");
    add(b + "mlp.down_proj.weight", {H, t.intermediate_size}, "text");
    if (include_pvm && c.has_pvm() && std::find(t.pvm_layers.begin(), t.pvm_layers.end(), l) != t.pvm_layers.end()) {
      const int64_t d = t.pvm_hidden_size, hd = t.head_dim, kvd = c.pvm_kv_heads() * hd, I = c.pvm_intermediate();
      std::string p = b + "pvm_block.";
      add(p + "text_reducer.weight", {d, H}, "pvm");
      add(p + "vision_reducer.weight", {d, H}, "pvm");
      add(p + "input_norm.weight", {d}, "pvm");
      add(p + "cross_attn.q_proj.weight", {d, d}, "pvm");
      add(p + "cross_attn.k_proj.weight", {kvd, d}, "pvm");
      add(p + "cross_attn.v_proj.weight", {kvd, d}, "pvm");
      add(p + "cross_attn.o_proj.weight", {d, d}, "pvm");
      add(p + "cross_attn.q_norm.weight", {hd}, "pvm");
      add(p + "cross_attn.k_norm.weight", {hd}, "pvm");
      add(p + "post_attn_norm.weight", {d}, "pvm");
      add(p + "mlp.gate_proj.weight", {I, d}, "pvm");
      add(p + "mlp.up_proj.weight", {I, d}, "pvm");
      add(p + "mlp.down_proj.weight", {d, I}, "pvm");
      add(p + "output_expander.weight", {H, d}, "pvm");
      add(p + "gate_alpha", {1}, "pvm");
    }
  }
  add(tp + "norm.weight", {H}, "text");
  if (!c.tie_word_embeddings) add("lm_head.weight", {t.vocab_size, H}, "lm_head");
  return out;
}

std::map<std::string, int64_t> parameter_counts(const ModelConfig& c) {
  std::map<std::string, int64_t> m{{"vision", 0}, {"text", 0}, {"lm_head", 0}, {"pvm", 0}, {"total", 0}};
  for (auto& s : expected_tensors(c)) {
    int64_t n = 1;
    for (auto d : s.shape) n *= d;
    m[s.part] += n;
    m["total"] += n;
  }
  return m;
}

}  // namespace pvm
