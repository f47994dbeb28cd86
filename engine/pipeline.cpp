#include "engine/pipeline.h"

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <thread>

#include "engine/base/error.h"
#include "engine/base/version.h"
#include "engine/device.h"
#include "engine/pvm.h"
#include "engine/vismem.h"

namespace pvm {

namespace fs = std::filesystem;

std::string model_dir_or_default(const std::string& given) {
  std::string d = given.empty() ? default_model_dir() : given;
  if (d.empty()) throw Error("no --model given and the default model (assets/default-model) is not present");
  return d;
}

int default_cpu_threads(const ModelConfig& c) {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  return c.text.hidden_size < 1024 ? 1 : cores;
}

Pipeline open_pipeline(const OpenOptions& o) {
  if (o.threads < 0 || o.threads > 1024) throw Error("--threads must be in 0..1024 (0 = automatic)");
  const std::string dir = model_dir_or_default(o.model_dir);
  LoadOptions lo;
  lo.device = parse_device(o.device);
  lo.dtype = parse_dtype(o.dtype, lo.device);
  if (!o.quiet)
    std::fprintf(stderr, "loading %s (%s, %s)...\n", dir.c_str(), lo.device.str().c_str(), dtype_name(lo.dtype).c_str());
  Pipeline p = Pipeline::open(dir, lo, o.tokenizer);
  if (!o.adapter.empty()) load_pvm_adapter(*p.model.model, o.adapter);
  if (!o.vismem.empty()) load_vismem_adapter(*p.model.model, o.vismem);
  if (lo.device.is_cpu()) at::set_num_threads(o.threads > 0 ? o.threads : default_cpu_threads(p.model.config));
  return p;
}

Pipeline Pipeline::open(const std::string& model_dir, const LoadOptions& opt, const std::string& tok_path) {
  std::string tp = tok_path;
  if (tp.empty()) tp = fs::exists(fs::path(model_dir) / "tokenizer.json") ? (fs::path(model_dir) / "tokenizer.json").string()
                                                                          : default_tokenizer_path();
  if (!tok_path.empty() && !fs::exists(tp)) throw file_error(tp, "no such tokenizer file (given with --tokenizer)");
  if (!fs::exists(tp)) throw file_error(tp, "tokenizer.json not found (the Qwen3 tokenizer is committed in assets/tokenizers/qwen3/; restore it with git, or pass --tokenizer)");
  Pipeline p(Tokenizer::load(tp));
  p.tokenizer_path = tp;
  auto pp = fs::path(model_dir) / "preprocessor_config.json";
  if (fs::exists(pp)) p.preprocessor = PreprocessorConfig::load(pp.string());
  p.model = load_model(model_dir, opt);
  const auto& c = p.model.config;
  // The tokenizer must agree with the model about the vision tokens.
  auto check = [&](const char* text, int64_t want) {
    auto id = p.tokenizer.find_token(text);
    if (!id || *id != want)
      throw file_error(tp, std::string("token ") + text + " has id " + (id ? std::to_string(*id) : "none") +
                               " but the model config says " + std::to_string(want));
  };
  check("<|image_pad|>", c.image_token_id);
  check("<|vision_start|>", c.vision_start_token_id);
  check("<|vision_end|>", c.vision_end_token_id);
  if ((int64_t)p.tokenizer.vocab_size() > c.text.vocab_size)
    throw file_error(tp, "tokenizer has " + std::to_string(p.tokenizer.vocab_size()) + " tokens, more than the model's vocab_size " +
                             std::to_string(c.text.vocab_size));
  return p;
}

PreparedPrompt Pipeline::prepare(const PromptSpec& spec) const {
  PreparedPrompt out;
  std::vector<ImageRGB> imgs;
  for (auto& path : spec.image_paths) imgs.push_back(load_image(path));
  for (auto& im : spec.images) imgs.push_back(im);
  ChatMessage user;
  user.role = "user";
  for (auto& im : imgs) {
    out.images.push_back(preprocess(im, preprocessor));
    user.content.push_back(ChatPart::make_image(out.images.back().num_tokens()));
  }
  user.content.push_back(ChatPart::make_text(spec.text));
  std::vector<ChatMessage> msgs;
  if (!spec.system.empty()) msgs.push_back(ChatMessage::text("system", spec.system));
  msgs.push_back(user);
  auto enc = encode_chat(tokenizer, msgs);
  auto& r = out.request;
  r.prompt_ids.assign(enc.ids.begin(), enc.ids.end());
  r.stop_ids.assign(enc.stop_ids.begin(), enc.stop_ids.end());
  if (!out.images.empty()) {
    std::vector<torch::Tensor> px;
    for (auto& im : out.images) {
      px.push_back(im.pixel_values);
      r.grids.push_back({im.grid_t, im.grid_h, im.grid_w});
    }
    r.pixel_values = torch::cat(px, 0);
  }
  return out;
}

std::string Pipeline::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  return tokenizer.decode(std::vector<int32_t>(ids.begin(), ids.end()), skip_special);
}

std::string Pipeline::decode_marked(const std::vector<int64_t>& ids, bool skip_special) const {
  const auto& c = model.config;
  std::string out;
  std::vector<int64_t> run;
  for (auto id : ids) {
    const int64_t w = vismem_token_of(c, id);
    if (w < 0) {
      run.push_back(id);
      continue;
    }
    out += decode(run, skip_special) + vismem_token_name(w);
    run.clear();
  }
  return out + decode(run, skip_special);
}

}  // namespace pvm
