#include <gtest/gtest.h>

#include "engine/base/config.h"
#include "engine/base/error.h"

using namespace pvm;

static std::string err_of(const std::string& json) {
  try {
    parse_config(json, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, PresetParameterCountsMatchThePaper) {
  // 8,767,123,696 is Qwen3-VL-8B-Instruct's published size (PVM paper: 27.92M = 0.318% of it).
  EXPECT_EQ(parameter_counts(preset_config("qwen3-vl-8b"))["total"], 8767123696LL);
  auto c8 = preset_config("Qwen3-VL-8B-Instruct");
  c8.text.pvm_layers = {8, 16, 24};
  EXPECT_EQ(parameter_counts(c8)["pvm"], 27922179);
  auto c4 = preset_config("qwen3-vl-4b");
  c4.text.pvm_layers = {5, 11, 17};
  EXPECT_EQ(parameter_counts(c4)["pvm"], 22728963);
  EXPECT_EQ(c4.pvm_intermediate(), 1945);
  EXPECT_EQ(c8.pvm_kv_heads(), 1);
  // 2B/4B tie lm_head to the embedding: no separate lm_head parameters.
  EXPECT_EQ(parameter_counts(c4)["lm_head"], 0);
  EXPECT_EQ(parameter_counts(c8)["lm_head"], 151936LL * 4096);
  EXPECT_THROW(preset_config("qwen3-vl-13b"), Error);
}

TEST(Config, RoundTripsThroughJson) {
  auto c = preset_config("qwen3-vl-4b");
  c.text.pvm_layers = {5, 11, 17};
  auto back = parse_config(config_to_json(c), "x");
  EXPECT_EQ(expected_tensors(back).size(), expected_tensors(c).size());
  EXPECT_EQ(parameter_counts(back), parameter_counts(c));
  EXPECT_EQ(back.text.pvm_layers, c.text.pvm_layers);
  EXPECT_TRUE(back.tie_word_embeddings);
  EXPECT_EQ(back.vision.deepstack_visual_indexes, (std::vector<int64_t>{5, 11, 17}));
}

TEST(Config, ReadsHfLayoutWithRopeParameters) {
  // transformers main writes rope_parameters (with rope_theta) instead of rope_scaling.
  std::string j = R"({"model_type":"qwen3_vl","text_config":{"vocab_size":1000,"hidden_size":64,
    "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
    "rope_parameters":{"rope_type":"default","rope_theta":10000.0,"mrope_section":[4,2,2]},"eos_token_id":5},
    "vision_config":{"depth":2,"hidden_size":32,"intermediate_size":64,"num_heads":4,"out_hidden_size":64,
    "num_position_embeddings":64,"deepstack_visual_indexes":[0]},"image_token_id":10,"video_token_id":11,
    "vision_start_token_id":12,"vision_end_token_id":13})";
  auto c = parse_config(j, "x");
  EXPECT_EQ(c.text.rope_theta, 10000.0);
  EXPECT_EQ(c.text.mrope_section, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{5});
  EXPECT_EQ(c.image_token_id, 10);
}

TEST(Config, BadConfigsGiveOneLineErrorsNamingFileAndField) {
  EXPECT_NE(err_of("{not json").find("cfg.json: not valid JSON"), std::string::npos);
  EXPECT_NE(err_of("[]").find("JSON object"), std::string::npos);
  EXPECT_NE(err_of(R"({"model_type":"llama"})").find("model_type"), std::string::npos);
  EXPECT_NE(err_of(R"({"text_config":{},"vision_config":{}})").find("missing required field text_config.vocab_size"),
            std::string::npos);
  auto c = preset_config("qwen3-vl-2b");
  std::string good = config_to_json(c);
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    return s.replace(p, from.size(), to);
  };
  EXPECT_NE(err_of(replace("\"hidden_size\": 2048", "\"hidden_size\": \"big\"")).find("text_config.hidden_size"),
            std::string::npos);
  EXPECT_NE(err_of(replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 3")).find("num_key_value_heads"),
            std::string::npos);
  EXPECT_NE(err_of(replace("\"out_hidden_size\": 2048", "\"out_hidden_size\": 100")).find("out_hidden_size"),
            std::string::npos);
  EXPECT_NE(err_of(replace("\"image_token_id\": 151655", "\"image_token_id\": 999999")).find("outside the vocabulary"),
            std::string::npos);
  for (auto& e : {err_of("{not json"), err_of(replace("\"depth\": 24", "\"depth\": -1"))}) {
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(e.rfind("cfg.json: ", 0), 0u) << e;
  }
}

TEST(Config, PvmFieldsAreValidated) {
  auto c = preset_config("qwen3-vl-2b");
  c.text.pvm_layers = {5, 40};
  EXPECT_THROW(c.validate("x"), Error);
  c.text.pvm_layers = {5, 5};
  EXPECT_THROW(c.validate("x"), Error);
  c.text.pvm_layers = {5};
  c.text.pvm_hidden_size = 500;  // not a multiple of head_dim
  EXPECT_THROW(c.validate("x"), Error);
  c.text.pvm_hidden_size = 512;
  c.text.pvm_variant = "lstm";
  EXPECT_THROW(c.validate("x"), Error);
  c.text.pvm_variant = "mlp";
  EXPECT_NO_THROW(c.validate("x"));
}
