// pvm inspect: tensors, shapes and parameter counts by part, for a preset or a model folder.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/base/safetensors.h"

namespace {

std::string human(int64_t n) {
  char buf[64];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.3fB", n / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%lld", (long long)n);
  return buf;
}

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv, {"--preset", "--model", "--pvm-layers", "--pvm-dim"}, {"--json", "--tensors"});
  if (a.has("--preset") == a.has("--model")) throw pvm::Error("give exactly one of --preset NAME or --model DIR");
  pvm::ModelConfig c;
  std::string source;
  std::unique_ptr<pvm::Checkpoint> ckpt;
  if (a.has("--preset")) {
    c = pvm::preset_config(a.get("--preset"));
    source = "preset " + a.get("--preset");
  } else {
    namespace fs = std::filesystem;
    std::string dir = a.get("--model");
    c = pvm::load_config((fs::path(dir) / "config.json").string());
    source = dir;
    ckpt = std::make_unique<pvm::Checkpoint>(pvm::Checkpoint::open(dir));
  }
  if (a.has("--pvm-layers")) {
    c.text.pvm_layers.clear();
    for (long long l : pvm::cli::parse_int_list(a.get("--pvm-layers"), "option --pvm-layers", 0, 1023))
      c.text.pvm_layers.push_back(l);
  }
  if (a.has("--pvm-dim")) {
    c.text.pvm_hidden_size = a.get_int("--pvm-dim", 512, 1, 65536);
    if (c.text.pvm_layers.empty()) throw pvm::Error("--pvm-dim needs --pvm-layers (or a config with pvm_layers)");
  }
  c.validate(source);
  auto tensors = pvm::expected_tensors(c);
  auto counts = pvm::parameter_counts(c);
  // For a model folder, compare what the config expects with what the checkpoint holds.
  std::vector<std::string> missing, unexpected, mismatched;
  if (ckpt) {
    std::set<std::string> want;
    for (auto& t : tensors) {
      want.insert(t.name);
      const auto* v = ckpt->find(t.name);
      if (!v) {
        // tied lm_head and PVM weights (which may come from an adapter) are not required
        if (t.part != "pvm") missing.push_back(t.name);
      } else if (v->shape != t.shape) {
        mismatched.push_back(t.name);
      }
    }
    for (auto& n : ckpt->names())
      if (!want.count(n)) unexpected.push_back(n);
  }
  if (a.has("--json")) {
    nlohmann::json j;
    j["source"] = source;
    j["parameters"] = counts;
    j["pvm_layers"] = c.text.pvm_layers;
    j["pvm_hidden_size"] = c.text.pvm_hidden_size;
    j["num_tensors"] = tensors.size();
    if (a.has("--tensors")) {
      auto& arr = j["tensors"] = nlohmann::json::array();
      for (auto& t : tensors) arr.push_back({{"name", t.name}, {"shape", t.shape}, {"part", t.part}});
    }
    if (ckpt) {
      j["checkpoint"] = {{"files", ckpt->files()},
                         {"bytes", ckpt->total_bytes()},
                         {"missing", missing},
                         {"unexpected", unexpected},
                         {"shape_mismatch", mismatched}};
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", source.c_str());
    std::printf("  text:   %lld layers, hidden %lld, heads %lld/%lld kv, vocab %lld\n", (long long)c.text.num_hidden_layers,
                (long long)c.text.hidden_size, (long long)c.text.num_attention_heads,
                (long long)c.text.num_key_value_heads, (long long)c.text.vocab_size);
    std::printf("  vision: %lld blocks, hidden %lld, deepstack taps %zu\n", (long long)c.vision.depth,
                (long long)c.vision.hidden_size, c.vision.deepstack_visual_indexes.size());
    if (c.has_pvm()) {
      std::string l;
      for (auto x : c.text.pvm_layers) l += (l.empty() ? "" : ",") + std::to_string(x);
      std::printf("  pvm:    layers %s, latent %lld\n", l.c_str(), (long long)c.text.pvm_hidden_size);
    }
    std::printf("  parameters:\n");
    for (const char* p : {"vision", "text", "lm_head", "pvm", "total"})
      std::printf("    %-8s %15lld  (%s)\n", p, (long long)counts[p], human(counts[p]).c_str());
    if (a.has("--tensors"))
      for (auto& t : tensors) {
        std::string s;
        for (auto d : t.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
        std::printf("  %-70s [%s]\n", t.name.c_str(), s.c_str());
      }
    if (ckpt)
      std::printf("  checkpoint: %zu files, %.1f MB; %zu missing, %zu unexpected, %zu shape mismatches\n",
                  ckpt->files().size(), ckpt->total_bytes() / 1e6, missing.size(), unexpected.size(), mismatched.size());
  }
  return 0;
}

}  // namespace

PVM_COMMAND("inspect", "tensors, shapes and parameter counts of a preset or a model folder",
            "(--preset NAME | --model DIR) [--pvm-layers 8,16,24] [--pvm-dim 512] [--tensors] [--json]", run);
