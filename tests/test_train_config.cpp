// Trainer configuration and data: parsing, validation messages, labels, bad lines, sampling.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "engine/base/error.h"
#include "engine/base/train_config.h"
#include "engine/train_data.h"
#include "tests/test_train_util.h"

using namespace pvm;
using namespace pvm::train;
using nlohmann::json;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "";
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(TrainConfig, DefaultsOverridesAndResolvedJson) {
  auto dir = pvm::testing::temp_dir("train_cfg");
  auto path = write_file(dir + "/run.json", R"({"model": "m", "data": "d.jsonl", "pvm": {"layers": [1, 2]}, "grpo": {"group_size": 4}})");
  auto c = load_train_config(path, {"lr=0.001", "grpo.temperature=0.7", "betas=[0.8,0.95]", "out=runs/x", "pvm.variant=mlp"});
  EXPECT_EQ(c.mode, "sft");
  EXPECT_DOUBLE_EQ(c.lr, 0.001);
  EXPECT_EQ(c.batch_size, 8);
  EXPECT_EQ(c.trainable, "pvm");
  EXPECT_EQ(c.schedule, "cosine");
  EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.1);
  EXPECT_EQ(c.grpo.group_size, 4);
  EXPECT_DOUBLE_EQ(c.grpo.temperature, 0.7);
  EXPECT_EQ(c.betas[0], 0.8);
  EXPECT_EQ(c.betas[1], 0.95);
  EXPECT_EQ(c.pvm.layers, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.pvm.variant, "mlp");
  EXPECT_EQ(c.out, "runs/x");  // --set values are taken as given
  // Paths in the file are relative to the file, and absolute in the resolved config.
  EXPECT_EQ(c.data, std::filesystem::absolute(dir + "/d.jsonl").lexically_normal().string());
  // The resolved JSON parses back to the same config.
  auto c2 = parse_train_config(c.to_json(), "resolved");
  EXPECT_EQ(c2.to_json(), c.to_json());
  // GRPO defaults the trainable set to the stage-2 one.
  auto g = load_train_config(path, {}, "grpo");
  EXPECT_EQ(g.mode, "grpo");
  EXPECT_EQ(g.trainable, "llm");
  // String values that are not JSON stay strings; nested objects are created.
  json j = json::object();
  apply_override(j, "a.b.c=hello world");
  apply_override(j, "a.b.d=3");
  EXPECT_EQ(j["a"]["b"]["c"], "hello world");
  EXPECT_EQ(j["a"]["b"]["d"], 3);
}

TEST(TrainConfig, ErrorsNameFileAndKey) {
  auto dir = pvm::testing::temp_dir("train_cfg_err");
  auto path = write_file(dir + "/run.json", R"({"model": "m", "data": "d.jsonl", "lrate": 1})");
  auto e = error_of([&] { load_train_config(path, {}); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("lrate: unknown key"), std::string::npos) << e;

  auto ok = write_file(dir + "/ok.json", R"({"model": "m", "data": "d.jsonl"})");
  e = error_of([&] { load_train_config(ok, {"lr=-1"}); });
  EXPECT_NE(e.find("lr: must be in (0"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"grpo.group_size=x"}); });
  EXPECT_NE(e.find("grpo.group_size: expected an integer"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"trainable=everything"}); });
  EXPECT_NE(e.find("trainable: must be one of"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"batch_size=6", "grad_accum=4"}); });
  EXPECT_NE(e.find("grad_accum"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"pvm.layers=[]"}); });
  EXPECT_NE(e.find("pvm.layers"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"dtype=bf16"}); });
  EXPECT_NE(e.find("dtype: bf16 training is only supported on CUDA"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"visual_lr_scale=-0.5"}); });
  EXPECT_NE(e.find("visual_lr_scale: must be in [0"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"noequals"}); });
  EXPECT_NE(e.find("--set noequals: expected key=value"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {}, "grpo"); });
  EXPECT_EQ(e, "");
  e = error_of([&] { load_train_config(ok, {"history_window=-3"}); });
  EXPECT_NE(e.find("history_window: out of range: must be >= 0"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"history_window=32"}, "grpo"); });
  EXPECT_NE(e.find("history_window: only SFT"), std::string::npos) << e;
  EXPECT_EQ(load_train_config(ok, {"history_window=32"}).history_window, 32);
  e = error_of([&] { load_train_config(ok, {"visual_restore=5"}); });
  EXPECT_NE(e.find("visual_restore: must be in [-4, 4]"), std::string::npos) << e;
  e = error_of([&] { load_train_config(ok, {"visual_restore=1"}, "grpo"); });
  EXPECT_NE(e.find("visual_restore: only SFT"), std::string::npos) << e;
  auto bad = write_file(dir + "/bad.json", "{\"model\": ");
  e = error_of([&] { load_train_config(bad, {}); });
  EXPECT_NE(e.find(bad + ": not valid JSON"), std::string::npos) << e;
  e = error_of([&] { load_train_config(dir + "/missing.json", {}); });
  EXPECT_NE(e.find("missing.json"), std::string::npos) << e;
}

