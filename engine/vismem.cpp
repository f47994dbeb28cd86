#include "engine/vismem.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "engine/base/error.h"
#include "engine/base/file_format.h"
#include "engine/base/fs_util.h"
#include "engine/base/safetensors.h"
#include "engine/base/sampling.h"
#include "engine/rope.h"
#include "engine/tensor_io.h"

namespace pvm {

namespace fs = std::filesystem;

// "vismem_adapter_format" in adapter_config.json: the newest format this build writes and reads.
constexpr int64_t kVismemAdapterFormat = 1;

const char* vismem_token_name(int64_t which) {
  static const char* names[] = {"<ms_I>", "<ms_E>", "<ml_I>", "<ml_E>"};
  return which >= 0 && which < kVismemTokens ? names[which] : "";
}

void VismemConfig::validate(const ModelConfig& m, const std::string& where) const {
  auto bad = [&](const std::string& what) { return Error(where + ": " + what); };
  const int64_t L = m.text.num_hidden_layers, H = m.text.hidden_size;
  if (query_len < 1 || query_len > 4096) throw bad("query_len must be in 1..4096, got " + std::to_string(query_len));
  if (short_len < 1 || short_len > 4096) throw bad("short_len must be in 1..4096, got " + std::to_string(short_len));
  if (long_len < 1 || long_len > 4096) throw bad("long_len must be in 1..4096, got " + std::to_string(long_len));
  if (qc_layers < 1 || qc_layers > 64) throw bad("qc_layers must be in 1..64, got " + std::to_string(qc_layers));
  if (qc_heads < 1 || H % qc_heads != 0)
    throw bad("qc_heads must divide the hidden size " + std::to_string(H) + ", got " + std::to_string(qc_heads));
  if (qc_ff_mult < 1 || qc_ff_mult > 16) throw bad("qc_ff_mult must be in 1..16, got " + std::to_string(qc_ff_mult));
  if (lora_rank < 1 || lora_rank > 1024) throw bad("lora_rank must be in 1..1024, got " + std::to_string(lora_rank));
  if (!(lora_alpha > 0) || !std::isfinite(lora_alpha)) throw bad("lora_alpha must be a positive number");
  if (long_layers < 1 || long_layers >= L)
    throw bad("long_layers must be in 1.." + std::to_string(L - 1) + " (the model has " + std::to_string(L) +
              " layers), got " + std::to_string(long_layers));
  if (max_text_rows < 0) throw bad("max_text_rows must be >= 0");
  for (auto id : separator_ids)
    if (id < 0 || id >= m.text.vocab_size) throw bad("separator id " + std::to_string(id) + " is outside the vocabulary");
  if (init_token_id >= m.text.vocab_size) throw bad("init_token_id " + std::to_string(init_token_id) + " is outside the vocabulary");
  if (!(init_noise >= 0) || !std::isfinite(init_noise)) throw bad("init_noise must be >= 0");
}

// ---------------------------------------------------------------------------------------------
// modules

LoraLinearImpl::LoraLinearImpl(int64_t in, int64_t out, int64_t rank, double alpha) : scale(alpha / rank) {
  lora_A = register_parameter("lora_A", torch::zeros({rank, in}, param_options()));
  lora_B = register_parameter("lora_B", torch::zeros({out, rank}, param_options()));
}

torch::Tensor LoraLinearImpl::operator()(const torch::Tensor& x) {
  return linear_rows(linear_rows(x, lora_A), lora_B) * scale;
}

QueryEncoderLayerImpl::QueryEncoderLayerImpl(int64_t d, int64_t h, int64_t ff) : heads(h) {
  norm1 = register_module("norm1", LayerNorm(d, 1e-5));
  in_proj = register_module("in_proj", Linear(d, 3 * d, true));
  out_proj = register_module("out_proj", Linear(d, d, true));
  norm2 = register_module("norm2", LayerNorm(d, 1e-5));
  linear1 = register_module("linear1", Linear(d, ff, true));
  linear2 = register_module("linear2", Linear(ff, d, true));
}

torch::Tensor QueryEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& allowed) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), hd = D / heads;
  auto qkv = in_proj(norm1(x)).view({B, T, 3, heads, hd}).permute({2, 0, 3, 1, 4});  // [3, B, h, T, hd]
  auto o = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], allowed);        // [B, h, T, hd]
  auto h = x + out_proj(o.transpose(1, 2).reshape({B, T, D}));
  return h + linear2(torch::gelu(linear1(norm2(h))));
}

QueryConstructorImpl::QueryConstructorImpl(int64_t d, const VismemConfig& c) {
  queries = register_parameter("queries", torch::zeros({c.query_len, d}, param_options()));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.qc_layers; ++i) {
    layer_list.push_back(QueryEncoderLayer(d, c.qc_heads, c.qc_ff_mult * d));
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", LayerNorm(d, 1e-5));
}

torch::Tensor QueryConstructorImpl::encode(const torch::Tensor& rows, const torch::Tensor& valid) {
  const int64_t B = rows.size(0), R = rows.size(1), K = queries.size(0), T = R + K;
  auto dev = rows.device();
  auto x = torch::cat({rows.to(queries.scalar_type()), queries.unsqueeze(0).expand({B, K, queries.size(1)})}, 1);
  // state rows read state rows only (the queries never change them); queries read everything
  auto bopt = torch::TensorOptions().dtype(torch::kBool).device(dev);
  auto is_query_row = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(dev)) >= R;  // [T]
  auto is_state_col = is_query_row.logical_not();
  auto allowed = is_query_row.view({T, 1}) | is_state_col.view({1, T});  // [T, T]
  auto cols = torch::ones({B, T}, bopt);
  if (valid.defined() && R > 0) cols.narrow(1, 0, R).copy_(valid);
  auto eye = torch::eye(T, torch::TensorOptions().device(dev)).to(torch::kBool);  // a padded row reads itself (no empty softmax)
  auto a = (allowed.view({1, 1, T, T}) & cols.view({B, 1, 1, T})) | eye.view({1, 1, T, T});
  for (auto& l : layer_list) x = l->forward(x, a);
  return norm(x);
}

