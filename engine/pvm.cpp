#include "engine/pvm.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/base/file_format.h"
#include "engine/base/fs_util.h"
#include "engine/base/safetensors.h"
#include "engine/loader.h"
#include "engine/model.h"
#include "engine/tensor_io.h"

namespace pvm {

namespace fs = std::filesystem;

// "pvm_adapter_format" in adapter_config.json: the newest format this build writes and reads
// (adapters written before the number existed read as 1; a newer one is refused).
constexpr int64_t kPvmAdapterFormat = 1;

std::pair<torch::Tensor, torch::Tensor> split_visual_rows(const torch::Tensor& flat, const torch::Tensor& mask) {
  const int64_t B = mask.size(0), H = flat.size(-1);
  auto counts = mask.sum(1).to(torch::kCPU);
  auto c = counts.accessor<int64_t, 1>();
  int64_t nmax = 0;
  bool equal = true;
  for (int64_t b = 0; b < B; ++b) {
    nmax = std::max(nmax, c[b]);
    equal &= c[b] == c[0];
  }
  if (equal) return {flat.view({B, nmax, H}), torch::Tensor()};
  auto vis = torch::zeros({B, nmax, H}, flat.options());
  auto valid = torch::zeros({B, nmax}, torch::TensorOptions().dtype(torch::kBool).device(flat.device()));
  int64_t off = 0;
  for (int64_t b = 0; b < B; ++b) {
    vis[b].narrow(0, 0, c[b]).copy_(flat.narrow(0, off, c[b]));
    valid[b].narrow(0, 0, c[b]).fill_(true);
    off += c[b];
  }
  return {vis, valid};
}

PvmCrossAttentionImpl::PvmCrossAttentionImpl(int64_t d, int64_t h, int64_t kvh, int64_t hd, double eps)
    : heads(h), kv_heads(kvh), head_dim(hd) {
  q_proj = register_module("q_proj", Linear(d, h * hd, false));
  k_proj = register_module("k_proj", Linear(d, kvh * hd, false));
  v_proj = register_module("v_proj", Linear(d, kvh * hd, false));
  o_proj = register_module("o_proj", Linear(h * hd, d, false));
  q_norm = register_module("q_norm", RMSNorm(hd, eps));
  k_norm = register_module("k_norm", RMSNorm(hd, eps));
}

void PvmMemoryCache::repeat_batch(int64_t n) {
  for (auto& [l, m] : layers) {
    m.k = m.k.repeat_interleave(n, 0);
    m.v = m.v.repeat_interleave(n, 0);
    if (m.bias.defined()) m.bias = m.bias.repeat_interleave(n, 0);
  }
}

PvmBlockImpl::PvmBlockImpl(const ModelConfig& c, int64_t layer)
    : layer_idx(layer), eps(c.text.rms_norm_eps), source(c.text.pvm_source), variant(c.text.pvm_variant) {
  const int64_t H = c.text.hidden_size, d = c.text.pvm_hidden_size;
  text_reducer = register_module("text_reducer", Linear(H, d, false));
  vision_reducer = register_module("vision_reducer", Linear(H, d, false));
  input_norm = register_module("input_norm", RMSNorm(d, eps));
  cross_attn = register_module("cross_attn", PvmCrossAttention(d, c.pvm_heads(), c.pvm_kv_heads(), c.text.head_dim, eps));
  post_attn_norm = register_module("post_attn_norm", RMSNorm(d, eps));
  mlp = register_module("mlp", GatedMLP(d, c.pvm_intermediate()));
  output_expander = register_module("output_expander", Linear(d, H, false));
  gate_alpha = register_parameter("gate_alpha", torch::zeros({1}, param_options()));
}

torch::Tensor PvmBlockImpl::forward(const torch::Tensor& h_mid, const torch::Tensor& visual_mask, const PvmInputs& in,
                                    PvmMemoryCache* cache, std::map<int64_t, PvmProbe>* probes) {
  PvmMemoryCache scratch;  // no KV cache: the memory lives for this call only
  auto& store = (cache ? *cache : scratch).layers;
  if (visual_mask.defined()) {  // this chunk holds the images: (re)build the memory
    auto [vis, valid] = split_visual_rows(memory_rows(h_mid, visual_mask, in), visual_mask);
    store[layer_idx] = make_memory(vis, valid);
  }
  auto it = store.find(layer_idx);
  if (it == store.end()) return {};
  return forward(h_mid, it->second, visual_mask, probes ? &(*probes)[layer_idx] : nullptr);
}

torch::Tensor PvmBlockImpl::memory_rows(const torch::Tensor& h_mid, const torch::Tensor& visual_mask,
                                        const PvmInputs& in) {
  if (source == "hidden") return h_mid.reshape({-1, h_mid.size(-1)}).index_select(0, visual_mask.flatten().nonzero().squeeze(1));
  return in.image_embeds;
}

PvmMemory PvmBlockImpl::make_memory(const torch::Tensor& vis, const torch::Tensor& valid) {
  const int64_t B = vis.size(0), N = vis.size(1), hd = cross_attn->head_dim, kvh = cross_attn->kv_heads;
  auto v = vision_reducer(vis);  // [B, Nv, d], input not normed (as the official block)
  PvmMemory m;
  m.k = cross_attn->k_norm(cross_attn->k_proj(v).view({B, N, kvh, hd})).transpose(1, 2);  // [B, kvh, Nv, hd]
  m.v = cross_attn->v_proj(v).view({B, N, kvh, hd}).transpose(1, 2);
  if (valid.defined())
    m.bias = torch::zeros({B, 1, 1, N}, torch::TensorOptions().dtype(torch::kFloat).device(vis.device()))
                 .masked_fill(valid.logical_not().view({B, 1, 1, N}), -std::numeric_limits<float>::infinity());
  return m;
}

torch::Tensor PvmBlockImpl::forward(const torch::Tensor& h_mid, const PvmMemory& mem, const torch::Tensor& silence,
                                    PvmProbe* probe) {
  const int64_t B = h_mid.size(0), S = h_mid.size(1);
  const int64_t heads = cross_attn->heads, kvh = cross_attn->kv_heads, hd = cross_attn->head_dim;
  auto q_in = input_norm(text_reducer(h_mid));  // [B, S, d]
  torch::Tensor attn_out;
  if (variant == "mlp") {
    // Iso-parameter ablation: the same weights with the token itself as the only memory entry
    // (softmax over one key = 1, so q/k drop out), so no visual information can enter.
    auto v = cross_attn->v_proj(vision_reducer(h_mid)).view({B, S, kvh, 1, hd});
    attn_out = v.expand({B, S, kvh, heads / kvh, hd}).reshape({B, S, heads * hd});
  } else {
    auto q = cross_attn->q_norm(cross_attn->q_proj(q_in).view({B, S, heads, hd})).transpose(1, 2);  // [B, h, S, hd]
    const int64_t N = mem.k.size(2), G = heads / kvh;
    // GQA without copying k/v: [B, kvh, G*S, hd] x [B, kvh, hd, N]; no RoPE, no causal mask.
    auto qg = q.reshape({B, kvh, G * S, hd});
    auto scores = torch::matmul(qg, mem.k.transpose(-2, -1)).to(torch::kFloat) / std::sqrt((double)hd);
    if (mem.bias.defined()) scores = scores + mem.bias;  // [B, 1, 1, N] over [B, kvh, G*S, N]
    auto probs = torch::softmax(scores, -1);              // over visual tokens only: sums to 1 at any length
    if (probe) probe->attn = probs.view({B, heads, S, N}).select(2, S - 1).detach();
    auto o = torch::matmul(probs.to(q.scalar_type()), mem.v).view({B, heads, S, hd});
    attn_out = o.transpose(1, 2).reshape({B, S, heads * hd});
  }
  auto m_raw = cross_attn->o_proj(attn_out);
  auto m = m_raw + mlp(post_attn_norm(m_raw));
  auto r = output_expander(m);  // [B, S, H]
  // weightless RMSNorm in f32, then the scalar gate: each injected vector has RMS |gate_alpha|
  auto rf = r.to(torch::kFloat);
  auto normed = (rf * torch::rsqrt(rf.pow(2).mean(-1, true) + eps)).to(r.scalar_type());
  auto out = gate_alpha * normed;
  if (silence.defined()) out = out.masked_fill(silence.unsqueeze(-1), 0);  // visual silencing mask
  if (probe) {
    probe->injection = out.select(1, S - 1).detach();
    probe->residual = h_mid.select(1, S - 1).detach();
    probe->gate = gate_alpha.detach();
  }
  return out;
}

void detach_pvm(Qwen3VLForConditionalGenerationImpl& m) {
  for (auto& layer : m.model->language_model->layer_list) {
    if (!layer->pvm_block) continue;
    layer->unregister_module("pvm_block");
    layer->pvm_block.reset();
  }
  m.cfg.text.pvm_layers.clear();
}

void attach_pvm(Qwen3VLForConditionalGenerationImpl& m, const TextConfig& f, uint64_t seed) {
  ModelConfig c = m.cfg;
  c.text.pvm_hidden_size = f.pvm_hidden_size;
  c.text.pvm_layers = f.pvm_layers;
  c.text.pvm_source = f.pvm_source;
  c.text.pvm_variant = f.pvm_variant;
  c.validate("PVM configuration");
  detach_pvm(m);
  auto opts = torch::TensorOptions().dtype(m.dtype()).device(m.device());
  ParamOptionsGuard g(opts);
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard ng;
  for (auto l : c.text.pvm_layers) {
    auto& layer = m.model->language_model->layer_list[l];
    auto block = PvmBlock(c, l);
    layer->pvm_block = layer->register_module("pvm_block", block.ptr());
    // init (docs/MODEL.md#pvm): matrices N(0, 0.02) (output_expander included, or no gradient could flow),
    // norms 1, gate exactly 0; one generator across the blocks.
    init_weights(*block, gen, 0.02);
  }
  m.cfg = c;
}

void save_pvm_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir) {
  const auto& c = m.cfg;
  if (!c.has_pvm()) throw Error("save_pvm_adapter: the model has no PVM blocks");
  make_dirs(dir, "adapter");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& p : m.named_parameters(true))
    if (p.key().find(".pvm_block.") != std::string::npos) tensors.emplace_back(p.key(), p.value().detach());
  save_tensors((fs::path(dir) / "adapter.safetensors").string(), tensors, {{"format", "pt"}});
  nlohmann::json j{{"adapter_type", "pvm"},
                   {"pvm_adapter_format", kPvmAdapterFormat},
                   {"pvm_hidden_size", c.text.pvm_hidden_size},
                   {"pvm_layers", c.text.pvm_layers},
                   {"pvm_source", c.text.pvm_source},
                   {"pvm_variant", c.text.pvm_variant},
                   {"base_hidden_size", c.text.hidden_size},
                   {"base_num_hidden_layers", c.text.num_hidden_layers}};
  atomic_write_file((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

static void load_pvm_adapter_checked(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir_or_file);

void load_pvm_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir_or_file) {
  try {
    load_pvm_adapter_checked(m, dir_or_file);
  } catch (...) {
    rethrow_with_context(dir_or_file, "loading the PVM adapter");
  }
}

static void load_pvm_adapter_checked(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir_or_file) {
  // Errors about the adapter as a whole name the path the user gave (not its parent folder), and
  // the advice is what works: an adapter is a folder, or its adapter.safetensors beside the config.
  std::error_code ec;
  if (!fs::exists(dir_or_file, ec))
    throw file_error(dir_or_file, "no such PVM adapter (pass the adapter folder holding adapter_config.json and adapter.safetensors)");
  const bool given_dir = fs::is_directory(dir_or_file, ec);
  fs::path dir = given_dir ? fs::path(dir_or_file) : fs::path(dir_or_file).parent_path();
  if (dir.empty()) dir = ".";
  auto cfg_path = (dir / "adapter_config.json").string();
  if (!fs::exists(cfg_path, ec))
    throw file_error(dir_or_file, given_dir ? "is not a PVM adapter folder: it has no adapter_config.json"
                                            : "is not a PVM adapter: no adapter_config.json beside it (pass the adapter "
                                              "folder holding adapter_config.json and adapter.safetensors)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file_to_string(cfg_path, 1 << 20, "adapter config"));
  } catch (const nlohmann::json::exception& e) {
    throw file_error(cfg_path, "not valid JSON");
  }
  // An adapter of another kind (a PEFT LoRA, ...) must not load as PVM: its type fields must say
  // "pvm" when present (older PVM adapters have none).
  if (j.is_object()) {
    if (j.contains("adapter_type") && !(j["adapter_type"].is_string() && j["adapter_type"] == "pvm"))
      throw file_error(cfg_path, "adapter_type is " + j["adapter_type"].dump() + ", not \"pvm\": not a PVM adapter");
    if (j.contains("peft_type"))
      throw file_error(cfg_path, "is a PEFT " + j["peft_type"].dump() + " adapter, not a PVM adapter");
    check_file_format(j, "pvm_adapter_format", kPvmAdapterFormat, cfg_path, "PVM adapter");
  }
  TextConfig f = m.cfg.text;
  // Exact types, each error naming its field (nlohmann would silently turn 512.7 or true into an
  // integer, and a null must not become a default).
  if (!j.is_object()) throw file_error(cfg_path, "expected a JSON object");
  auto wrong = [&](const std::string& key, const nlohmann::json* v, const char* want) {
    return file_error(cfg_path, v ? key + " must be " + want + ", got " + v->dump().substr(0, 40) : "missing " + key + " (" + want + ")");
  };
  auto integer = [&](const std::string& key, const nlohmann::json* v) {
    if (!v || !v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() > (uint64_t)INT64_MAX))
      throw wrong(key, v, "an integer");
    return v->get<int64_t>();
  };
  auto field = [&](const char* key) { return j.contains(key) ? &j[key] : nullptr; };
  f.pvm_hidden_size = integer("pvm_hidden_size", field("pvm_hidden_size"));
  if (!field("pvm_layers") || !j["pvm_layers"].is_array()) throw wrong("pvm_layers", field("pvm_layers"), "a list of layer indices");
  f.pvm_layers.clear();
  for (auto& e : j["pvm_layers"]) f.pvm_layers.push_back(integer("pvm_layers", &e));
  for (auto key : {"pvm_source", "pvm_variant"})
    if (j.contains(key) && !j[key].is_string()) throw wrong(key, &j[key], "a string");
  f.pvm_source = j.value("pvm_source", std::string("embeddings"));
  f.pvm_variant = j.value("pvm_variant", std::string("pvm"));
  if (j.contains("base_hidden_size") && j["base_hidden_size"].is_number_integer() &&
      j["base_hidden_size"].get<int64_t>() != m.cfg.text.hidden_size)
    throw file_error(cfg_path, "adapter is for hidden size " + std::to_string(j["base_hidden_size"].get<int64_t>()) +
                                   " but the model has " + std::to_string(m.cfg.text.hidden_size));
  ModelConfig check = m.cfg;
  check.text.pvm_hidden_size = f.pvm_hidden_size;
  check.text.pvm_layers = f.pvm_layers;
  check.text.pvm_source = f.pvm_source;
  check.text.pvm_variant = f.pvm_variant;
  check.validate(cfg_path);
  auto weights = given_dir ? (dir / "adapter.safetensors").string() : dir_or_file;
  if (!fs::exists(weights, ec)) throw file_error(weights, "adapter weights not found");
  auto ckpt = Checkpoint::open(weights);
  // NaN / Inf in an adapter (a diverged run's gate) would silently turn every answer into garbage.
  // Checked before anything is attached, so a bad adapter leaves the model as it was.
  for (auto& n : ckpt.names()) {
    auto t = to_torch(*ckpt.find(n), false);
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      throw file_error(weights, "tensor " + n + " has " + std::to_string(t.numel() - torch::isfinite(t).sum().item<int64_t>()) +
                                    " non-finite values (NaN or Inf)");
  }
  attach_pvm(m, f);
  // Exactly the PVM parameters must be in the adapter.
  auto params = m.named_parameters(true);
  std::vector<std::string> missing, unexpected;
  for (auto& n : ckpt.names())
    if (n.find(".pvm_block.") == std::string::npos || !params.contains(n)) unexpected.push_back(n);
  for (auto& p : params)
    if (p.key().find(".pvm_block.") != std::string::npos && !ckpt.contains(p.key())) missing.push_back(p.key());
  if (!missing.empty() || !unexpected.empty()) {
    detach_pvm(m);
    throw file_error(weights, std::to_string(missing.size()) + " missing and " + std::to_string(unexpected.size()) +
                                  " unexpected PVM tensors" + (missing.empty() ? "" : " (first missing: " + missing[0] + ")") +
                                  (unexpected.empty() ? "" : " (first unexpected: " + unexpected[0] + ")"));
  }
  torch::NoGradGuard ng;
  for (auto& n : ckpt.names()) {
    auto* v = ckpt.find(n);
    auto& p = params[n];
    if (!std::equal(v->shape.begin(), v->shape.end(), p.sizes().begin(), p.sizes().end())) {
      detach_pvm(m);
      throw file_error(weights, "tensor " + n + " does not match the model's shape");
    }
    p.copy_(to_torch(*v, false));
  }
}

}  // namespace pvm
