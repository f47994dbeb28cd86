#include "engine/memory_estimate.h"

#include "engine/base/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pvm::train {

namespace {
std::string human(int64_t b) {
  char buf[64];
  if (b >= (1ll << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ll << 30));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / double(1 << 20));
  return buf;
}
}  // namespace

std::string MemoryEstimate::to_string() const {
  std::ostringstream o;
  o << "memory estimate (" << device << "): " << params << " parameters, " << trainable_params << " trainable\n"
    << "  weights      " << human(weights) << "\n"
    << "  gradients    " << human(gradients) << "\n"
    << "  optimizer    " << human(optimizer) << "\n"
    << "  activations  " << human(activations) << "\n"
    << "  total        " << human(total);
  if (available >= 0) o << "  (available: " << human(available) << ")";
  return o.str();
}

int64_t available_memory(const torch::Device& dev) {
  if (dev.is_cpu()) {
    std::ifstream f("/proc/meminfo");
    std::string key;
    int64_t v;
    std::string unit;
    while (f >> key >> v >> unit)
      if (key == "MemAvailable:") return v * 1024;
    return -1;
  }
  return -1;  // CUDA free memory is not reachable through LibTorch's C++ API on every version
}

MemoryEstimate estimate_memory(const TrainConfig& cfg, const ModelConfig& mc0) {
  ModelConfig mc = mc0;
  if (cfg.pvm.enabled()) {
    mc.text.pvm_layers = cfg.pvm.layers;
    mc.text.pvm_hidden_size = cfg.pvm.hidden_size;
  }
  MemoryEstimate e;
  e.device = cfg.device;
  const bool bf16 = cfg.dtype == "bf16";
  const int64_t wb = bf16 ? 2 : 4;
  int64_t total = 0, train = 0, pvm_params = 0, vision = 0;
  for (auto& t : expected_tensors(mc, true)) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    total += n;
    if (t.part == "pvm") pvm_params += n;
    if (t.part == "vision") vision += n;
  }
  if (cfg.trainable == "pvm") train = pvm_params;
  else if (cfg.trainable == "all") train = total;
  else if (cfg.trainable.rfind("vismem", 0) == 0) {
    // The VisMem adapter's size is in its file, not the config: every tensor is added to the model,
    // the trained ones are all of them ("vismem", stage 1) or the four token rows ("vismem-policy").
    const std::string file = cfg.vismem.adapter + "/adapter.safetensors";
    if (!cfg.vismem.adapter.empty() && std::filesystem::is_regular_file(file)) {
      const auto st = SafetensorsFile::open(file);  // held: the views live as long as the file
      for (const auto& t : st->tensors()) {
        total += t.numel();
        if (cfg.trainable == "vismem" || t.name.rfind("vismem.token_", 0) == 0) train += t.numel();
      }
    }
  } else {
    train = total - vision;
  }
  e.params = total;
  e.trainable_params = train;
  e.weights = total * wb + (bf16 ? train * 4 : 0);  // + f32 master copies
  e.gradients = train * wb + (bf16 ? train * 4 : 0);
  e.optimizer = train * 8;  // exp_avg + exp_avg_sq in f32
  // Activations of one micro-batch at max_length: what autograd keeps per token and layer
  // (layer inputs, norms, q/k/v, attention output, MLP gate/up/product; ~f32 norm copies), plus
  // the f32 attention scores and probabilities (S x S per head), plus logits at label rows.
  const auto& t = mc.text;
  const int64_t micro = std::max<int64_t>(1, cfg.batch_size / std::max<int64_t>(1, cfg.grad_accum));
  const int64_t S = cfg.max_length, N = micro * S;
  const int64_t qkv = (t.num_attention_heads + 2 * t.num_key_value_heads) * t.head_dim;
  const int64_t per_tok_layer = (8 * t.hidden_size + qkv + t.num_attention_heads * t.head_dim + 3 * t.intermediate_size) * wb +
                                4 * t.hidden_size * 2;
  const int64_t attn_per_layer = micro * t.num_attention_heads * S * S * (4 + 4 + wb);
  int64_t layers_stored = t.num_hidden_layers;
  if (cfg.trainable == "pvm" && !mc.text.pvm_layers.empty())  // frozen layers before the first PVM one keep nothing
    layers_stored = t.num_hidden_layers - *std::min_element(mc.text.pvm_layers.begin(), mc.text.pvm_layers.end());
  int64_t act;
  if (cfg.grad_checkpointing)
    act = layers_stored * N * t.hidden_size * wb + per_tok_layer * N + attn_per_layer;
  else
    act = layers_stored * (per_tok_layer * N + attn_per_layer);
  // PVM blocks: reduced streams + cross-attention probabilities over the visual tokens (~1/8 of S).
  act += (int64_t)mc.text.pvm_layers.size() * N * (8 * t.pvm_hidden_size * wb + (t.pvm_hidden_size / t.head_dim) * (S / 8) * 8);
  act += N / 2 * t.vocab_size * 4 * 2;  // label rows' f32 logits + log-softmax (about half the tokens)
  e.activations = act;
  e.total = e.weights + e.gradients + e.optimizer + e.activations;
  try {
    e.available = available_memory(torch::Device(cfg.device));
  } catch (...) {
    e.available = -1;
  }
  return e;
}

}  // namespace pvm::train

namespace pvm {

std::string LoadMemoryEstimate::to_string() const {
  std::string s = "needs about " + train::human(total) + " (weights " + train::human(weights) + ", KV cache " +
                  train::human(kv_cache) + " for " + std::to_string(context) + " tokens, working " + train::human(working) + ")";
  if (available >= 0) s += std::string(fits() ? "; " : "; does NOT fit: ") + train::human(available) + " available";
  return s;
}

LoadMemoryEstimate estimate_load_memory(const ModelConfig& mc, torch::ScalarType dtype, const torch::Device& dev,
                                        int64_t context) {
  LoadMemoryEstimate e;
  const int64_t wb = int64_t(c10::elementSize(dtype));
  for (auto& t : expected_tensors(mc)) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    e.params += n;
  }
  e.weights = e.params * wb;
  const auto& t = mc.text;
  e.context = context;
  e.kv_cache = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * context * wb;
  // A prefill of `context` tokens: a few hidden-size and MLP-size activations per token (one layer
  // at a time), one layer's attention probabilities when a probe needs them (chunked past 2k), and
  // the f32 logits of the last row.
  const int64_t chunk = std::min<int64_t>(context, 2048);
  e.working = context * (6 * t.hidden_size + 3 * t.intermediate_size) * wb +
              t.num_attention_heads * chunk * context * 4 + 2 * t.vocab_size * 4;
  e.total = e.weights + e.kv_cache + e.working;
  try {
    e.available = train::available_memory(dev);
  } catch (...) {
    e.available = -1;
  }
  return e;
}

}  // namespace pvm
