// `pvm eval --task scenes` end to end on a tiny random model: it runs, grades, and prints a
// well-formed report (the numbers of a random model are meaningless; the shape is what is checked).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/base/paths.h"
#include "engine/base/scenes.h"
#include "engine/loader.h"
#include "cli_util.h"
#include "engine/base/version.h"
#include "test_util.h"

namespace {

// GPT-2 byte <-> unicode table, the form byte-level BPE vocabularies are written in.
std::string byte_token(int b) {
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += char(cp);
    else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    return s;
  };
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return utf8(uint32_t(b));
  int n = 0;
  for (int x = 0; x < b; ++x)
    if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
  return utf8(uint32_t(256 + n));
}

// A byte-only tokenizer whose special tokens sit at tiny_config()'s ids.
void write_byte_tokenizer(const std::string& path) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  auto added = nlohmann::json::array();
  const std::vector<std::pair<int, std::string>> specials{{300, "<|image_pad|>"}, {301, "<|video_pad|>"}, {302, "<|vision_start|>"},
                                                          {303, "<|vision_end|>"}, {304, "<|endoftext|>"}, {305, "<|im_end|>"},
                                                          {306, "<|im_start|>"}};
  for (auto& [id, s] : specials)
    added.push_back({{"id", id}, {"content", s}, {"special", true}, {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                     {"single_word", false}});
  nlohmann::json j = {{"version", "1.0"},
                      {"added_tokens", added},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                      {"decoder", {{"type", "ByteLevel"}}},
                      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(path) << j.dump();
}

using pvm::testing::pvm_bin;
using pvm::testing::run_pvm;

}  // namespace