TEST(TrainConfig, LearningRateSchedule) {
  TrainConfig c;
  c.lr = 1.0;
  c.warmup_ratio = 0.1;
  // HF get_cosine_schedule_with_warmup: warm-up ceil(0.1 * 100) = 10 steps, lr(step) = step / 10.
  EXPECT_EQ(c.warmup_for(100), 10);
  EXPECT_DOUBLE_EQ(c.lr_at(0, 100), 0.0);
  EXPECT_DOUBLE_EQ(c.lr_at(5, 100), 0.5);
  EXPECT_DOUBLE_EQ(c.lr_at(10, 100), 1.0);
  EXPECT_NEAR(c.lr_at(55, 100), 0.5, 1e-12);  // half-way through the cosine
  EXPECT_NEAR(c.lr_at(99, 100), 0.5 * (1 + std::cos(M_PI * 89.0 / 90.0)), 1e-12);
  c.min_lr_ratio = 0.1;
  EXPECT_NEAR(c.lr_at(100, 100), 0.1, 1e-12);
  c.schedule = "constant";
  EXPECT_DOUBLE_EQ(c.lr_at(50, 100), 1.0);
  c.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(c.lr_at(0, 100), 1.0);
}

TEST(TrainData, LabelsOnlyOnAssistantTokens) {
  auto f = pvm::testing::make_train_fixture("train_labels", 1);
  auto tok = Tokenizer::load(f.model + "/tokenizer.json");
  auto r = parse_sft_line(
      R"({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q1"}]},
          {"role": "assistant", "content": "A one"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "\n\nB"}],
          "images": ["img/red.png"]})",
      "x.jsonl:1", f.dir);
  ASSERT_EQ(r.images.size(), 1u);
  auto ex = tokenize_sft(r, tok, {4});
  ASSERT_EQ(ex.ids.size(), ex.labels.size());
  // The full sequence is exactly the chat template's encoding.
  std::vector<ChatMessage> msgs{ChatMessage::text("system", "sys"), {"user", {ChatPart::make_image(4), ChatPart::make_text("Q1")}},
                                ChatMessage::text("assistant", "A one"), ChatMessage::text("user", "Q2"),
                                ChatMessage::text("assistant", "\n\nB")};
  auto ref = encode_chat(tok, msgs, {false, false}).ids;
  ASSERT_EQ(std::vector<int64_t>(ref.begin(), ref.end()), ex.ids);
  // Labelled runs decode to the assistant contents, each with its <|im_end|>.
  std::vector<std::string> runs;
  std::vector<int32_t> cur;
  for (size_t i = 0; i < ex.ids.size(); ++i) {
    if (ex.labels[i] != kIgnoreIndex) {
      EXPECT_EQ(ex.labels[i], ex.ids[i]);
      cur.push_back((int32_t)ex.ids[i]);
    } else if (!cur.empty()) {
      runs.push_back(tok.decode(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) runs.push_back(tok.decode(cur));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], "A one<|im_end|>");
  EXPECT_EQ(runs[1], "\n\nB<|im_end|>");
  EXPECT_EQ(ex.n_label_tokens(), (int64_t)(5 + 1 + 3 + 1));
}

