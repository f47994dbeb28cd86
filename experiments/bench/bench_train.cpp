// pvm-bench-train: tokens/s of an SFT step with the `pvm` trainable set versus `all` on the same
// model (the frozen backbone must make PVM-only steps clearly cheaper), through the real trainer
// (pvm::train::run: data loading on worker threads, forward, backward, AdamW).
//
//   pvm-bench-train [--vocab 1024 --hidden 256 --layers 4 --inter 768 --vision-depth 4]
//                   [--batch 8 --text-tokens 430 --steps 4 --threads 0 --pvm-layers 1,3]
//                   [--grad-checkpointing] [--out RESULTS.md]
//
// The default sizes are the project's default model (~5M parameters, 64 visual tokens, ~500-token
// sequences, batch 8).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/base/cli_args.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/image_write.h"
#include "engine/loader.h"
#include "engine/train.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string byte_token(int b) {
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    return s;
  };
  auto printable = [](int x) { return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255); };
  if (printable(b)) return utf8(uint32_t(b));
  int n = 0;
  for (int x = 0; x < b; ++x)
    if (!printable(x)) ++n;
  return utf8(uint32_t(256 + n));
}

void write_tokenizer(const std::string& path, int base) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  json added = json::array();
  const char* names[] = {"<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>",
                         "<|endoftext|>", "<|im_end|>",    "<|im_start|>"};
  for (int i = 0; i < 7; ++i)
    added.push_back({{"id", base + i}, {"content", names[i]}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"single_word", false}});
  json j = {{"version", "1.0"},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  std::ofstream(path) << j.dump();
}

struct Result {
  double tokens_per_s = 0, step_s = 0;
  int64_t trainable = 0, rss = 0;
};

Result bench(const std::string& dir, const std::string& set, const json& base_cfg) {
  json cfg = base_cfg;
  cfg["trainable"] = set;
  cfg["out"] = dir + "/run-" + set;
  fs::remove_all(cfg["out"].get<std::string>());
  auto tc = pvm::train::parse_train_config(cfg, "bench");
  pvm::train::RunOptions o;
  o.install_signal_handlers = false;
  std::vector<json> lines;
  o.on_step = [&](const json& m) { lines.push_back(m); };
  pvm::train::run(tc, o);
  // Skip the first step (allocator warm-up, prefetch start).
  Result r;
  double tok = 0, t = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    tok += lines[i]["tokens"].get<double>();
    t += lines[i]["step_time_s"].get<double>();
    r.rss = std::max<int64_t>(r.rss, lines[i]["mem_bytes"].get<int64_t>());
  }
  r.tokens_per_s = tok / t;
  r.step_s = t / (double)(lines.size() - 1);
  auto man = json::parse(std::ifstream(cfg["out"].get<std::string>() + "/manifest.json"));
  r.trainable = man["trainable_params"];
  return r;
}

