// Deterministic fuzzing of the engine's readers of untrusted JSON: trainer_state.json (as
// --resume reads it), the training config (and --set overrides), SFT and GRPO data lines, and
// preprocessor_config.json. Whatever the input: success, or a pvm::Error of one line naming the
// file (helpers: tests/fuzz_util.h).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/model.h"
#include "engine/base/train_config.h"
#include "engine/train_data.h"
#include "engine/train_state.h"
#include "tests/fuzz_util.h"
#include "tests/test_util.h"

using namespace pvm::fuzz;
using nlohmann::json;
namespace fs = std::filesystem;

TEST(FuzzEngineReaders, TrainerStateOnlyThrowsPvmError) {
  const json good = {{"pvm_trainer_state", 1},
                     {"step", 4},
                     {"total_steps", 8},
                     {"optimizer_steps", 4},
                     {"objective", {{"sampler", {{"epoch", 0}, {"cursor", 4}, {"n", 16}, {"batch", 2}}}}},
                     {"metrics_bytes", 1234},
                     {"elapsed_s", 1.5},
                     {"pvm_only", true},
                     {"trainable", {"model.language_model.layers.1.pvm_block.gate_alpha"}},
                     {"world_size", 1},
                     {"time", 1.7e9}};
  ASSERT_NO_THROW(pvm::train::parse_trainer_state(good, "seed/trainer_state.json"));
  const std::string text = good.dump();
  Rng r(4242);
  Outcomes o{"trainer_state.json"};
  for (int it = 0; it < 3000; ++it) {
    json j;
    if (r.coin(25)) {
      // Bytes first: the trainer parses the text, and a parse error is its own message.
      std::string t = mutate_bytes(r, text, kJsonAlphabet);
      try {
        j = json::parse(t);
      } catch (const json::exception&) {
        continue;
      }
    } else {
      j = good;
      for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, j);
    }
    o.run(j.dump(), [&] {
      auto s = pvm::train::parse_trainer_state(j, "fuzz/trainer_state.json");
      if (s.optimizer_steps > s.step || s.step < 0 || !s.objective.is_object() || s.world_size < 1 || !(s.elapsed_s >= 0))
        throw std::logic_error("accepted an inconsistent trainer state");
    }, "fuzz/trainer_state.json");
  }
  o.report();
  EXPECT_GT(o.ok, 100);
  EXPECT_GT(o.errors, 500);
}

TEST(FuzzEngineReaders, TrainConfigOnlyThrowsPvmError) {
  const json good = {{"mode", "sft"},
                     {"model", "m"},
                     {"data", "d.jsonl"},
                     {"pvm", {{"layers", {1, 2}}, {"hidden_size", 64}, {"variant", "pvm"}, {"source", "embeddings"}}},
                     {"steps", 10},
                     {"batch_size", 4},
                     {"grad_accum", 2},
                     {"lr", 1e-3},
                     {"betas", {0.9, 0.99}},
                     {"seed", 3},
                     {"workers", 2},
                     {"bad_lines", "skip"},
                     {"grpo", {{"group_size", 4}, {"temperature", 1.0}, {"reward", "exact"}}}};
  ASSERT_NO_THROW(pvm::train::parse_train_config(good, "seed.json"));
  Rng r(515);
  Outcomes o{"train config"}, sets{"--set overrides"};
  const std::vector<std::string> keys{"seed", "steps", "pvm.layers", "pvm.hidden_size", "grpo.group_size", "lr", "betas", "model", "x.y"};
  const std::vector<std::string> values{"null", "99999999999999999999", "-1", "1e400", "[1,2]", "{}", "\"s\"", "true", "nan", "0.5", "", "{"};
  for (int it = 0; it < 3000; ++it) {
    json j = good;
    for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, j);
    o.run(j.dump(), [&] { pvm::train::parse_train_config(j, "fuzz/train.json"); }, "fuzz/train.json");
    const std::string kv = r.pick(keys) + "=" + r.pick(values);
    sets.run(kv, [&] {
      json s = good;
      pvm::train::apply_override(s, kv);
      pvm::train::parse_train_config(s, "fuzz/train.json (with --set)");
    }, "fuzz/train.json");
  }
  o.report();
  sets.report();
  EXPECT_GT(o.ok, 100);
  EXPECT_GT(o.errors, 500);
}

