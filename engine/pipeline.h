// Model + tokenizer + image processor: from (system, text, images) to a generation request and
// back to text. The CLI and the studio's session both go through this.
#pragma once
#include <string>
#include <vector>

#include "engine/base/chat_template.h"
#include "engine/base/paths.h"
#include "engine/base/tokenizer.h"
#include "engine/generate.h"
#include "engine/image.h"
#include "engine/loader.h"

namespace pvm {

struct PromptSpec {
  std::string system;                  // empty = no system turn (the Qwen3-VL template has no default)
  std::string text;
  std::vector<std::string> image_paths;  // shown before the text, in order
  std::vector<ImageRGB> images;        // in-memory images (after image_paths)
};

struct PreparedPrompt {
  GenerationRequest request;  // prompt ids, pixels, grids, stop ids filled in
  std::vector<ProcessedImage> images;
};

class Pipeline {
 public:
  // `model_dir` holds config.json + weights; tokenizer.json and preprocessor_config.json are taken
  // from the model folder when present, else the Qwen3 tokenizer installed by set-up and the
  // Qwen3-VL processor defaults.
  static Pipeline open(const std::string& model_dir, const LoadOptions& opt, const std::string& tokenizer_path = "");
  PreparedPrompt prepare(const PromptSpec& p) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;
  // The same, with VisMem's tokens (ids beyond the model's vocabulary) written as their names
  // (<ms_I>, <ms_E>, <ml_I>, <ml_E>) instead of nothing.
  std::string decode_marked(const std::vector<int64_t>& ids, bool skip_special = true) const;

  explicit Pipeline(Tokenizer t) : tokenizer(std::move(t)) {}
  LoadedModel model;
  Tokenizer tokenizer;
  PreprocessorConfig preprocessor;
  std::string tokenizer_path;
};


// What a driver (a CLI command, a bench tool) needs to open a model: the names as the user typed
// them ("auto" picks), an optional tokenizer and an optional PVM adapter loaded on top.
struct OpenOptions {
  std::string model_dir;              // "" = the default model (an error when it is absent)
  std::string device = "auto", dtype = "auto";
  std::string tokenizer;              // "" = the model folder's, else the committed Qwen3 one
  std::string adapter;                // PVM adapter folder, "" = none
  std::string vismem;                 // VisMem adapter folder, "" = none (engine/vismem.h)
  bool quiet = false;                 // no "loading ..." line on stderr
  int threads = 0;                    // CPU intra-op threads; 0 = default_cpu_threads(config)
};
// Intra-op threads for running a model on the CPU: 1 for small decoders (hidden size under 1024),
// whose operators are too small to split (each split costs a barrier, and a barrier waits a whole
// time slice when another process holds a core: 10x slower decode on a busy 2-core machine,
// experiments/bench/RESULTS_studio.md); otherwise LibTorch's default (the physical cores).
int default_cpu_threads(const ModelConfig& c);
// The --model folder given, or the default model; throws when neither is there.
std::string model_dir_or_default(const std::string& given);
// Parses device and dtype, loads model + tokenizer + processor, then the adapter.
Pipeline open_pipeline(const OpenOptions& o);

}  // namespace pvm