int run(int argc, char** argv) {
  pvm::cli::Args a(std::vector<std::string>(argv + 1, argv + argc),
                   {"--vocab", "--hidden", "--layers", "--inter", "--vision-depth", "--batch", "--text-tokens", "--steps",
                    "--threads", "--pvm-layers", "--out", "--image-size"},
                   {"--grad-checkpointing"});
  pvm::ModelConfig c;
  auto& t = c.text;
  t.vocab_size = a.get_int("--vocab", 1024, 1, 1 << 22);
  t.hidden_size = a.get_int("--hidden", 256, 1, 1 << 16);
  t.intermediate_size = a.get_int("--inter", 768, 1, 1 << 18);
  t.num_hidden_layers = a.get_int("--layers", 4, 1, 1024);
  t.num_attention_heads = 4, t.num_key_value_heads = 2, t.head_dim = t.hidden_size / 4;
  t.rope_theta = 10000;
  const int64_t half = t.head_dim / 2, hw = half * 20 / 64;  // Qwen3-VL's [24, 20, 20] scaled
  t.mrope_section = {half - 2 * hw, hw, hw};
  t.max_position_embeddings = 4096;
  auto& v = c.vision;
  v.depth = a.get_int("--vision-depth", 4, 1, 1024);
  v.hidden_size = 128, v.intermediate_size = 512, v.num_heads = 4, v.out_hidden_size = t.hidden_size;
  v.num_position_embeddings = 256, v.deepstack_visual_indexes = {1, 2};
  const int base = (int)t.vocab_size - 24;
  c.image_token_id = base, c.video_token_id = base + 1, c.vision_start_token_id = base + 2, c.vision_end_token_id = base + 3;
  c.bos_token_id = base + 4, c.pad_token_id = base + 4, c.eos_token_ids = {base + 5};
  c.validate("bench config");
  const int64_t batch = a.get_int("--batch", 8, 1, 1 << 20), text_tokens = a.get_int("--text-tokens", 430, 1, 1 << 24), steps = a.get_int("--steps", 4, 1, 1 << 30);
  const int64_t image = a.get_int("--image-size", 256, 1, 16384);

  auto dir = (fs::temp_directory_path() / ("pvm_bench_train_" + std::to_string(::getpid()))).string();
  fs::create_directories(dir + "/model");
  auto m = pvm::make_random_model(c, 1, torch::kFloat, torch::kCPU);
  pvm::save_model(m, dir + "/model", torch::kFloat);
  write_tokenizer(dir + "/model/tokenizer.json", base);
  const int64_t px = image * image;
  std::ofstream(dir + "/model/preprocessor_config.json")
      << json{{"size", {{"shortest_edge", px}, {"longest_edge", px}}}, {"patch_size", 16}, {"merge_size", 2}, {"temporal_patch_size", 2}}.dump();
  // Data: a 64-token image, a short question, an answer that fills the sequence (all labelled).
  pvm::ImageRGB img;
  img.width = img.height = (int)image;
  img.rgb.resize((size_t)image * image * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = (uint8_t)((i * 2654435761u) >> 24);
  pvm::write_png(dir + "/img.png", img);
  {
    std::ofstream out(dir + "/data.jsonl");
    for (int i = 0; i < 64; ++i) {
      std::string answer;
      while ((int64_t)answer.size() < text_tokens - 30) answer += "the red circle is left of the blue square. ";
      answer.resize(text_tokens - 30);
      out << json{{"messages", {{{"role", "user"}, {"content", "<image>Describe the picture."}}, {{"role", "assistant"}, {"content", answer}}}},
                  {"images", {"img.png"}}}
                 .dump()
          << "\n";
    }
  }
  std::vector<int64_t> pvm_layers;
  {
    std::stringstream ss(a.get("--pvm-layers", "1,3"));
    std::string s;
    while (std::getline(ss, s, ',')) pvm_layers.push_back(std::stoll(s));
  }
  json cfg = {{"model", dir + "/model"},
              {"data", dir + "/data.jsonl"},
              {"steps", steps},
              {"batch_size", batch},
              {"lr", 1e-4},
              {"warmup_steps", 0},
              {"save_every", 0},
              {"log_every", 1},
              {"workers", 2},
              {"threads", a.get_int("--threads", 0, 0, 1024)},
              {"grad_checkpointing", a.has("--grad-checkpointing")},
              {"pvm", {{"layers", pvm_layers}, {"hidden_size", 128}}}};
  auto counts = pvm::parameter_counts(c);
  std::fprintf(stderr, "model: %lld parameters (+ PVM on layers %s), batch %lld, ~%lld tokens per sequence, %d threads\n",
               (long long)counts["total"], a.get("--pvm-layers", "1,3").c_str(), (long long)batch,
               (long long)(text_tokens + image * image / 1024), torch::get_num_threads());
  auto r_pvm = bench(dir, "pvm", cfg);
  auto r_all = bench(dir, "all", cfg);
  std::ostringstream rep;
  char line[512];
  rep << "| set | trainable params | step (s) | tokens/s | peak RSS (MiB) |\n|---|---|---|---|---|\n";
  for (auto& [name, r] : {std::pair<std::string, Result>{"pvm", r_pvm}, {"all", r_all}}) {
    std::snprintf(line, sizeof line, "| %s | %lld | %.3f | %.0f | %.0f |\n", name.c_str(), (long long)r.trainable, r.step_s,
                  r.tokens_per_s, r.rss / 1048576.0);
    rep << line;
  }
  std::snprintf(line, sizeof line, "\npvm / all tokens/s ratio: %.2fx\n", r_pvm.tokens_per_s / r_all.tokens_per_s);
  rep << line;
  std::printf("%s", rep.str().c_str());
  if (a.has("--out")) {
    std::ofstream o(a.get("--out"), std::ios::app);
    o << "\n### " << counts["total"] << " params, hidden " << t.hidden_size << ", " << t.num_hidden_layers << " layers, vocab "
      << t.vocab_size << ", batch " << batch << ", ~" << text_tokens + image * image / 1024 << " tokens/seq, "
      << torch::get_num_threads() << " threads" << (a.has("--grad-checkpointing") ? ", grad checkpointing" : "") << "\n\n"
      << rep.str();
  }
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pvm-bench-train: error: %s\n", e.what());
    return 1;
  }
}