TEST(FuzzEngineReaders, TrainingDataLinesOnlyThrowPvmError) {
  auto d = pvm::testing::temp_dir("fuzz_lines");
  std::ofstream(d + "/a.png") << "x";  // parse_*_line only checks that images exist
  const json sft = {{"messages",
                     {{{"role", "system"}, {"content", "s"}},
                      {{"role", "user"}, {"content", "<image>What is it?"}},
                      {{"role", "assistant"}, {"content", "a cat"}},
                      {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "and?"}}}}},
                      {{"role", "assistant"}, {"content", "done"}}}},
                    {"images", {"a.png"}}};
  const json grpo = {{"prompt", "<image>How many?"}, {"images", {"a.png"}}, {"solution", 3}};
  ASSERT_NO_THROW(pvm::train::parse_sft_line(sft.dump(), "fuzz/sft.jsonl:1", d));
  ASSERT_NO_THROW(pvm::train::parse_grpo_line(grpo.dump(), "fuzz/grpo.jsonl:1", d));
  Rng r(8080);
  Outcomes os{"SFT lines"}, og{"GRPO lines"};
  for (int it = 0; it < 3000; ++it) {
    json a = sft, b = grpo;
    for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, a), mutate_json(r, b);
    std::string la = r.coin(20) ? mutate_bytes(r, sft.dump(), kJsonAlphabet) : a.dump();
    std::string lb = r.coin(20) ? mutate_bytes(r, grpo.dump(), kJsonAlphabet) : b.dump();
    os.run(la, [&] { pvm::train::parse_sft_line(la, "fuzz/sft.jsonl:1", d); }, "fuzz/sft.jsonl:1");
    og.run(lb, [&] { pvm::train::parse_grpo_line(lb, "fuzz/grpo.jsonl:1", d); }, "fuzz/grpo.jsonl:1");
  }
  os.report();
  og.report();
  EXPECT_GT(os.ok, 50);
  EXPECT_GT(og.ok, 50);
  fs::remove_all(d);
}

TEST(FuzzEngineReaders, PreprocessorConfigOnlyThrowsPvmError) {
  const json good = {{"size", {{"shortest_edge", 4096}, {"longest_edge", 1048576}}},
                     {"patch_size", 16},
                     {"temporal_patch_size", 2},
                     {"merge_size", 2},
                     {"image_mean", {0.5, 0.5, 0.5}},
                     {"image_std", {0.5, 0.5, 0.5}},
                     {"rescale_factor", 0.00392156862745098},
                     {"do_resize", true},
                     {"resample", 3}};
  ASSERT_NO_THROW(pvm::PreprocessorConfig::parse(good.dump(), "seed.json"));
  Rng r(1111);
  Outcomes o{"preprocessor_config.json"};
  for (int it = 0; it < 3000; ++it) {
    std::string text;
    if (r.coin(25)) {
      text = mutate_bytes(r, good.dump(), kJsonAlphabet);
    } else {
      json j = good;
      for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, j);
      text = j.dump();
    }
    o.run(text, [&] {
      auto c = pvm::PreprocessorConfig::parse(text, "fuzz/preprocessor_config.json");
      // An accepted config must size an image without trouble.
      (void)pvm::smart_resize(480, 640, c.factor(), c.min_pixels, c.max_pixels);
    }, "fuzz/preprocessor_config.json");
  }
  o.report();
  EXPECT_GT(o.ok, 100);
  EXPECT_GT(o.errors, 500);
}
