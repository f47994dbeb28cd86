// Issue 21, classes 1 and 8: every config.json field is validated (type, range, consistency, upper
// bounds) before any arithmetic or allocation; bad input is a one-line pvm::Error naming the file and
// the field. Table-driven bad configs, real configs that must still load, non-regular files, and a
// structured fuzz test (field deletions, type swaps, extreme numbers, truncation) with a fixed seed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/base/config.h"
#include "engine/base/error.h"

using namespace pvm;
using nlohmann::json;

namespace {

json base_json() { return json::parse(config_to_json(preset_config("qwen3-vl-2b"))); }

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "dir/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Case {
  const char* pointer;  // JSON pointer into the config; value "DELETE" erases the field
  json value;
  const char* must_name;  // substring the message must contain (the field)
};

}  // namespace

TEST(ConfigRobust, BadFieldsGiveOneLineErrorsNamingFileAndField) {
  const json DEL = "DELETE";
  const std::vector<Case> cases = {
      // arithmetic before validation (SIGFPE before the fix)
      {"/text_config/num_attention_heads", 0, "num_attention_heads"},
      {"/text_config/num_attention_heads", -4, "num_attention_heads"},
      {"/text_config/num_key_value_heads", 0, "num_key_value_heads"},
      {"/text_config/num_key_value_heads", 3, "num_key_value_heads"},
      {"/text_config/num_key_value_heads", 64, "num_key_value_heads"},
      {"/text_config/head_dim", 0, "head_dim"},
      {"/text_config/head_dim", 7, "head_dim"},
      {"/vision_config/num_heads", 0, "num_heads"},
      {"/vision_config/num_heads", 3, "num_heads"},
      {"/vision_config/spatial_merge_size", 0, "spatial_merge_size"},
      {"/vision_config/patch_size", 0, "patch_size"},
      {"/vision_config/num_position_embeddings", 0, "num_position_embeddings"},
      {"/vision_config/num_position_embeddings", 2305, "num_position_embeddings"},
      // runaway sizes
      {"/text_config/num_hidden_layers", 1000000000, "num_hidden_layers"},
      {"/text_config/hidden_size", 1000000000, "hidden_size"},
      {"/text_config/hidden_size", 9223372036854775807LL, "hidden_size"},
      {"/text_config/vocab_size", 4000000000LL, "vocab_size"},
      {"/text_config/intermediate_size", 100000000, "intermediate_size"},
      {"/text_config/num_attention_heads", 1000000, "num_attention_heads"},
      {"/text_config/max_position_embeddings", 1LL << 40, "max_position_embeddings"},
      {"/text_config/max_position_embeddings", 0, "max_position_embeddings"},
      {"/vision_config/depth", 1000000000, "depth"},
      {"/vision_config/hidden_size", 1LL << 40, "hidden_size"},
      {"/vision_config/intermediate_size", -1, "intermediate_size"},
      {"/vision_config/num_position_embeddings", 1LL << 62, "num_position_embeddings"},
      {"/vision_config/in_channels", 100000, "in_channels"},
      {"/vision_config/temporal_patch_size", 0, "temporal_patch_size"},
      {"/text_config/pvm_hidden_size", 1LL << 40, "pvm_hidden_size"},
      // wrong types: never a silent default
      {"/text_config/hidden_size", nullptr, "text_config.hidden_size"},
      {"/text_config/num_hidden_layers", nullptr, "text_config.num_hidden_layers"},
      {"/text_config/num_key_value_heads", nullptr, "num_key_value_heads"},
      {"/text_config/head_dim", nullptr, "head_dim"},
      {"/vision_config/depth", nullptr, "vision_config.depth"},
      {"/vision_config/patch_size", nullptr, "patch_size"},
      {"/image_token_id", nullptr, "image_token_id"},
      {"/text_config/hidden_size", "2048", "text_config.hidden_size"},
      {"/text_config/hidden_size", 2048.5, "text_config.hidden_size"},
      {"/text_config/hidden_size", 2048.0, "text_config.hidden_size"},
      {"/text_config/hidden_size", 1e300, "text_config.hidden_size"},
      {"/text_config/hidden_size", true, "text_config.hidden_size"},
      {"/text_config/hidden_size", json::array({2048}), "text_config.hidden_size"},
      {"/text_config/hidden_size", 18446744073709551615ULL, "text_config.hidden_size"},
      {"/text_config/rms_norm_eps", "1e-6", "rms_norm_eps"},
      {"/text_config/rms_norm_eps", nullptr, "rms_norm_eps"},
      {"/text_config/rms_norm_eps", true, "rms_norm_eps"},
      {"/text_config/rms_norm_eps", 0, "rms_norm_eps"},
      {"/text_config/rms_norm_eps", 5.0, "rms_norm_eps"},
      {"/text_config/rope_theta", -1.0, "rope_theta"},
      {"/text_config/rope_theta", 1e300, "rope_theta"},
      {"/text_config/rope_theta", nullptr, "rope_theta"},
      {"/text_config/attention_bias", nullptr, "attention_bias"},
      {"/text_config/attention_bias", 0, "attention_bias"},
      {"/tie_word_embeddings", "yes", "tie_word_embeddings"},
      {"/tie_word_embeddings", nullptr, "tie_word_embeddings"},
      {"/text_config/hidden_act", nullptr, "hidden_act"},
      {"/text_config/hidden_act", 3, "hidden_act"},
      {"/vision_config/hidden_act", "relu", "hidden_act"},
      {"/model_type", nullptr, "model_type"},
      {"/text_config/rope_scaling", "yarn", "rope_scaling"},
      {"/text_config/rope_scaling/mrope_section", nullptr, "mrope_section"},
      {"/text_config/rope_scaling/mrope_section", json::array({24, 20}), "mrope_section"},
      {"/text_config/rope_scaling/mrope_section", json::array({24, 20, 21}), "mrope_section"},
      {"/text_config/rope_scaling/mrope_section", json::array({64, -20, 20}), "mrope_section"},
      {"/text_config/rope_scaling/mrope_section", json::array({24, "20", 20}), "mrope_section"},
      {"/text_config/rope_scaling/mrope_section", json::array({9223372036854775807LL, 9223372036854775807LL, 2}),
       "mrope_section"},
      // deepstack / pvm indexes
      {"/vision_config/deepstack_visual_indexes", json::array({5, 11, 24}), "deepstack_visual_indexes"},
      {"/vision_config/deepstack_visual_indexes", json::array({-1}), "deepstack_visual_indexes"},
      {"/vision_config/deepstack_visual_indexes", nullptr, "deepstack_visual_indexes"},
      {"/vision_config/deepstack_visual_indexes", json::array({1.5}), "deepstack_visual_indexes"},
      {"/vision_config/deepstack_visual_indexes", "5,11", "deepstack_visual_indexes"},
      {"/text_config/pvm_layers", json::array({5, 28}), "pvm_layers"},
      {"/text_config/pvm_layers", json::array({5, 5}), "pvm_layers"},
      {"/text_config/pvm_layers", nullptr, "pvm_layers"},
      {"/text_config/pvm_hidden_size", 0, "pvm_hidden_size"},
      {"/text_config/pvm_hidden_size", nullptr, "pvm_hidden_size"},
      {"/text_config/pvm_source", 1, "pvm_source"},
      // token ids
      {"/image_token_id", 151936, "image_token_id"},
      {"/video_token_id", -1, "video_token_id"},
      {"/vision_start_token_id", "151652", "vision_start_token_id"},
      {"/vision_end_token_id", 1e20, "vision_end_token_id"},
      {"/eos_token_id", json::array({151645, 999999}), "eos_token_id"},
      {"/eos_token_id", nullptr, "eos_token_id"},
      {"/pad_token_id", 999999, "pad_token_id"},
      {"/text_config/bos_token_id", -5, "bos_token_id"},
      // consistency
      {"/vision_config/out_hidden_size", 100, "out_hidden_size"},
      {"/vision_config/out_hidden_size", nullptr, "out_hidden_size"},
      // required fields / objects
      {"/text_config/vocab_size", DEL, "text_config.vocab_size"},
      {"/vision_config/num_heads", DEL, "vision_config.num_heads"},
      {"/text_config", nullptr, "text_config"},
      {"/vision_config", json::array(), "vision_config"},
  };
  for (const auto& c : cases) {
    json j = base_json();
    j["text_config"]["pvm_layers"] = {5, 11};  // so the PVM fields are in play
    json::json_pointer p(c.pointer);
    if (c.value == DEL)
      j.at(p.parent_pointer()).erase(p.back());
    else
      j[p] = c.value;
    std::string e = error_of(j.dump());
    SCOPED_TRACE(std::string(c.pointer) + " = " + c.value.dump());
    ASSERT_FALSE(e.empty()) << "accepted";
    EXPECT_EQ(e.rfind("dir/config.json: ", 0), 0u) << e;
    EXPECT_NE(e.find(c.must_name), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_LT(e.size(), 400u) << e;
  }
}

TEST(ConfigRobust, TotalSizeIsBoundedEvenWhenEachFieldIsInRange) {
  json j = base_json();
  j["text_config"]["num_hidden_layers"] = 1024;  // each within its bound,
  j["text_config"]["intermediate_size"] = 262144;  // ~1.6e12 parameters together
  std::string e = error_of(j.dump());
  EXPECT_EQ(e.rfind("dir/config.json: ", 0), 0u) << e;
  EXPECT_NE(e.find("parameters"), std::string::npos) << e;
}

TEST(ConfigRobust, RealConfigsStillLoad) {
  for (auto name : {"qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b", "qwen3-vl-tiny"}) {
    auto c = preset_config(name);
    EXPECT_NO_THROW(parse_config(config_to_json(c), name)) << name;
    c.text.pvm_layers = {1};
    EXPECT_NO_THROW(parse_config(config_to_json(c), name)) << name;
  }
  // Qwen3-VL-32B-Instruct's shape (config.json as released), written the HF way.
  json j = base_json();
  auto& t = j["text_config"];
  t["hidden_size"] = 5120, t["intermediate_size"] = 25600, t["num_hidden_layers"] = 64;
  t["num_attention_heads"] = 64, t["num_key_value_heads"] = 8;
  t["pad_token_id"] = nullptr;  // HF's "not set"
  j["tie_word_embeddings"] = false;
  auto& v = j["vision_config"];
  v["depth"] = 27, v["hidden_size"] = 1152, v["intermediate_size"] = 4304, v["num_heads"] = 16;
  v["out_hidden_size"] = 5120, v["deepstack_visual_indexes"] = {8, 16, 24};
  auto c = parse_config(j.dump(), "32b");
  EXPECT_GT(parameter_counts(c)["total"], 33'000'000'000LL);
  // head_dim absent: derived from hidden_size / num_attention_heads
  t.erase("head_dim");
  t["hidden_size"] = 4096, t["num_attention_heads"] = 32, v["out_hidden_size"] = 4096;
  EXPECT_EQ(parse_config(j.dump(), "8b").text.head_dim, 128);
  t["num_attention_heads"] = 48;  // 4096 % 48 != 0 and no head_dim
  EXPECT_NE(error_of(j.dump()).find("num_attention_heads"), std::string::npos);
}

TEST(ConfigRobust, NonRegularFilesAreErrorsNotHangs) {
  namespace fs = std::filesystem;
  fs::path d = fs::temp_directory_path() / ("pvm_cfg_robust_" + std::to_string(::getpid()));
  fs::create_directories(d);
  auto expect_error = [](const std::string& path, const char* what) {
    auto t0 = std::chrono::steady_clock::now();
    try {
      load_config(path);
      ADD_FAILURE() << path << " loaded";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
      EXPECT_NE(m.find(what), std::string::npos) << m;
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  };
  std::string fifo = (d / "fifo.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error(fifo, "not a regular file");
  expect_error(d.string(), "");  // a directory
  expect_error("/dev/zero", "not a regular file");
  expect_error((d / "absent.json").string(), "cannot open");
  std::string big = (d / "big.json").string();
  {
    std::ofstream f(big);
    f << std::string(17 << 20, ' ');
  }
  expect_error(big, "bytes");
  fs::remove_all(d);
}

// Structured fuzzing: mutate a valid config.json (delete fields, swap types, extreme numbers,
// truncate) a few hundred times with a fixed seed. Loading must succeed or throw a one-line
// pvm::Error naming the file; a config that loads must stay within the size bound.
TEST(ConfigRobust, FuzzMutatedConfigsLoadOrFailCleanly) {
  std::mt19937_64 rng(21);
  json seed = base_json();
  seed["text_config"]["pvm_layers"] = {5, 11};
  const std::vector<json> extremes = {nullptr, 0, -1, 1, 2, 3, 7, 1LL << 31, 1LL << 40, 9223372036854775807LL,
                                      -9223372036854775807LL - 1, 18446744073709551615ULL, 0.5, 2.0, 1e300, -1e-300,
                                      "", "64", true, false, json::array(), json::array({1, 2, 3}), json::object()};
  // every leaf pointer of the seed
  std::vector<json::json_pointer> leaves;
  const json flat = seed.flatten();
  for (auto it = flat.begin(); it != flat.end(); ++it) leaves.emplace_back(it.key());
  int ok = 0, rejected = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 600; ++iter) {
    json j = seed;
    int n = 1 + int(rng() % 3);
    for (int m = 0; m < n; ++m) {
      auto p = leaves[rng() % leaves.size()];
      if (!j.contains(p)) continue;
      switch (rng() % 4) {
        case 0:  // delete the field (or its enclosing object)
          if (rng() % 4 == 0 && !p.parent_pointer().empty())
            p = p.parent_pointer();
          if (!p.empty() && j.contains(p.parent_pointer()) && j.at(p.parent_pointer()).is_object())
            j.at(p.parent_pointer()).erase(p.back());
          break;
        case 1:
        case 2:
          j[p] = extremes[rng() % extremes.size()];
          break;
        default:  // a plausible but random number
          j[p] = int64_t(rng() % 200000) - 100;
      }
    }
    std::string text = j.dump();
    if (rng() % 8 == 0) text.resize(rng() % (text.size() + 1));  // truncation
    try {
      auto c = parse_config(text, "fuzz/config.json");
      auto total = parameter_counts(c)["total"];
      EXPECT_GT(total, 0);
      EXPECT_LE(total, 200'000'000'000LL) << text;
      ++ok;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(m.rfind("fuzz/config.json: ", 0), 0u) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      ++rejected;
    }
  }
  EXPECT_GT(ok, 10);
  EXPECT_GT(rejected, 100);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}
