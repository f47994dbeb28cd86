#include "engine/loader.h"

#include "engine/device.h"

#include <filesystem>
#include <set>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/safetensors.h"
#include "engine/nn.h"
#include "engine/tensor_io.h"

namespace pvm {

namespace fs = std::filesystem;

std::string map_legacy_key(const std::string& k) {
  auto starts = [&](const char* p) { return k.rfind(p, 0) == 0; };
  if (starts("model.visual.") || starts("model.language_model.") || starts("lm_head.")) return k;
  if (starts("visual.")) return "model." + k;
  if (starts("model.")) return "model.language_model." + k.substr(6);
  if (starts("language_model.")) return "model." + k;
  return k;
}

static std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

static std::string list_some(const std::vector<std::string>& v) {
  std::string r;
  for (size_t i = 0; i < v.size() && i < 8; ++i) r += (i ? ", " : "") + v[i];
  if (v.size() > 8) r += ", ... (" + std::to_string(v.size()) + " in all)";
  return r;
}

void load_weights(torch::nn::Module& module, const Checkpoint& ckpt, const LoadOptions& opt, const std::string& where) {
  torch::NoGradGuard ng;
  auto params = module.named_parameters(true);
  std::map<std::string, std::string> src_of;  // our key -> checkpoint key
  std::vector<std::string> unexpected;
  for (auto& name : ckpt.names()) {
    auto k = map_legacy_key(name);
    if (params.contains(k))
      src_of[k] = name;
    else
      unexpected.push_back(name);
  }
  std::vector<std::string> missing;
  for (auto& p : params)
    if (!src_of.count(p.key()) && !(opt.optional_key && opt.optional_key(p.key()))) missing.push_back(p.key());
  if (opt.strict && (!missing.empty() || !unexpected.empty())) {
    std::string msg;
    if (!missing.empty()) msg += "missing keys: " + list_some(missing);
    if (!unexpected.empty()) msg += std::string(msg.empty() ? "" : "; ") + "unexpected keys: " + list_some(unexpected);
    throw file_error(where, msg);
  }
  // Check every shape before touching any weight, so a bad checkpoint leaves the model unchanged.
  int64_t total = 0;
  for (auto& [k, src] : src_of) {
    const TensorView* v = ckpt.find(src);
    auto& p = params[k];
    if (!std::equal(v->shape.begin(), v->shape.end(), p.sizes().begin(), p.sizes().end()))
      throw file_error(where, "tensor " + src + " has shape " + shape_str(v->shape) + " but the config needs " +
                                  shape_str(p.sizes()));
    total += v->nbytes;
  }
  int64_t done = 0;
  for (auto& [k, src] : src_of) {
    const TensorView* v = ckpt.find(src);
    auto p = params[k];
    // Copy in row blocks of ~16 MB and drop each block's file pages right after, so a large tensor
    // (the embedding) is never resident twice. copy_ converts dtype / moves to device.
    const SafetensorsFile* shard = ckpt.shard_of(src);
    const int64_t rows = v->shape.empty() ? 1 : v->shape[0];
    const size_t row_bytes = rows ? v->nbytes / rows : 0;
    const int64_t block = row_bytes ? std::max<int64_t>(1, (16 << 20) / (int64_t)row_bytes) : rows;
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      if (opt.cancel && opt.cancel->load()) throw LoadCancelled(where, done, total);
      const int64_t n = std::min(block, rows - r0);
      TensorView part = *v;
      if (!v->shape.empty()) part.shape[0] = n;
      part.data = v->data + r0 * row_bytes;
      part.nbytes = n * row_bytes;
      auto dst = v->shape.empty() ? p : p.narrow(0, r0, n);
      dst.copy_(to_torch(part, /*copy=*/false));
      shard->advise_done(part);
      done += int64_t(part.nbytes);  // per block: a 1 GB embedding moves the bar too
      if (opt.progress) opt.progress(done, total, src);
      // NaN / Inf weights (a broken save, or an overflow converting to f16) would otherwise generate
      // garbage with exit 0. Checked on the converted block: cheap next to reading it.
      if (dst.is_floating_point() && !torch::isfinite(dst).all().item<bool>())
        throw file_error(shard->path(), "tensor " + src + " has " +
                                            std::to_string(dst.numel() - torch::isfinite(dst).sum().item<int64_t>()) +
                                            " non-finite values (NaN or Inf) as " + c10::toString(dst.scalar_type()));
    }
  }
}

Qwen3VLForConditionalGeneration make_random_model(const ModelConfig& c, uint64_t seed, torch::ScalarType dtype,
                                                  torch::Device device) {
  Qwen3VLForConditionalGeneration m{nullptr};
  if (device.is_cuda()) cuda_exact_f32();
  {
    ParamOptionsGuard g(torch::TensorOptions().dtype(dtype).device(device));
    m = Qwen3VLForConditionalGeneration(c);
  }
  init_random_weights(m, seed);
  m->eval();
  return m;
}