torch::Tensor QueryConstructorImpl::forward(const torch::Tensor& rows, const torch::Tensor& valid) {
  auto out = encode(rows, valid);
  return out.narrow(1, out.size(1) - queries.size(0), queries.size(0));
}

namespace {

// Registers a LoRA for `target` at `path` (a chain of plain container modules under `root`, so the
// parameter names follow the backbone's: blocks.3.attn.qkv.lora_A).
std::shared_ptr<LoraLinearImpl> add_lora(torch::nn::Module& root, const std::vector<std::string>& path, Linear& target,
                                         const VismemConfig& c, std::vector<LoraSite>& sites) {
  torch::nn::Module* cur = &root;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    auto kids = cur->named_children();
    auto* found = kids.find(path[i]);
    cur = found ? found->get() : cur->register_module(path[i], std::make_shared<torch::nn::Module>()).get();
  }
  auto& w = target->weight;
  auto lora = std::make_shared<LoraLinearImpl>(w.size(1), w.size(0), c.lora_rank, c.lora_alpha);
  cur->register_module(path.back(), lora);
  sites.push_back({target.get(), lora});
  return lora;
}

// Sets the formers' LoRA updates on their Linears for one scope.
struct DeltaScope {
  const std::vector<LoraSite>& sites;
  explicit DeltaScope(const std::vector<LoraSite>& s) : sites(s) {
    for (auto& x : sites) x.target->delta = x.lora.get();
  }
  ~DeltaScope() {
    for (auto& x : sites) x.target->delta = nullptr;
  }
};

}  // namespace

ShortFormerImpl::ShortFormerImpl(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c) {
  const auto& vc = m.cfg.vision;
  query_proj = register_module("query_proj", Linear(m.cfg.text.hidden_size, vc.hidden_size, false));
  const int64_t window = vc.spatial_merge_size * vc.spatial_merge_size;
  memory_tokens = register_parameter("memory_tokens", torch::zeros({window * c.short_len, vc.hidden_size}, param_options()));
  auto& blocks = *m.model->visual->blocks;
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto* b = blocks[i]->as<Qwen3VLVisionBlockImpl>();
    auto n = std::to_string(i);
    add_lora(*this, {"blocks", n, "attn", "qkv"}, b->attn->qkv, c, sites);
    add_lora(*this, {"blocks", n, "attn", "proj"}, b->attn->proj, c, sites);
    add_lora(*this, {"blocks", n, "mlp", "linear_fc1"}, b->mlp->linear_fc1, c, sites);
    add_lora(*this, {"blocks", n, "mlp", "linear_fc2"}, b->mlp->linear_fc2, c, sites);
  }
}

LongFormerImpl::LongFormerImpl(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c) {
  const int64_t L = m.cfg.text.num_hidden_layers;
  memory_tokens = register_parameter("memory_tokens", torch::zeros({c.long_len, m.cfg.text.hidden_size}, param_options()));
  for (int64_t l = L - c.long_layers; l < L; ++l) {
    auto& layer = m.model->language_model->layer_list[l];
    auto n = std::to_string(l);
    auto& a = layer->self_attn;
    add_lora(*this, {"layers", n, "self_attn", "q_proj"}, a->q_proj, c, sites);
    add_lora(*this, {"layers", n, "self_attn", "k_proj"}, a->k_proj, c, sites);
    add_lora(*this, {"layers", n, "self_attn", "v_proj"}, a->v_proj, c, sites);
    add_lora(*this, {"layers", n, "self_attn", "o_proj"}, a->o_proj, c, sites);
    add_lora(*this, {"layers", n, "mlp", "gate_proj"}, layer->mlp->gate_proj, c, sites);
    add_lora(*this, {"layers", n, "mlp", "up_proj"}, layer->mlp->up_proj, c, sites);
    add_lora(*this, {"layers", n, "mlp", "down_proj"}, layer->mlp->down_proj, c, sites);
  }
}

VismemImpl::VismemImpl(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c)
    : cfg(c), num_layers(m.cfg.text.num_hidden_layers) {
  const int64_t H = m.cfg.text.hidden_size;
  query_constructor = register_module("query_constructor", QueryConstructor(H, c));
  short_former = register_module("short_former", ShortFormer(m, c));
  long_former = register_module("long_former", LongFormer(m, c));
  token_embed = register_parameter("token_embed", torch::zeros({kVismemTokens, H}, param_options()));
  if (!m.cfg.tie_word_embeddings)
    token_head = register_parameter("token_head", torch::zeros({kVismemTokens, H}, param_options()));
}