TEST(ScenesEval, RunsEndToEndOnATinyModelAndReports) {
  if (pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("eval_scenes");
  auto cfg = pvm::testing::tiny_config();
  auto m = pvm::make_random_model(cfg, 3, torch::kFloat, torch::kCPU);
  pvm::save_model(m, dir, torch::kFloat);
  write_byte_tokenizer(dir + "/tokenizer.json");
  const std::string out = dir + "/records.jsonl";
  auto r = run_pvm("eval --task scenes --model " + dir + " --count 2 --seed 4 --objects 4-6 --max-new-tokens 12 "
                   "--qa-per-scene 1 --qa-max-new-tokens 4 --json --quiet --out " + out + " --csv " + dir + "/pos.csv", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto rep = nlohmann::json::parse(r.out);
  EXPECT_EQ(rep["task"], "scenes");
  EXPECT_EQ(rep["count"], 2);
  // Held-out scenes of seed 4: the evaluator must see exactly those objects.
  int objects = 0;
  for (int i = 0; i < 2; ++i) objects += (int)pvm::scenes::generate(pvm::scenes::scene_seed(4, 1, i), [] {
                                            pvm::scenes::SceneOptions o;
                                            o.min_objects = 4, o.max_objects = 6;
                                            return o;
                                          }()).objects.size();
  EXPECT_EQ(rep["objects_total"], objects);
  EXPECT_EQ(rep["missing"].get<int>() + rep["objects_described"].get<int>(), objects);
  ASSERT_TRUE(rep["by_position"].is_array());
  EXPECT_GE(rep["by_position"].size(), 4u);
  EXPECT_LE(rep["by_position"].size(), 6u);
  EXPECT_EQ(rep["by_position"][0]["position"], 1);
  EXPECT_EQ(rep["by_position"][0]["objects"], 2);
  double acc = rep["accuracy"];
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  // Per-attribute rates add up to the attribute accuracy (3 attributes per object without textures
  // or digits), position by position and overall.
  for (auto& bp : rep["by_position"]) {
    auto& ba = bp["by_attribute"];
    ASSERT_TRUE(ba.contains("shape") && ba.contains("color") && ba.contains("size")) << bp.dump();
    EXPECT_FALSE(ba.contains("texture"));
    const double sum = (ba["shape"].get<double>() + ba["color"].get<double>() + ba["size"].get<double>()) * bp["objects"].get<double>();
    EXPECT_NEAR(sum, bp["attributes_correct"].get<double>(), 1e-9) << bp.dump();
  }
  {
    auto& ba = rep["by_attribute"];
    const double mean = (ba["shape"].get<double>() + ba["color"].get<double>() + ba["size"].get<double>()) / 3.0;
    EXPECT_NEAR(mean, acc, 1e-9);
    EXPECT_TRUE(rep["by_attribute_first3"].contains("shape"));
  }
  EXPECT_EQ(rep["qa"]["total"], 2);
  EXPECT_LE(rep["mean_generated_tokens"].get<double>(), 12.0);

  // --csv: one row per position, the same numbers as the JSON report.
  {
    std::ifstream csv(dir + "/pos.csv");
    std::string header, row;
    std::getline(csv, header);
    EXPECT_EQ(header, "position,objects,described,attributes_total,attributes_correct,accuracy,shape,color,size");
    size_t rows = 0;
    while (std::getline(csv, row)) {
      auto& bp = rep["by_position"][rows];
      std::vector<std::string> f;
      for (size_t a = 0, b; a <= row.size(); a = b + 1) {
        b = row.find(',', a);
        if (b == std::string::npos) b = row.size();
        f.push_back(row.substr(a, b - a));
      }
      ASSERT_EQ(f.size(), 9u) << row;
      EXPECT_EQ(f[0], std::to_string(bp["position"].get<int>())) << row;
      EXPECT_NEAR(std::stod(f[5]), bp["accuracy"].get<double>(), 1e-6) << row;
      EXPECT_NEAR(std::stod(f[6]), bp["by_attribute"]["shape"].get<double>(), 1e-6) << row;
      EXPECT_NEAR(std::stod(f[8]), bp["by_attribute"]["size"].get<double>(), 1e-6) << row;
      ++rows;
    }
    EXPECT_EQ(rows, rep["by_position"].size());
  }

  // One record per scene with the generated text and its grade.
  std::ifstream in(out);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto rec = nlohmann::json::parse(line);
    EXPECT_TRUE(rec["generated"].is_string());
    EXPECT_EQ(rec["grade"]["objects"].size(), rec["objects"].get<size_t>());
    EXPECT_EQ(rec["qa"].size(), 1u);
    ++n;
  }
  EXPECT_EQ(n, 2);

  // The text report has the table by position.
  r = run_pvm("eval --task scenes --model " + dir + " --count 1 --objects 4 --max-new-tokens 4 --qa-per-scene 0 --quiet", dir);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("position"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("attribute accuracy"), std::string::npos) << r.out;

  // Bad options are one-line errors and a non-zero exit.
  r = run_pvm("eval --task scenes --model " + dir + " --objects 0-3", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--objects"), std::string::npos) << r.err;
  r = run_pvm("eval --task scenes --model " + dir + " --size 32", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--size"), std::string::npos) << r.err;
  // --size: the scenes drawn at another resolution (more pixels, more visual tokens where the
  // model's preprocessor allows them)
  r = run_pvm("eval --task scenes --model " + dir + " --size 128 --count 1 --objects 4 --max-new-tokens 4 --qa-per-scene 0 --json --quiet", dir);
  EXPECT_EQ(r.rc, 0) << r.err;
  std::filesystem::remove_all(dir);
}

// `pvm eval --task scenes --vismem`: the third arm of the accuracy-by-position comparison. With the
// adapter loaded but off, the numbers are the baseline's; with memories forced after separators the
// report counts them (per scene and in total), the texts stay clean of VisMem's ids, and the time per
// token is reported for every arm.
TEST(ScenesEval, VismemArmCountsInvocationsAndOffEqualsTheBaseline) {
  if (pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  if (pvm::default_model_dir().empty()) GTEST_SKIP() << "assets/default-model not present";
  auto dir = pvm::testing::temp_dir("eval_scenes_vismem");
  const std::string ad = dir + "/vm";
  auto r = run_pvm("init-vismem --out " + ad + " --query-len 2 --short-len 2 --long-len 3 --lora-rank 4 --qc-heads 4 --quiet", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string common = "eval --task scenes --count 2 --seed 3 --objects 5-6 --max-new-tokens 80 --qa-per-scene 0 --threads 1 --json --quiet";
  r = run_pvm(common, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto base = nlohmann::json::parse(r.out);
  r = run_pvm(common + " --vismem " + ad + " --no-vismem", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto off = nlohmann::json::parse(r.out);
  EXPECT_EQ(off["by_position"], base["by_position"]);
  EXPECT_EQ(off["mean_generated_tokens"], base["mean_generated_tokens"]);
  EXPECT_EQ(off["invocations"], 0);
  EXPECT_GT(base["decode_ms_per_token"].get<double>(), 0.0);

  const std::string recs = dir + "/vm.jsonl";
  r = run_pvm(common + " --vismem " + ad + " --vismem-invoke separators --vismem-p 1 --vismem-max 2 --out " + recs, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto vm = nlohmann::json::parse(r.out);
  EXPECT_EQ(vm["vismem"], true);
  EXPECT_EQ(vm["vismem_invoke"], "separators");
  EXPECT_DOUBLE_EQ(vm["vismem_long_fraction"].get<double>(), 0.5);
  const long long inv = vm["invocations"];
  EXPECT_GE(inv, 1);
  EXPECT_LE(inv, 4);  // at most 2 per description
  EXPECT_DOUBLE_EQ(vm["invocations_per_description"].get<double>(), double(inv) / 2.0);
  long long per_scene = 0;
  std::ifstream in(recs);
  for (std::string line; std::getline(in, line);) {
    auto rec = nlohmann::json::parse(line);
    per_scene += rec["invocations"].get<long long>();
    EXPECT_EQ(rec["generated"].get<std::string>().find("<m"), std::string::npos) << rec["generated"];
  }
  EXPECT_EQ(per_scene, inv);

  r = run_pvm(common + " --vismem " + ad + " --vismem-p 2", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--vismem-p"), std::string::npos) << r.err;
  r = run_pvm(common + " --vismem " + ad + " --vismem-invoke separators --vismem-long 1.5", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--vismem-long"), std::string::npos) << r.err;
  r = run_pvm(common + " --vismem-invoke separators", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("need --vismem"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

// `pvm eval --task scenes --visual-scale S` (the dilution intervention): S = 1 is the baseline
// exactly and is reported; a large S changes the descriptions; bad values and VisMem together with
// it are one error line naming the option, before the model loads.
TEST(ScenesEval, VisualScaleOneIsTheBaselineAndBadValuesAreRefused) {
  if (pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  if (pvm::default_model_dir().empty()) GTEST_SKIP() << "assets/default-model not present";
  auto dir = pvm::testing::temp_dir("eval_scenes_vscale");
  const std::string common = "eval --task scenes --count 2 --seed 3 --objects 5-6 --max-new-tokens 80 --qa-per-scene 0 --threads 1 --json --quiet --no-pvm";
  auto r = run_pvm(common, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto base = nlohmann::json::parse(r.out);
  r = run_pvm(common + " --visual-scale 1", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto one = nlohmann::json::parse(r.out);
  EXPECT_EQ(one["by_position"], base["by_position"]);
  EXPECT_DOUBLE_EQ(one["visual_attention_scale"].get<double>(), 1.0);
  const std::string recs = dir + "/s8.jsonl", recs1 = dir + "/s1.jsonl";
  ASSERT_EQ(run_pvm(common + " --out " + recs1, dir).rc, 0);
  r = run_pvm(common + " --visual-scale 8 --out " + recs, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["visual_attention_scale"].get<double>(), 8.0);
  auto texts = [](const std::string& path) {  // the descriptions (records also hold timings)
    std::vector<std::string> t;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) t.push_back(nlohmann::json::parse(line)["generated"]);
    return t;
  };
  ASSERT_EQ(texts(recs).size(), 2u);
  EXPECT_NE(texts(recs), texts(recs1));  // the intervention acts
  for (const std::string bad : {"0", "-1", "x", "1e9"}) {
    r = run_pvm(common + " --visual-scale " + bad, dir);
    EXPECT_EQ(r.rc, 1) << bad;
    EXPECT_NE(r.err.find("--visual-scale"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = run_pvm(common + " --visual-restore 1", dir);  // the length-matched form: reported, and it acts
  ASSERT_EQ(r.rc, 0) << r.err;
  auto restored = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(restored["visual_attention_restore"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(base["visual_attention_restore"].get<double>(), 0.0);
  for (const std::string bad : {"-5", "5", "x"}) {
    r = run_pvm(common + " --visual-restore " + bad, dir);
    EXPECT_EQ(r.rc, 1) << bad;
    EXPECT_NE(r.err.find("--visual-restore"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = run_pvm(common + " --visual-scale 2 --vismem " + pvm::source_dir() + "/assets/default-vismem", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("exclude"), std::string::npos) << r.err;
  // the answer-history window: reported, and it acts on descriptions longer than the window
  const std::string recs_w = dir + "/w4.jsonl";
  r = run_pvm(common + " --history-window 4 --out " + recs_w, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["history_window"].get<int64_t>(), 4);
  EXPECT_EQ(base["history_window"].get<int64_t>(), 0);
  EXPECT_NE(texts(recs_w), texts(recs1));
  for (const std::string bad : {"-1", "x"}) {
    r = run_pvm(common + " --history-window " + bad, dir);
    EXPECT_EQ(r.rc, 1) << bad;
    EXPECT_NE(r.err.find("--history-window"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = run_pvm(common + " --history-window 8 --vismem " + pvm::source_dir() + "/assets/default-vismem", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("exclude"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}