// Compare the config with the checkpoint header (names and shapes only, nothing is read or allocated)
// so that a config that disagrees with its weights fails before the model is allocated: a tensor the
// checkpoint holds must have the shape the config implies, and under strict loading the backbone
// tensors must be present (PVM tensors may come from an adapter, so they are left to load_weights).
// Errors name the checkpoint file, the tensor and the config.
static void check_config_against_checkpoint(const ModelConfig& c, const std::string& cfg_path, const Checkpoint& ckpt,
                                            const LoadOptions& opt, const std::string& where) {
  std::map<std::string, std::string> src_of;  // our key -> checkpoint name
  for (auto& name : ckpt.names()) src_of.emplace(map_legacy_key(name), name);
  std::set<std::string> want;
  std::vector<std::string> missing, unexpected;
  for (auto& t : expected_tensors(c)) {
    want.insert(t.name);
    auto it = src_of.find(t.name);
    if (it == src_of.end()) {
      if (opt.strict && t.part != "pvm" && !(opt.optional_key && opt.optional_key(t.name))) missing.push_back(t.name);
      continue;
    }
    const TensorView* v = ckpt.find(it->second);
    if (v->shape != t.shape) {
      const SafetensorsFile* shard = ckpt.shard_of(it->second);
      throw file_error(shard ? shard->path() : where, "tensor " + it->second + " has shape " + shape_str(v->shape) +
                                                          " but the config needs " + shape_str(t.shape) + " (" +
                                                          cfg_path + ")");
    }
  }
  if (missing.empty()) return;  // unexpected keys alone are reported by load_weights
  for (auto& [k, name] : src_of)
    if (!want.count(k) && k.find(".pvm_block.") == std::string::npos) unexpected.push_back(name);
  std::string msg = "missing keys: " + list_some(missing);
  if (!unexpected.empty()) msg += "; unexpected keys: " + list_some(unexpected);
  throw file_error(where, msg + " (config " + cfg_path + ")");
}

// The checks before anything is allocated; returns the parsed config and the opened checkpoint.
static Checkpoint open_checked(const std::string& dir, const LoadOptions& opt, ModelConfig* config) {
  if (!fs::exists(dir)) throw file_error(dir, "model directory does not exist");
  if (!fs::is_directory(dir))
    throw file_error(dir, "is a file, expected a model folder (config.json + model.safetensors); pass its folder");
  std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) throw file_error(dir, "no config.json in the model directory (not a Qwen3-VL checkpoint)");
  *config = load_config(cfg_path);
  auto ckpt = Checkpoint::open(dir);
  check_config_against_checkpoint(*config, cfg_path, ckpt, opt, ckpt.files().size() == 1 ? ckpt.files()[0] : dir);
  return ckpt;
}

CheckpointInfo inspect_checkpoint(const std::string& dir, const LoadOptions& opt) {
  CheckpointInfo info;
  auto ckpt = open_checked(dir, opt, &info.config);
  info.files = ckpt.files();
  for (auto& f : info.files) {
    std::error_code ec;
    const auto sz = fs::file_size(f, ec);
    if (!ec) info.file_bytes += int64_t(sz);
  }
  info.tensor_bytes = int64_t(ckpt.total_bytes());
  return info;
}

LoadedModel load_model(const std::string& dir, const LoadOptions& opt) {
  LoadedModel out;
  out.dir = dir;
  auto ckpt = open_checked(dir, opt, &out.config);
  if (opt.device.is_cuda()) cuda_exact_f32();
  try {
    {
      ParamOptionsGuard g(torch::TensorOptions().dtype(opt.dtype).device(opt.device));
      out.model = Qwen3VLForConditionalGeneration(out.config);
    }
    out.model->eval();
    load_weights(*out.model, ckpt, opt, ckpt.files().size() == 1 ? ckpt.files()[0] : dir);
  } catch (const LoadCancelled&) {
    throw;
  } catch (...) {
    rethrow_with_context(dir, "loading the model (" + opt.device.str() + ", " + std::string(c10::toString(opt.dtype)) + ")");
  }
  return out;
}

void save_model(Qwen3VLForConditionalGeneration& m, const std::string& dir, torch::ScalarType dtype,
                uint64_t max_shard_bytes) {
  make_dirs(dir, "model");
  std::vector<torch::Tensor> keep;  // owners of the CPU copies the views point into
  std::vector<TensorView> views;
  uint64_t bytes = 0;
  for (auto& p : m->named_parameters(true)) {
    auto t = p.value().detach().to(torch::kCPU, dtype).contiguous();
    keep.push_back(t);
    views.push_back(view_of(t, p.key()));
    bytes += views.back().nbytes;
  }
  std::map<std::string, std::string> meta{{"format", "pt"}};
  if (bytes <= max_shard_bytes)
    write_safetensors((fs::path(dir) / "model.safetensors").string(), views, meta);
  else
    write_sharded(dir, views, max_shard_bytes, meta);
  save_config(m->config(), (fs::path(dir) / "config.json").string());
}

}  // namespace pvm