void VismemImpl::vision_input(Qwen3VLForConditionalGenerationImpl& m, const torch::Tensor& pixel_values,
                              const std::vector<std::array<int64_t, 3>>& grids, MemorySource& src) {
  auto& vis = *m.model->visual;
  const auto dev = m.device();
  if (!pixel_values.defined() || pixel_values.numel() == 0 || grids.empty()) {
    const int64_t Dv = m.cfg.vision.hidden_size, hd = m.cfg.vision.head_dim();
    src.patches = torch::zeros({0, Dv}, torch::TensorOptions().dtype(m.dtype()).device(dev));
    src.patch_cos = torch::zeros({0, hd}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
    src.patch_sin = src.patch_cos;
    return;
  }
  std::vector<int64_t> flat;
  for (auto& g : grids) flat.insert(flat.end(), g.begin(), g.end());
  auto grid = torch::tensor(flat, torch::kLong).view({-1, 3});
  // the tower's own first steps (engine/vision.cpp forward): patch embedding + resampled positions
  src.patches = vis.patch_embed->forward(pixel_values.to(dev)) + vis.fast_pos_embed_interpolate(grid);
  auto rot = vis.rot_pos_emb(grid);
  auto emb = torch::cat({rot, rot}, -1);
  src.patch_cos = emb.cos();
  src.patch_sin = emb.sin();
}

torch::Tensor VismemImpl::form(Qwen3VLForConditionalGenerationImpl& m, const MemorySource& src, bool long_term) {
  const int64_t H = m.cfg.text.hidden_size, K = cfg.query_len;
  const auto dev = m.device();
  const auto dt = m.dtype();
  auto empty = torch::zeros({0, H}, torch::TensorOptions().dtype(dt).device(dev));
  auto vis = src.visual.defined() ? src.visual : empty;
  auto txt = src.text.defined() ? src.text : empty;
  auto rows = torch::cat({vis.to(dt), txt.to(dt)}, 0);  // [R, H]
  auto Q = query_constructor->forward(rows.unsqueeze(0))[0];  // [K, H]
  if (!long_term) {
    // Short-term: the vision tower with its LoRA over [patches, Q, memory rows], one attention
    // segment; Q and the memory rows have no 2-D position (identity rotation).
    auto& tower = *m.model->visual;
    const int64_t M = short_former->memory_tokens.size(0);
    auto x = torch::cat({src.patches, short_former->query_proj(Q), short_former->memory_tokens}, 0);
    const int64_t T = x.size(0), hd = src.patch_cos.size(1);
    auto fopt = torch::TensorOptions().dtype(torch::kFloat).device(dev);
    auto cos = torch::cat({src.patch_cos, torch::ones({K + M, hd}, fopt)}, 0);
    auto sin = torch::cat({src.patch_sin, torch::zeros({K + M, hd}, fopt)}, 0);
    DeltaScope scope(short_former->sites);
    for (auto& b : *tower.blocks) x = b->as<Qwen3VLVisionBlockImpl>()->forward(x, {T}, cos, sin);
    // the projector (merger) turns each 2x2 window of memory rows into one language-space row
    return tower.merger->forward(x.narrow(0, T - M, M));  // [N_s, H]
  }
  // Long-term: the last long_layers decoder layers with their LoRA over [states, Q, memory rows],
  // causal; the states keep their MRoPE positions, Q and the memory rows continue after the largest.
  const int64_t N = cfg.long_len, R = rows.size(0), T = R + K + N;
  auto lopt = torch::TensorOptions().dtype(torch::kLong).device(dev);
  auto vpos = src.visual_pos.defined() ? src.visual_pos.to(dev) : torch::zeros({3, 0}, lopt);
  auto tpos = src.text_pos.defined() ? src.text_pos.to(dev).view({1, src.text_pos.numel()}).expand({3, src.text_pos.numel()})
                                     : torch::zeros({3, 0}, lopt);
  auto spos = torch::cat({vpos, tpos}, 1);  // [3, R]
  const int64_t next = R > 0 ? spos.max().item<int64_t>() + 1 : 0;
  auto qpos = torch::arange(next, next + K + N, lopt).view({1, -1}).expand({3, -1});
  auto pos = torch::cat({spos, qpos}, 1).view({3, 1, T});
  auto x = torch::cat({rows, Q.to(dt), long_former->memory_tokens}, 0).unsqueeze(0);  // [1, T, H]
  DecoderInputs din;
  din.rope = mrope_cos_sin(pos, m.cfg.text, x.scalar_type(), dev);
  din.pvm.enabled = false;
  auto& lm = *m.model->language_model;
  DeltaScope scope(long_former->sites);
  for (int64_t l = tap_layer(); l < num_layers; ++l) x = lm.layer_list[l]->forward(x, din, nullptr, {});
  return lm.norm(x)[0].narrow(0, T - N, N);  // [N_l, H]
}

// ---------------------------------------------------------------------------------------------
// attach / adapters

VismemImpl* vismem_of(Qwen3VLForConditionalGenerationImpl& m) {
  auto kids = m.named_children();
  auto* v = kids.find("vismem");
  return v ? (*v)->as<VismemImpl>() : nullptr;
}

void detach_vismem(Qwen3VLForConditionalGenerationImpl& m) {
  if (!vismem_of(m)) return;
  m.unregister_module("vismem");
  m.extra_embed = torch::Tensor();
  m.extra_head = torch::Tensor();
}

void attach_vismem(Qwen3VLForConditionalGenerationImpl& m, const VismemConfig& c, uint64_t seed) {
  c.validate(m.cfg, "VisMem configuration");
  detach_vismem(m);
  ParamOptionsGuard g(torch::TensorOptions().dtype(m.dtype()).device(m.device()));
  auto vm = Vismem(m, c);
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  init_weights(*vm, gen, 0.02);  // Linear N(0, 0.02), biases 0, norms 1, every other tensor 0
  auto normal = [&](torch::Tensor& t, double std) {
    t.copy_(at::normal(0.0, std, t.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat)));
  };
  normal(vm->query_constructor->queries, 0.02);
  normal(vm->short_former->memory_tokens, 0.02);
  normal(vm->long_former->memory_tokens, 0.02);
  for (auto* f : {&vm->short_former->sites, &vm->long_former->sites})
    for (auto& s : *f) normal(s.lora->lora_A, 1.0 / std::sqrt((double)s.lora->lora_A.size(1)));  // B stays 0
  // the four tokens start as the separator (or, without one, the first end-of-text token) plus noise
  const int64_t init = c.init_token_id >= 0 ? c.init_token_id : m.cfg.eos_token_ids.at(0);
  auto row = m.model->language_model->embed_tokens->weight[init].to(torch::kFloat).cpu();
  auto noise = at::normal(0.0, c.init_noise, {kVismemTokens, row.size(0)}, gen, torch::TensorOptions().dtype(torch::kFloat));
  vm->token_embed.copy_(row.unsqueeze(0) + noise);
  if (vm->token_head.defined()) {
    // untied: the output rows start from the separator's own output row, so a start token is
    // predicted about as often as the separator (the public code copies the input rows instead)
    auto out = m.lm_head_weight()[init].to(torch::kFloat).cpu();
    vm->token_head.copy_(out.unsqueeze(0) + noise);
  }
  m.register_module("vismem", vm.ptr());
  m.extra_embed = vm->token_embed;
  m.extra_head = vm->token_head;
}