TEST(TrainData, BadLinesNameFileAndLine) {
  auto f = pvm::testing::make_train_fixture("train_badlines", 2);
  auto path = f.dir + "/mixed.jsonl";
  std::ofstream(path) << R"({"messages": [{"role": "user", "content": "<image>hi"}, {"role": "assistant", "content": "red"}], "images": ["img/red.png"]})"
                      << "\n"
                      << "{not json\n"
                      << R"({"messages": [{"role": "user", "content": "hi"}]})" << "\n"
                      << R"({"messages": [{"role": "user", "content": "<image>"}, {"role": "assistant", "content": "x"}], "images": ["img/none.png"]})"
                      << "\n"
                      << R"({"messages": [{"role": "user", "content": "<image><image>"}, {"role": "assistant", "content": "x"}], "images": ["img/red.png"]})"
                      << "\n\n"
                      << R"({"messages": [{"role": "assistant", "content": "fine"}]})" << "\n";
  std::vector<std::string> warnings;
  BadLinePolicy skip;
  skip.warn = [&](const std::string& m) { warnings.push_back(m); };
  auto recs = read_sft_jsonl(path, skip);
  EXPECT_EQ(recs.size(), 2u);
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_EQ(warnings[0].rfind(path + ":2: bad JSON", 0), 0u) << warnings[0];
  EXPECT_EQ(warnings[1].rfind(path + ":3: no assistant message", 0), 0u) << warnings[1];
  EXPECT_EQ(warnings[2].rfind(path + ":4: image not found", 0), 0u) << warnings[2];
  EXPECT_EQ(warnings[3].rfind(path + ":5: 2 image markers/parts but 1 images listed", 0), 0u) << warnings[3];
  EXPECT_EQ(recs[1].where, path + ":7");
  BadLinePolicy fatal;
  fatal.fatal = true;
  auto e = error_of([&] { read_sft_jsonl(path, fatal); });
  EXPECT_EQ(e.rfind(path + ":2: bad JSON", 0), 0u) << e;

  // Too long for max_length with the image beyond the cut: reported with its line.
  auto tok = Tokenizer::load(f.model + "/tokenizer.json");
  SftDatasetOptions o;
  o.max_length = 8;
  o.policy.fatal = true;
  o.preprocessor = PreprocessorConfig::load(f.model + "/preprocessor_config.json");
  e = error_of([&] { SftDataset(f.data, tok, o); });
  EXPECT_NE(e.find(f.data + ":1: "), std::string::npos) << e;
  EXPECT_NE(e.find("max_length 8"), std::string::npos) << e;

  // GRPO prompts.
  auto gp = f.dir + "/grpo.jsonl";
  std::ofstream(gp) << R"({"prompt": "<image>What is 2+2?", "images": ["img/red.png"], "solution": 4})" << "\n"
                    << R"({"prompt": "no solution"})" << "\n";
  warnings.clear();
  auto g = read_grpo_jsonl(gp, skip);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].solution, "4");
  EXPECT_EQ(g[0].prompt, "What is 2+2?");
  ASSERT_EQ(g[0].parts.size(), 2u);
  EXPECT_TRUE(g[0].parts[0].image);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind(gp + ":2: needs a \"solution\"", 0), 0u) << warnings[0];
  auto ids = tokenize_grpo_prompt(g[0], tok, {4}, "");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 300), 4);
  auto text = tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
  const std::string tail = "What is 2+2?<|im_end|>\n<|im_start|>assistant\n";
  ASSERT_GT(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail) << text;
  EXPECT_EQ(text.rfind("<|im_start|>user\n<|vision_start|>", 0), 0u) << text;
}

TEST(TrainData, SamplerIsDeterministicResumableAndGroupsLengths) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 40; ++i) lengths.push_back((i * 37) % 100);
  Sampler a(40, 4, 7, lengths, 2), b(40, 4, 7, lengths, 2);
  std::vector<std::vector<int64_t>> first;
  for (int i = 0; i < 25; ++i) first.push_back(a.next_batch());  // crosses into epoch 2
  for (int i = 0; i < 25; ++i) EXPECT_EQ(b.next_batch(), first[i]);
  // One epoch visits every sample once.
  std::set<int64_t> seen;
  for (int i = 0; i < 10; ++i) seen.insert(first[i].begin(), first[i].end());
  EXPECT_EQ(seen.size(), 40u);
  // Epochs are reshuffled.
  EXPECT_NE(std::vector<std::vector<int64_t>>(first.begin(), first.begin() + 10),
            std::vector<std::vector<int64_t>>(first.begin() + 10, first.begin() + 20));
  // Resume from a saved position continues identically.
  Sampler c(40, 4, 7, lengths, 2);
  for (int i = 0; i < 13; ++i) c.next_batch();
  auto st = c.state();
  Sampler d(40, 4, 7, lengths, 2);
  d.restore(st);
  for (int i = 13; i < 25; ++i) EXPECT_EQ(d.next_batch(), first[i]);
  // Length grouping: within a group of 2 batches, batches hold the longer / shorter halves.
  double spread_grouped = 0, spread_random = 0;
  Sampler plain(40, 4, 7);
  for (int i = 0; i < 10; ++i) {
    auto g = first[i], p = plain.next_batch();
    auto span = [&](const std::vector<int64_t>& v) {
      int64_t lo = 1000, hi = -1;
      for (auto x : v) lo = std::min(lo, lengths[x]), hi = std::max(hi, lengths[x]);
      return double(hi - lo);
    };
    spread_grouped += span(g);
    spread_random += span(p);
  }
  EXPECT_LT(spread_grouped, spread_random);
  EXPECT_THROW(d.restore(json{{"epoch", 0}}), pvm::Error);
}
