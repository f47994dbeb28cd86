// Qwen3-VL configuration (HF config.json) with PVM fields, validation, and built-in presets.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pvm {

struct VisionConfig {
  int64_t depth = 27;
  int64_t hidden_size = 1152;        // Dv
  int64_t intermediate_size = 4304;  // I_v
  int64_t num_heads = 16;
  int64_t in_channels = 3;
  int64_t patch_size = 16;
  int64_t temporal_patch_size = 2;
  int64_t spatial_merge_size = 2;
  int64_t out_hidden_size = 4096;  // = text hidden size
  int64_t num_position_embeddings = 2304;
  std::vector<int64_t> deepstack_visual_indexes{8, 16, 24};
  std::string hidden_act = "gelu_pytorch_tanh";
  int64_t head_dim() const { return hidden_size / num_heads; }
};

struct TextConfig {
  int64_t vocab_size = 151936;
  int64_t hidden_size = 4096;  // H
  int64_t intermediate_size = 12288;
  int64_t num_hidden_layers = 36;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 128;
  double rms_norm_eps = 1e-6;
  double rope_theta = 5000000.0;
  std::vector<int64_t> mrope_section{24, 20, 20};
  int64_t max_position_embeddings = 262144;
  bool attention_bias = false;
  std::string hidden_act = "silu";
  // PVM (absent in plain Qwen3-VL checkpoints: pvm_layers empty = no PVM)
  int64_t pvm_hidden_size = 512;
  std::vector<int64_t> pvm_layers;
  std::string pvm_source = "embeddings";  // ablation: "embeddings" | "hidden"
  std::string pvm_variant = "pvm";        // ablation: "pvm" | "mlp" (iso-parameter, no visual input)
};

struct ModelConfig {
  std::string model_type = "qwen3_vl";
  TextConfig text;
  VisionConfig vision;
  bool tie_word_embeddings = false;
  int64_t image_token_id = 151655;
  int64_t video_token_id = 151656;
  int64_t vision_start_token_id = 151652;
  int64_t vision_end_token_id = 151653;
  int64_t bos_token_id = 151643;
  std::vector<int64_t> eos_token_ids{151645, 151643};
  int64_t pad_token_id = 151643;

  bool has_pvm() const { return !text.pvm_layers.empty(); }
  int64_t pvm_heads() const { return text.pvm_hidden_size / text.head_dim; }
  // kv heads = max(1, heads / (backbone heads / backbone kv heads))
  int64_t pvm_kv_heads() const;
  int64_t pvm_intermediate() const;  // int(d * I / H)

  // Throws pvm::Error naming `where` (a file or preset) and the bad field.
  void validate(const std::string& where) const;
};

// Parse an HF config.json (Qwen3-VL layout: text_config + vision_config). Missing optional fields
// take HF defaults; missing required ones or inconsistent values are errors naming the file.
ModelConfig load_config(const std::string& path);
ModelConfig parse_config(const std::string& json_text, const std::string& where);
std::string config_to_json(const ModelConfig& c);  // round-trips through parse_config
void save_config(const ModelConfig& c, const std::string& path);  // atomic

// Built-in presets: "qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b" (the -instruct suffix is accepted).
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

// Expected tensors of a config: HF name -> shape. Used for init, strict load and `pvm inspect`.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string part;  // "vision" | "text" | "lm_head" | "pvm"
};
std::vector<TensorSpec> expected_tensors(const ModelConfig& c, bool include_pvm = true);
std::map<std::string, int64_t> parameter_counts(const ModelConfig& c);  // by part + "total"

}  // namespace pvm