static nlohmann::json config_json(const VismemConfig& c) {
  return nlohmann::json{{"query_len", c.query_len},         {"short_len", c.short_len},
                        {"long_len", c.long_len},           {"qc_layers", c.qc_layers},
                        {"qc_heads", c.qc_heads},           {"qc_ff_mult", c.qc_ff_mult},
                        {"lora_rank", c.lora_rank},         {"lora_alpha", c.lora_alpha},
                        {"long_layers", c.long_layers},     {"max_text_rows", c.max_text_rows},
                        {"separator_ids", c.separator_ids}, {"init_token_id", c.init_token_id},
                        {"init_noise", c.init_noise}};
}

void save_vismem_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir) {
  auto* vm = vismem_of(m);
  if (!vm) throw Error("save_vismem_adapter: the model has no VisMem adapter");
  make_dirs(dir, "adapter");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& p : m.named_parameters(true))
    if (p.key().rfind("vismem.", 0) == 0) tensors.emplace_back(p.key(), p.value().detach());
  save_tensors((fs::path(dir) / "adapter.safetensors").string(), tensors, {{"format", "pt"}});
  auto j = config_json(vm->cfg);
  j["adapter_type"] = "vismem";
  j["vismem_adapter_format"] = kVismemAdapterFormat;
  j["token_names"] = {vismem_token_name(0), vismem_token_name(1), vismem_token_name(2), vismem_token_name(3)};
  j["base_hidden_size"] = m.cfg.text.hidden_size;
  j["base_num_hidden_layers"] = m.cfg.text.num_hidden_layers;
  j["base_vocab_size"] = m.cfg.text.vocab_size;
  atomic_write_file((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

static void load_checked(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir_or_file) {
  std::error_code ec;
  if (!fs::exists(dir_or_file, ec))
    throw file_error(dir_or_file, "no such VisMem adapter (pass the folder holding adapter_config.json and adapter.safetensors)");
  const bool given_dir = fs::is_directory(dir_or_file, ec);
  fs::path dir = given_dir ? fs::path(dir_or_file) : fs::path(dir_or_file).parent_path();
  if (dir.empty()) dir = ".";
  auto cfg_path = (dir / "adapter_config.json").string();
  if (!fs::exists(cfg_path, ec)) throw file_error(dir_or_file, "is not a VisMem adapter: no adapter_config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file_to_string(cfg_path, 1 << 20, "adapter config"));
  } catch (const nlohmann::json::exception&) {
    throw file_error(cfg_path, "not valid JSON");
  }
  if (!j.is_object()) throw file_error(cfg_path, "expected a JSON object");
  if (j.contains("peft_type")) throw file_error(cfg_path, "is a PEFT " + j["peft_type"].dump() + " adapter, not a VisMem adapter");
  if (!j.contains("adapter_type")) throw file_error(cfg_path, "has no adapter_type: not a VisMem adapter (a PVM adapter goes to --pvm)");
  if (!(j["adapter_type"].is_string() && j["adapter_type"] == "vismem"))
    throw file_error(cfg_path, "adapter_type is " + j["adapter_type"].dump() + ", not \"vismem\": not a VisMem adapter");
  check_file_format(j, "vismem_adapter_format", kVismemAdapterFormat, cfg_path, "VisMem adapter");
  auto wrong = [&](const std::string& key, const char* want) {
    return file_error(cfg_path, j.contains(key) ? key + " must be " + want + ", got " + j[key].dump().substr(0, 40)
                                                : "missing " + key + " (" + want + ")");
  };
  auto integer = [&](const std::string& key) {
    if (!j.contains(key) || !j[key].is_number_integer() || (j[key].is_number_unsigned() && j[key].get<uint64_t>() > (uint64_t)INT64_MAX))
      throw wrong(key, "an integer");
    return j[key].get<int64_t>();
  };
  auto number = [&](const std::string& key) {
    if (!j.contains(key) || !j[key].is_number()) throw wrong(key, "a number");
    return j[key].get<double>();
  };
  for (auto key : {"base_hidden_size", "base_num_hidden_layers", "base_vocab_size"}) {
    int64_t have = std::string(key) == "base_hidden_size" ? m.cfg.text.hidden_size
                 : std::string(key) == "base_num_hidden_layers" ? m.cfg.text.num_hidden_layers
                                                                : m.cfg.text.vocab_size;
    if (integer(key) != have)
      throw file_error(cfg_path, std::string("adapter is for ") + key + " " + std::to_string(integer(key)) +
                                     " but the model has " + std::to_string(have));
  }
  VismemConfig c;
  c.query_len = integer("query_len");
  c.short_len = integer("short_len");
  c.long_len = integer("long_len");
  c.qc_layers = integer("qc_layers");
  c.qc_heads = integer("qc_heads");
  c.qc_ff_mult = integer("qc_ff_mult");
  c.lora_rank = integer("lora_rank");
  c.lora_alpha = number("lora_alpha");
  c.long_layers = integer("long_layers");
  c.max_text_rows = integer("max_text_rows");
  c.init_token_id = integer("init_token_id");
  c.init_noise = number("init_noise");
  if (!j.contains("separator_ids") || !j["separator_ids"].is_array()) throw wrong("separator_ids", "a list of token ids");
  for (auto& e : j["separator_ids"]) {
    if (!e.is_number_integer()) throw wrong("separator_ids", "a list of token ids");
    c.separator_ids.push_back(e.get<int64_t>());
  }
  c.validate(m.cfg, cfg_path);
  auto weights = given_dir ? (dir / "adapter.safetensors").string() : dir_or_file;
  if (!fs::exists(weights, ec)) throw file_error(weights, "adapter weights not found");
  auto ckpt = Checkpoint::open(weights);
  for (auto& n : ckpt.names()) {
    auto t = to_torch(*ckpt.find(n), false);
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      throw file_error(weights, "tensor " + n + " has non-finite values (NaN or Inf)");
  }
  attach_vismem(m, c);
  auto params = m.named_parameters(true);
  std::vector<std::string> missing, unexpected;
  for (auto& n : ckpt.names())
    if (n.rfind("vismem.", 0) != 0 || !params.contains(n)) unexpected.push_back(n);
  for (auto& p : params)
    if (p.key().rfind("vismem.", 0) == 0 && !ckpt.contains(p.key())) missing.push_back(p.key());
  if (!missing.empty() || !unexpected.empty()) {
    detach_vismem(m);
    throw file_error(weights, std::to_string(missing.size()) + " missing and " + std::to_string(unexpected.size()) +
                                  " unexpected VisMem tensors" + (missing.empty() ? "" : " (first missing: " + missing[0] + ")") +
                                  (unexpected.empty() ? "" : " (first unexpected: " + unexpected[0] + ")"));
  }
  torch::NoGradGuard ng;
  for (auto& n : ckpt.names()) {
    auto* v = ckpt.find(n);
    auto& p = params[n];
    if (!std::equal(v->shape.begin(), v->shape.end(), p.sizes().begin(), p.sizes().end())) {
      detach_vismem(m);
      throw file_error(weights, "tensor " + n + " does not match the model's shape");
    }
    p.copy_(to_torch(*v, false));
  }
}

void load_vismem_adapter(Qwen3VLForConditionalGenerationImpl& m, const std::string& dir_or_file) {
  try {
    load_checked(m, dir_or_file);
  } catch (...) {
    rethrow_with_context(dir_or_file, "loading the VisMem adapter");
  }
}

// ---------------------------------------------------------------------------------------------
// generation

namespace {

// Captures the tap states (the input of the first long-former layer = the output of the layer
// before it) in a forward, beside whatever layer-output observer is already set.
void add_tap(ForwardHooks& hooks, int64_t tap_layer, torch::Tensor* out) {
  auto prev = hooks.layer_output;
  hooks.layer_output = [prev, tap_layer, out](int64_t l, const torch::Tensor& h) {
    if (l == tap_layer - 1) *out = h;
    if (prev) prev(l, h);
  };
}

// The last `cap` rows of a list of [n, H] tensors (and their positions).
std::pair<torch::Tensor, torch::Tensor> recent_rows(const std::vector<torch::Tensor>& rows, const std::vector<int64_t>& pos,
                                                    int64_t cap, int64_t H, const torch::TensorOptions& opt) {
  auto all = rows.empty() ? torch::zeros({0, H}, opt) : torch::cat(rows, 0);
  auto p = torch::tensor(pos, torch::kLong);
  const int64_t n = all.size(0), keep = std::min<int64_t>(n, cap);
  return {all.narrow(0, n - keep, keep), p.narrow(0, n - keep, keep)};
}

}  // namespace

GenerationResult generate_with_vismem(Qwen3VLForConditionalGeneration& m, const GenerationRequest& req) {
  using clock = std::chrono::steady_clock;
  torch::NoGradGuard ng;
  auto* vm = vismem_of(*m);
  if (!vm) throw Error("VisMem generation: the model has no VisMem adapter (load one with --vismem DIR)");
  const auto& cfg = m->config();
  const auto& vc = vm->cfg;
  const auto& opt = req.vismem;
  req.sampling.validate();
  if (opt.invoke != "model" && opt.invoke != "separators")
    throw Error("VisMem invocation must be \"model\" or \"separators\", got \"" + opt.invoke + "\"");
  if (!(opt.p >= 0 && opt.p <= 1) || !(opt.long_fraction >= 0 && opt.long_fraction <= 1))
    throw Error("VisMem probabilities must be in [0, 1]");
  if (opt.max_invocations < 0) throw Error("VisMem max_invocations must be >= 0");
  const bool swap = opt.counterfactual == "swap", skip = opt.counterfactual == "skip";
  if (!swap && !skip && opt.counterfactual != "none")
    throw Error("VisMem counterfactual must be \"none\", \"swap\" or \"skip\", got \"" + opt.counterfactual + "\"");
  if ((swap || skip) && opt.invoke != "model") throw Error("VisMem counterfactual re-runs need invocation mode \"model\"");
  if ((swap || skip) && (int64_t)opt.replay.size() != req.num_sequences)
    throw Error("VisMem counterfactual: " + std::to_string(opt.replay.size()) + " replayed completions for " +
                std::to_string(req.num_sequences) + " sequences");
  if (!opt.streams.empty() && (int64_t)opt.streams.size() != req.num_sequences)
    throw Error("VisMem: " + std::to_string(opt.streams.size()) + " sampling streams for " +
                std::to_string(req.num_sequences) + " sequences");
  if (req.prompt_ids.empty()) throw Error("empty prompt");
  if (req.max_new_tokens < 1) throw Error("--max-new-tokens must be at least 1");
  if (req.num_sequences < 1) throw Error("number of sequences must be at least 1");
  const int64_t P = req.prompt_ids.size(), G = req.num_sequences, V = cfg.text.vocab_size, H = cfg.text.hidden_size;
  for (auto id : req.prompt_ids)
    if (id < 0 || id >= V) throw Error("prompt token id " + std::to_string(id) + " is outside the vocabulary");
  const int64_t Nmax = std::max(vc.short_len, vc.long_len);
  // every insertion step grows the cache of all sequences by N + 2 (the others are padded)
  const int64_t cap = req.max_context > 0 ? req.max_context : P + req.max_new_tokens + G * opt.max_invocations * (Nmax + 1) + 1;
  if (P >= cap) throw Error("prompt of " + std::to_string(P) + " tokens does not fit the context of " + std::to_string(cap) + " tokens");
  if (cap > cfg.text.max_position_embeddings)
    throw Error("context of " + std::to_string(cap) + " tokens exceeds the model's max_position_embeddings (" +
                std::to_string(cfg.text.max_position_embeddings) + ")");
  auto stop = req.stop_ids.empty() ? cfg.eos_token_ids : req.stop_ids;
  const auto dev = m->device();
  const auto dt = m->dtype();
  const int64_t tap = vm->tap_layer();

  KVCache cache;
  cache.allocate(cfg.text, 1, cap, dt, dev);
  GenerationResult res;
  res.prompt_tokens = P;
  res.tokens.assign(G, {});
  res.finish.assign(G, "");
  res.insertions.assign(G, {});

  // ---- prefill (batch 1): the prompt's states are the first memories' source ----
  auto t0 = clock::now();
  auto ri = rope_index({req.prompt_ids}, req.grids, cfg);
  ForwardInput in;
  in.input_ids = torch::tensor(req.prompt_ids, torch::kLong).view({1, P});
  in.pixel_values = req.pixel_values;
  in.grids = req.grids;
  in.pvm = req.pvm;
  in.extra_vocab = true;
  ForwardHooks hooks;
  if (req.configure) req.configure(hooks, true);
  torch::Tensor tap_h;
  add_tap(hooks, tap, &tap_h);
  auto out = m->forward(in, &cache, hooks);
  if (req.after_forward) req.after_forward(out, true);
  const int64_t delta = out.rope_deltas.empty() ? 0 : out.rope_deltas[0];
  MemorySource shared;
  vm->vision_input(*m, req.pixel_values, req.grids, shared);
  std::vector<int64_t> vis_idx, txt_idx, txt_pos;
  auto pos_cpu = ri.position_ids.to(torch::kCPU).contiguous();  // [3, 1, P]
  for (int64_t i = 0; i < P; ++i) {
    if (req.prompt_ids[i] == cfg.image_token_id) vis_idx.push_back(i);
    else txt_idx.push_back(i), txt_pos.push_back(pos_cpu[0][0][i].item<int64_t>());
  }
  auto vidx = torch::tensor(vis_idx, torch::kLong).to(dev);
  shared.visual = tap_h[0].index_select(0, vidx).clone();
  shared.visual_pos = pos_cpu.select(1, 0).index_select(1, torch::tensor(vis_idx, torch::kLong)).to(dev);
  auto prompt_text = tap_h[0].index_select(0, torch::tensor(txt_idx, torch::kLong).to(dev)).clone();
  auto logits = out.logits.select(1, 0).to(torch::kCPU).contiguous();  // [1, V + 4]
  if (G > 1) {
    cache.repeat_batch(G);
    logits = logits.expand({G, logits.size(1)}).contiguous();
  }
  res.prefill_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();

  struct Row {
    std::vector<torch::Tensor> text;  // tap states since the last insertion, [n, H] pieces
    std::vector<int64_t> text_pos;
    int64_t pos = 0;        // next MRoPE position
    int64_t pending = -1;   // start token sampled: insert this type (0 short, 1 long) next
    int64_t force = -1;     // separators mode: the next token is this type's start token
    int64_t invocations = 0;
    int64_t feed = 0;       // token to feed next
    bool replaying = false; // counterfactual: still reproducing the replayed completion
    bool done = false;
    std::mt19937_64 rng;
  };
  std::vector<Row> rows(G);
  std::vector<Sampler> samplers;
  std::vector<std::vector<int64_t>> ctx(G, req.prompt_ids);
  for (int64_t g = 0; g < G; ++g) {
    samplers.emplace_back(req.sampling, opt.streams.empty() ? (uint64_t)g : opt.streams[g]);
    rows[g].replaying = swap || skip;
    rows[g].text = {prompt_text};
    rows[g].text_pos = txt_pos;
    rows[g].pos = P + delta;
    rows[g].rng.seed(opt.seed * 1000003ull + (uint64_t)g);
  }
  auto kv = torch::ones({G, cap}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  bool padded = false;  // any masked slot yet (then every forward passes key_valid)
  const int64_t Vx = logits.size(1);
  const float ninf = -std::numeric_limits<float>::infinity();
  auto t1 = clock::now();
  bool stop_all = false;
  auto emit = [&](int64_t g, int64_t tok) {
    ctx[g].push_back(tok);
    res.tokens[g].push_back(tok);
    if (req.on_token && !req.on_token(g, tok, (int64_t)res.tokens[g].size() - 1)) stop_all = true;
  };
  while (true) {
    // ---- sample one token per live sequence ----
    for (int64_t g = 0; g < G; ++g) {
      auto& r = rows[g];
      if (r.done) continue;
      float* lg = logits[g].data_ptr<float>();
      auto mask_starts = [&] { lg[V + kShortStart] = lg[V + kLongStart] = ninf; };
      if (Vx > V) {
        lg[V + kShortEnd] = lg[V + kLongEnd] = ninf;  // end tokens are structural
        if (opt.invoke != "model" || r.invocations >= opt.max_invocations || (skip && !r.replaying)) mask_starts();
      }
      int64_t tok;
      if (r.force >= 0) {
        tok = vismem_token_id(cfg, r.force == 1 ? kLongStart : kShortStart);
        r.force = -1;
      } else if (r.replaying) {
        // the replayed token, the sampler drawing as the original did; at the first start token the
        // counterfactual begins
        const auto& rp = opt.replay[g];
        const size_t i = res.tokens[g].size();
        const int64_t want = i < rp.size() ? rp[i] : -1, w = want < 0 ? -1 : vismem_token_of(cfg, want);
        if (w == kShortStart || w == kLongStart) r.replaying = false;
        if (want < 0) {
          r.replaying = false;  // a replay without a start token: continue from its end
          if (skip) mask_starts();
          tok = samplers[g].next(lg, Vx, ctx[g]);
        } else if (skip && !r.replaying) {
          mask_starts();
          tok = samplers[g].next(lg, Vx, ctx[g]);
        } else {
          samplers[g].next(lg, Vx, ctx[g]);
          tok = want;
        }
      } else {
        tok = samplers[g].next(lg, Vx, ctx[g]);
      }
      if (swap && !r.replaying) {  // the other memory type, recorded as its own start token
        const int64_t w = vismem_token_of(cfg, tok);
        if (w == kShortStart || w == kLongStart) tok = vismem_token_id(cfg, w == kShortStart ? kLongStart : kShortStart);
      }
      emit(g, tok);
      r.feed = tok;
      const int64_t w = vismem_token_of(cfg, tok);
      if (w == kShortStart || w == kLongStart) {
        r.pending = w == kLongStart ? 1 : 0;
        ++r.invocations;
      } else if (opt.invoke == "separators" && r.invocations < opt.max_invocations &&
                 std::find(vc.separator_ids.begin(), vc.separator_ids.end(), tok) != vc.separator_ids.end()) {
        std::uniform_real_distribution<double> u(0, 1);
        if (u(r.rng) < opt.p) r.force = u(r.rng) < opt.long_fraction ? 1 : 0;
      }
      if (std::find(stop.begin(), stop.end(), tok) != stop.end()) {
        r.done = true;
        res.finish[g] = "stop";
      } else if ((int64_t)res.tokens[g].size() >= req.max_new_tokens) {
        r.done = true;
        res.finish[g] = "length";
      }
    }
    if ((req.cancel && req.cancel->load()) || stop_all)
      for (int64_t g = 0; g < G; ++g)
        if (!rows[g].done) res.finish[g] = "cancelled", rows[g].done = true;
    if (std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.done; })) break;

    // ---- what each sequence feeds: its token, or [start, memory rows, end] ----
    std::vector<std::vector<int64_t>> feed(G);
    std::vector<torch::Tensor> mem(G);
    for (int64_t g = 0; g < G; ++g) {
      auto& r = rows[g];
      if (r.done) continue;
      if (r.pending < 0) {
        feed[g] = {r.feed};
        continue;
      }
      const bool lt = r.pending == 1;
      MemorySource src = shared;
      std::tie(src.text, src.text_pos) = recent_rows(r.text, r.text_pos, vc.max_text_rows, H, shared.visual.options());
      mem[g] = vm->form(*m, src, lt);
      const int64_t s = vismem_token_id(cfg, lt ? kLongStart : kShortStart), e = vismem_token_id(cfg, lt ? kLongEnd : kShortEnd);
      feed[g].assign(1, s);
      feed[g].insert(feed[g].end(), mem[g].size(0), s);
      feed[g].push_back(e);
    }
    int64_t S = 1;
    for (auto& f : feed) S = std::max<int64_t>(S, f.size());
    const int64_t T0 = cache.length;
    if (T0 + S > cap) {
      for (int64_t g = 0; g < G; ++g)
        if (!rows[g].done) res.finish[g] = "length", rows[g].done = true;
      break;
    }
    // right-aligned: each sequence's last fed position is the chunk's last, so the logits (and the
    // probes' last-position attention) are every sequence's own
    auto ids = torch::full({G, S}, cfg.pad_token_id, torch::kLong);
    auto inserted = torch::zeros({G, S}, torch::kBool);
    auto pos = torch::zeros({3, G, S}, torch::kLong);
    std::vector<torch::Tensor> ins_rows;
    auto ida = ids.accessor<int64_t, 2>();
    auto pa = pos.accessor<int64_t, 3>();
    for (int64_t g = 0; g < G; ++g) {
      auto& r = rows[g];
      const int64_t n = feed[g].size(), off = S - n;
      if (n < S) {
        kv[g].narrow(0, T0, S - n).fill_(false);
        padded = true;
      }
      for (int64_t c = 0; c < S; ++c)
        for (int64_t k = 0; k < 3; ++k) pa[k][g][c] = r.pos + std::max<int64_t>(0, c - off);
      for (int64_t c = 0; c < n; ++c) ida[g][off + c] = feed[g][c];
      if (mem[g].defined()) {
        inserted[g].narrow(0, off + 1, mem[g].size(0)).fill_(true);
        ins_rows.push_back(mem[g]);
        MemoryInsertion mi;
        mi.seq = g;
        mi.type = r.pending == 1 ? "long" : "short";
        mi.token_index = (int64_t)res.tokens[g].size() - 1;
        mi.first_slot = T0 + off;
        mi.rows = mem[g].size(0);
        mi.chunk_offset = off;
        res.insertions[g].push_back(mi);
        if (req.on_insert) req.on_insert(mi);
        emit(g, feed[g].back());  // the end token, structural
      }
      r.pos += n;
    }
    ForwardInput din;
    din.input_ids = ids;
    din.position_ids = pos;
    din.pvm = req.pvm;
    din.extra_vocab = true;
    if (!ins_rows.empty()) {
      din.inserted_mask = inserted;
      din.inserted_embeds = torch::cat(ins_rows, 0);
    }
    if (padded) din.key_valid = kv.narrow(1, 0, T0 + S);
    ForwardHooks dhooks;
    if (req.configure) req.configure(dhooks, false);
    add_tap(dhooks, tap, &tap_h);
    auto o = m->forward(din, &cache, dhooks);
    if (req.after_forward) req.after_forward(o, false);
    logits = o.logits.select(1, 0).to(torch::kCPU).contiguous();
    ++res.decode_steps;
    for (int64_t g = 0; g < G; ++g) {
      auto& r = rows[g];
      if (r.done) continue;
      if (r.pending >= 0) {  // a memory was inserted: the next memory reads the text after it
        r.text.clear();
        r.text_pos.clear();
        r.pending = -1;
      } else {
        r.text.push_back(tap_h[g].narrow(0, S - 1, 1).clone());
        r.text_pos.push_back(r.pos - 1);
      }
    }
    if (stop_all) {
      for (int64_t g = 0; g < G; ++g)
        if (!rows[g].done) res.finish[g] = "cancelled", rows[g].done = true;
      break;
    }
  }
  for (int64_t g = 0; g < G; ++g)
    if (res.finish[g].empty()) res.finish[g] = "length";
  res.decode_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
  return res;
}

// ---------------------------------------------------------------------------------------------
// teacher forcing

VismemForward vismem_forward(Qwen3VLForConditionalGeneration& m, const std::vector<int64_t>& prompt,
                             const torch::Tensor& pixel_values, const std::vector<std::array<int64_t, 3>>& grids,
                             const std::vector<int64_t>& completion, bool all_logits, bool pvm) {
  auto* vm = vismem_of(*m);
  if (!vm) throw Error("vismem_forward: the model has no VisMem adapter");
  const auto& cfg = m->config();
  const auto dev = m->device();
  const int64_t P = prompt.size(), H = cfg.text.hidden_size;
  VismemForward r;
  r.ids = prompt;
  // expand: N latent rows after every start token that its end token follows (a start token cut
  // off by the length limit was never followed by a memory)
  for (size_t i = 0; i < completion.size(); ++i) {
    const int64_t tok = completion[i], w = vismem_token_of(cfg, tok);
    r.completion_pos.push_back(r.ids.size());
    r.ids.push_back(tok);
    if ((w == kShortStart || w == kLongStart) && i + 1 < completion.size() &&
        completion[i + 1] == vismem_token_id(cfg, w + 1)) {
      MemoryInsertion mi;
      mi.type = w == kLongStart ? "long" : "short";
      mi.token_index = i;
      mi.first_slot = r.ids.size() - 1;
      mi.rows = vm->rows(w == kLongStart);
      r.insertions.push_back(mi);
      r.ids.insert(r.ids.end(), mi.rows, tok);
    }
  }
  const int64_t S = r.ids.size();
  auto ri = rope_index({r.ids}, grids, cfg);
  auto pos = ri.position_ids;  // [3, 1, S]
  auto pos_cpu = pos.to(torch::kCPU).contiguous();
  auto inserted = torch::zeros({1, S}, torch::kBool);
  std::vector<bool> in_chunk(S, false);
  for (auto& mi : r.insertions) {
    inserted[0].narrow(0, mi.first_slot + 1, mi.rows).fill_(true);
    for (int64_t j = mi.first_slot; j <= mi.first_slot + mi.rows + 1 && j < S; ++j) in_chunk[j] = true;
  }
  std::vector<int64_t> vis_idx;
  for (int64_t i = 0; i < P; ++i)
    if (prompt[i] == cfg.image_token_id) vis_idx.push_back(i);
  MemorySource shared;
  vm->vision_input(*m, pixel_values, grids, shared);
  auto run = [&](int64_t len, const std::vector<torch::Tensor>& mems, bool logits_all, torch::Tensor* tap) {
    ForwardInput in;
    in.input_ids = torch::tensor(std::vector<int64_t>(r.ids.begin(), r.ids.begin() + len), torch::kLong).view({1, len});
    in.pixel_values = pixel_values;
    in.grids = grids;
    in.position_ids = pos.narrow(2, 0, len);
    in.pvm = pvm;
    in.extra_vocab = true;
    in.all_logits = logits_all;
    if (!mems.empty()) {
      in.inserted_mask = inserted.narrow(1, 0, len);
      in.inserted_embeds = torch::cat(mems, 0);
    }
    ForwardHooks hooks;
    if (tap) add_tap(hooks, vm->tap_layer(), tap);
    return m->forward(in, nullptr, hooks);
  };
  std::vector<torch::Tensor> mems;
  int64_t seg_start = 0;  // text since the end of the last chunk
  for (auto& mi : r.insertions) {
    torch::Tensor tap;
    run(mi.first_slot, mems, false, &tap);
    std::vector<int64_t> txt, txt_pos;
    for (int64_t j = seg_start; j < mi.first_slot; ++j)
      if (!in_chunk[j] && !(j < P && prompt[j] == cfg.image_token_id)) txt.push_back(j), txt_pos.push_back(pos_cpu[0][0][j].item<int64_t>());
    MemorySource src = shared;
    src.visual = tap[0].index_select(0, torch::tensor(vis_idx, torch::kLong).to(dev));
    src.visual_pos = pos_cpu.select(1, 0).index_select(1, torch::tensor(vis_idx, torch::kLong)).to(dev);
    auto t = tap[0].index_select(0, torch::tensor(txt, torch::kLong).to(dev));
    std::vector<torch::Tensor> pieces{t};
    std::tie(src.text, src.text_pos) = recent_rows(pieces, txt_pos, vm->cfg.max_text_rows, H, t.options());
    mems.push_back(vm->form(*m, src, mi.type == "long"));
    seg_start = mi.first_slot + mi.rows + 2;
  }
  auto out = run(S, mems, all_logits, nullptr);
  r.hidden = out.hidden;
  if (all_logits) r.logits = out.logits;
  return r;
}

}  // namespace pvm
