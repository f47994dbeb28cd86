// Issue 21, classes 2-8 on the engine and the CLI: NaN weights and gates, adapters of another
// type, inconsistent trainer states, the run lock and stale checkpoint temp folders, one load-time
// policy for missing and corrupt training images (and eval images), the image-size check in the
// decoder, stdout write errors and cleanup after a failed `pvm scenes`; integer options out of
// range, nulls in the train config, files of a future format, a run folder moved while training,
// empty assistant turns, and FIFOs, devices and folders where a file is expected.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/config.h"
#include "engine/base/tokenizer.h"
#include "engine/eval.h"
#include "engine/image.h"
#include "engine/loader.h"
#include "engine/pvm.h"
#include "engine/train.h"
#include "engine/train_data.h"
#include "tests/cli_util.h"
#include "tests/test_train_util.h"

using namespace pvm;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST(Reliability, NonFiniteWeightsAreALoadErrorNamingFileAndTensor) {
  auto dir = pvm::testing::temp_dir("rel_nan_weights");
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    auto m = make_random_model(pvm::testing::tiny_config(), 1, torch::kFloat, torch::kCPU);
    {
      torch::NoGradGuard ng;
      m->named_parameters(true)["model.language_model.norm.weight"].view(-1)[3] = bad;
    }
    fs::remove_all(dir);
    save_model(m, dir, torch::kFloat);
    LoadOptions lo;
    std::string msg = error_of([&] { load_model(dir, lo); });
    EXPECT_TRUE(contains(msg, dir + "/model.safetensors: tensor model.language_model.norm.weight has 1 non-finite"))
        << msg;
  }
  fs::remove_all(dir);
}

TEST(Reliability, AdaptersWithNanGatesOrOfAnotherTypeDoNotLoad) {
  auto adir = pvm::testing::temp_dir("rel_adapter");
  auto m = make_random_model(pvm::testing::tiny_config(), 1, torch::kFloat, torch::kCPU);
  pvm::testing::attach_tiny_pvm(*m, {1, 2}, 0.5);
  {
    torch::NoGradGuard ng;
    m->model->language_model->layer_list[2]->pvm_block->gate_alpha.fill_(std::nan(""));
  }
  save_pvm_adapter(*m, adir);
  auto g = make_random_model(pvm::testing::tiny_config(), 2, torch::kFloat, torch::kCPU);
  std::string msg = error_of([&] { load_pvm_adapter(*g, adir); });
  EXPECT_TRUE(contains(msg, adir + "/adapter.safetensors: tensor ")) << msg;
  EXPECT_TRUE(contains(msg, "layers.2.pvm_block.gate_alpha has 1 non-finite")) << msg;
  EXPECT_FALSE(g->config().has_pvm());  // nothing attached

  // A finite adapter of another type.
  {
    torch::NoGradGuard ng;
    m->model->language_model->layer_list[2]->pvm_block->gate_alpha.fill_(0.5);
  }
  save_pvm_adapter(*m, adir);
  EXPECT_NO_THROW(load_pvm_adapter(*g, adir));
  const std::string cfg = adir + "/adapter_config.json";
  json j = json::parse(pvm::read_file_to_string(cfg));
  for (auto [key, value, needle] : std::vector<std::tuple<std::string, json, std::string>>{
           {"adapter_type", "lora", "not a PVM adapter"},
           {"adapter_type", 7, "not a PVM adapter"},
           {"peft_type", "LORA", "PEFT \"LORA\" adapter"}}) {
    json k = j;
    k[key] = value;
    std::ofstream(cfg, std::ios::trunc) << k.dump();
    auto h = make_random_model(pvm::testing::tiny_config(), 2, torch::kFloat, torch::kCPU);
    msg = error_of([&] { load_pvm_adapter(*h, adir); });
    EXPECT_EQ(msg.rfind(cfg + ": ", 0), 0u) << msg;
    EXPECT_TRUE(contains(msg, needle)) << msg;
    EXPECT_FALSE(h->config().has_pvm());
  }
  // Errors about the adapter as a whole name the path given, not its parent folder.
  auto h = make_random_model(pvm::testing::tiny_config(), 2, torch::kFloat, torch::kCPU);
  msg = error_of([&] { load_pvm_adapter(*h, adir + "/nope"); });
  EXPECT_EQ(msg.rfind(adir + "/nope: no such PVM adapter", 0), 0u) << msg;
  auto empty = adir + "/empty";
  fs::create_directories(empty);
  msg = error_of([&] { load_pvm_adapter(*h, empty); });
  EXPECT_EQ(msg, empty + ": is not a PVM adapter folder: it has no adapter_config.json");
  std::ofstream(empty + "/weights.safetensors") << "x";
  msg = error_of([&] { load_pvm_adapter(*h, empty + "/weights.safetensors"); });
  EXPECT_EQ(msg.rfind(empty + "/weights.safetensors: is not a PVM adapter", 0), 0u) << msg;
  fs::remove_all(adir);
}

namespace {

// The fixture's SFT data set loaded with a 256-token limit; the data policy's warnings collected
// (fatal: the first bad sample throws instead).
train::SftDataset load_sft_collecting(const pvm::testing::TrainFixture& f, std::vector<std::string>& warnings,
                                      bool fatal = false) {
  auto tok = Tokenizer::load(f.model + "/tokenizer.json");
  train::SftDatasetOptions o;
  o.preprocessor = PreprocessorConfig::load(f.model + "/preprocessor_config.json");
  o.max_length = 256;
  o.policy.warn = [&warnings](const std::string& m) { warnings.push_back(m); };
  o.policy.fatal = fatal;
  return train::SftDataset(f.data, tok, o);
}
}  // namespace

TEST(Reliability, ResumeChecksTheStateTheLockAndCleansStaleTemps) {
  auto f = pvm::testing::make_train_fixture("rel_resume", 8);
  auto cfg = pvm::testing::train_config_json(f, f.dir + "/run");
  cfg["steps"] = 4;
  cfg["batch_size"] = 2;
  const std::string run = f.dir + "/run";
  ASSERT_EQ(pvm::testing::run_train_quiet(cfg, 2), 0);
  const std::string sp = run + "/checkpoints/step-000002/trainer_state.json";
  const json good = json::parse(pvm::read_file_to_string(sp));
  // Inconsistent states are refused, naming the file, before anything is applied.
  const std::vector<std::pair<std::function<void(json&)>, std::string>> bad{
      {[](json& s) { s["step"] = 999; }, "step 999 is beyond the 4 steps"},
      {[](json& s) { s["step"] = "2"; }, "\"step\" must be a non-negative integer"},
      {[](json& s) { s["step"] = -1; }, "\"step\" must be a non-negative integer"},
      {[](json& s) { s.erase("step"); }, "missing \"step\""},
      {[](json& s) { s["total_steps"] = 8; }, "total_steps 8 differs"},
      {[](json& s) { s["optimizer_steps"] = 3; }, "optimizer_steps 3 exceeds step 2"},
      {[](json& s) { s.erase("objective"); }, "missing \"objective\""},
      {[](json& s) { s["trainable"] = json::array({"x"}); }, "trainable tensors"},
  };
  for (auto& [edit, needle] : bad) {
    json s = good;
    edit(s);
    std::ofstream(sp, std::ios::trunc) << s.dump();
    std::string msg = error_of([&] { pvm::testing::run_train_quiet(cfg, -1, run); });
    EXPECT_EQ(msg.rfind(sp + ": ", 0), 0u) << msg;
    EXPECT_TRUE(contains(msg, needle)) << needle << " / " << msg;
  }
  std::ofstream(sp, std::ios::trunc) << good.dump(2);

  // A second writer on a live run is refused (the lock of another trainer, here held by us).
  {
    DirLock live(run, "training run");
    std::string msg = error_of([&] { pvm::testing::run_train_quiet(cfg, -1, run); });
    EXPECT_TRUE(contains(msg, "in use by pid " + std::to_string(::getpid()))) << msg;
  }
  // What a kill -9 during a save leaves behind goes at the next start.
  fs::create_directories(run + "/checkpoints/.tmp-step-000003-99999");
  std::ofstream(run + "/checkpoints/.tmp-step-000003-99999/optimizer.safetensors") << "partial";
  std::ofstream(run + "/status.json.tmp.99999.0") << "partial";
  ASSERT_EQ(pvm::testing::run_train_quiet(cfg, -1, run), 0);
  EXPECT_FALSE(fs::exists(run + "/checkpoints/.tmp-step-000003-99999"));
  EXPECT_FALSE(fs::exists(run + "/status.json.tmp.99999.0"));
  EXPECT_TRUE(fs::exists(run + "/final/model.safetensors"));
  EXPECT_EQ(pvm::read_file_to_string(run + "/run.lock"), "");  // released at the end
  fs::remove_all(f.dir);
}

TEST(Reliability, MissingAndCorruptTrainingImagesShareOnePolicyAtLoad) {
  auto f = pvm::testing::make_train_fixture("rel_data", 6);
  // A corrupt image (a truncated PNG: the header is fine, the pixels are not) and a missing one.
  auto png = pvm::read_file_to_string(f.dir + "/img/red.png");
  std::ofstream(f.dir + "/img/broken.png", std::ios::binary) << png.substr(0, png.size() / 2);
  pvm::testing::write_solid_png(f.dir + "/img/thin.png", 1, 2, 3, 1, 400);  // aspect ratio 400
  {
    std::ofstream out(f.data, std::ios::app);
    for (auto img : {"img/broken.png", "img/absent.png", "img/thin.png"})
      out << json{{"messages", {{{"role", "user"}, {"content", "<image>What colour is it?"}}, {{"role", "assistant"}, {"content", "red"}}}},
                  {"images", {img}}}
                 .dump()
          << "\n";
  }
  std::vector<std::string> warnings;
  train::SftDataset ds = load_sft_collecting(f, warnings);
  EXPECT_EQ(ds.size(), 6);
  EXPECT_EQ(ds.skipped(), 3);
  ASSERT_EQ(warnings.size(), 4u);  // three samples and the summary
  EXPECT_TRUE(contains(warnings[0], "absent.png")) << warnings[0];  // missing: found while parsing the line
  EXPECT_TRUE(contains(warnings[1], "broken.png")) << warnings[1];
  EXPECT_TRUE(contains(warnings[2], "thin.png") && contains(warnings[2], "aspect ratio")) << warnings[2];
  EXPECT_TRUE(contains(warnings[3], "skipped 3 of 9 samples")) << warnings[3];
  // Every sample left loads (nothing fails later, when its batch comes up).
  for (int64_t i = 0; i < ds.size(); ++i) EXPECT_NO_THROW(ds.load(i));
  // fatal: the first bad sample stops the load, naming its line and file.
  std::string msg = error_of([&] { load_sft_collecting(f, warnings, /*fatal=*/true); });
  EXPECT_TRUE(contains(msg, f.data + ":8") && contains(msg, "absent.png")) << msg;
  fs::remove_all(f.dir);
}

TEST(Reliability, DecoderChecksTheImageSizeFromTheHeader) {
  auto d = pvm::testing::temp_dir("rel_image");
  pvm::testing::write_solid_png(d + "/thin.png", 1, 2, 3, 1, 300);
  std::string msg = error_of([&] { load_image(d + "/thin.png"); });
  EXPECT_EQ(msg.rfind(d + "/thin.png: absolute aspect ratio must be smaller than 200", 0), 0u) << msg;
  // A PNG header claiming 20000x20000 (1.2 GB of pixels) fails before any pixel is allocated.
  std::string hdr("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x4e\x20\0\0\x4e\x20\x08\x02\0\0\0\0\0\0\0", 33);
  std::ofstream(d + "/huge.png", std::ios::binary) << hdr << std::string(64, '\0');
  msg = error_of([&] { load_image(d + "/huge.png"); });
  EXPECT_TRUE(contains(msg, d + "/huge.png: image has 400000000 pixels, more than the limit")) << msg;
  // A folder given as an image.
  msg = error_of([&] { load_image(d); });
  EXPECT_EQ(msg, d + ": is a directory, not an image file");
  // In-memory images (the studio, scenes) meet the same check in preprocessing.
  ImageRGB img;
  img.width = 1, img.height = 20000, img.rgb.assign(20000 * 3, 0), img.source = "drop";
  msg = error_of([&] { preprocess(img, PreprocessorConfig{}); });
  EXPECT_EQ(msg.rfind("drop: absolute aspect ratio", 0), 0u) << msg;
  fs::remove_all(d);
}

TEST(Reliability, CliReportsWriteErrorsAndCleansUpAfterAFailedScenes) {
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found";
  auto d = pvm::testing::temp_dir("rel_cli");
  // stdout on a full device: exit 1 with a message, not 0.
  int st = std::system((pvm::testing::pvm_bin() + " version > /dev/full 2>" + d + "/err.txt").c_str());
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_TRUE(contains(pvm::testing::slurp(d + "/err.txt"), "cannot write to standard output"));
  st = std::system((pvm::testing::pvm_bin() + " tokenize --text hello > /dev/full 2>/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(st), 1);
  // Non-finite sampling options: one line, before the model is loaded.
  for (std::string opt : {"--temperature nan", "--temperature inf", "--top-p nan", "--min-p -inf", "--top-k -3",
                          "--repetition-penalty nan"}) {
    auto r = pvm::testing::run_pvm("generate --prompt hi " + opt, d);
    EXPECT_EQ(r.rc, 1) << opt;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << opt << ": " << r.err;
    EXPECT_TRUE(contains(r.err, opt.substr(0, opt.find(' ')))) << r.err;
  }
  // An unknown id at detokenize is an error naming the id.
  auto r = pvm::testing::run_pvm("detokenize --ids 9707,999999", d);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.err, "id 999999 (position 1) is not in the vocabulary")) << r.err;
  // A scenes run that fails part-way removes the images it wrote (here: heldout/ is a file).
  const std::string out = d + "/scenes";
  fs::create_directories(out);
  std::ofstream(out + "/heldout") << "in the way";
  r = pvm::testing::run_pvm("scenes --out " + out + " --count 5 --heldout 2 --quiet", d);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.err, "removed the 5 images")) << r.err;
  EXPECT_FALSE(fs::exists(out + "/images"));
  EXPECT_TRUE(fs::exists(out + "/heldout"));  // never a file it did not write
  fs::remove_all(d);
}

// A full disk, simulated per process with `ulimit -f` (writes past the limit fail with EFBIG; the
// signal is ignored so the error reaches the writer): a failed checkpoint save removes its temp
// folder and says so, and a failed `pvm scenes` leaves no images.
TEST(Reliability, FullDiskDuringSaveOrScenesLeavesNothingBehind) {
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found";
  auto f = pvm::testing::make_train_fixture("rel_fulldisk", 8);
  const std::string run = f.dir + "/run";
  auto cfg = pvm::testing::train_config_json(f, run);
  cfg["steps"] = 4, cfg["batch_size"] = 2, cfg["save_every"] = 2;
  atomic_write_file(f.dir + "/cfg.json", cfg.dump());
  // Half the model's size: the run starts (small files), the first checkpoint cannot be written.
  const auto limit_kb = fs::file_size(f.model + "/model.safetensors") / 2048;
  auto limited = [&](const std::string& args, uint64_t kb) {
    const std::string cmd = "bash -c \"trap '' XFSZ; ulimit -f " + std::to_string(kb) + "; " +
                            pvm::testing::pvm_bin() + " " + args + "\" >" + f.dir + "/out.txt 2>" + f.dir + "/err.txt";
    int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  EXPECT_EQ(limited("train sft --config " + f.dir + "/cfg.json --no-progress", limit_kb), 1);
  const std::string err = pvm::testing::slurp(f.dir + "/err.txt");
  EXPECT_TRUE(contains(err, "removed the partial checkpoint")) << err;
  EXPECT_TRUE(contains(err, "File too large")) << err;
  for (auto& e : fs::directory_iterator(run + "/checkpoints"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
  // scenes: the JSONL files outgrow the limit part-way; the images written so far are removed.
  const std::string out = f.dir + "/scenes";
  EXPECT_EQ(limited("scenes --out " + out + " --count 400 --heldout 0 --quiet", 64), 1);
  EXPECT_TRUE(contains(pvm::testing::slurp(f.dir + "/err.txt"), "note: removed the")) << pvm::testing::slurp(f.dir + "/err.txt");
  EXPECT_FALSE(fs::exists(out + "/images"));
  fs::remove_all(f.dir);
}

// ---- class 8 ----

// Every integer option of every command goes through one parser with a range: a value past 64
// bits or outside the range is "out of range", before any model or data is read. Args::get_int
// has no overload without a range, so the compiler holds every option to one; this runs one option
// of each command (and both list options) through the binary.
TEST(Reliability, EveryIntegerOptionSaysOutOfRange) {
  if (pvm::testing::pvm_bin().empty()) GTEST_SKIP() << "pvm binary not found";
  auto d = pvm::testing::temp_dir("rel_intopts");
  const std::vector<std::pair<std::string, std::string>> options{
      {"generate --prompt hi", "--seed"},
      {"generate --prompt hi", "--max-new-tokens"},
      {"eval --task scenes", "--count"},
      {"eval --data x.jsonl", "--limit"},
      {"scenes --out " + d + "/s", "--seed"},
      {"init --preset qwen3-vl-tiny --out " + d + "/i", "--layers"},
      {"init --preset qwen3-vl-tiny --out " + d + "/i", "--pvm-layers"},
      {"inspect --preset qwen3-vl-tiny", "--pvm-layers"},
      {"dilution --images x.png --out " + d + "/o", "--sink-k"},
      {"convert --model m --out " + d + "/c", "--shard-mb"},
      {"parity-run --model m --inputs x --out y", "--new-tokens"},
      {"preprocess --image x.png", "--max-pixels"},
      {"plot --series a.csv:x:y --out " + d + "/p.png", "--width"},
      {"tokenizer-train --input x.jsonl --out " + d + "/t", "--vocab-size"},
      {"train sft --config c.json", "--stop-after"},
  };
  // (one value per option, alternating past-the-top and past-the-bottom: each run starts LibTorch)
  for (size_t k = 0; k < options.size(); ++k) {
    const auto& [cmd, opt] = options[k];
    const std::string v = k % 2 ? "-99999999999999999999" : "99999999999999999999";
    {
      auto r = pvm::testing::run_pvm(cmd + " " + opt + " " + v, d);
      EXPECT_EQ(r.rc, 1) << cmd << " " << opt << ": " << r.err;
      const size_t range = r.err.find(" (must be in ");
      EXPECT_NE(range, std::string::npos) << cmd << " " << opt << ": " << r.err;
      EXPECT_EQ(r.err.substr(0, range), "pvm " + cmd.substr(0, cmd.find(' ')) + ": error: option " + opt + ": out of range: '" + v + "'")
          << cmd << " " << opt;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
  // A negative seed is out of range, not a huge unsigned one.
  auto r = pvm::testing::run_pvm("generate --prompt hi --seed -5", d);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("option --seed: out of range: '-5' (must be in 0..9223372036854775807)"), std::string::npos) << r.err;
  fs::remove_all(d);
}

TEST(Reliability, TrainConfigNullsAndHugeIntegersAreNamed) {
  auto f = pvm::testing::make_train_fixture("rel_traincfg", 2);
  auto base = pvm::testing::train_config_json(f, f.dir + "/run");
  const std::vector<std::pair<std::function<void(json&)>, std::string>> bad{
      {[](json& j) { j["seed"] = nullptr; }, "cfg.json: seed: is null"},
      {[](json& j) { j["steps"] = nullptr; }, "cfg.json: steps: is null"},
      {[](json& j) { j["model"] = nullptr; }, "cfg.json: model: is null"},
      {[](json& j) { j["grpo"] = {{"group_size", nullptr}}; }, "cfg.json: grpo.group_size: is null"},
      {[](json& j) { j["seed"] = json::parse("99999999999999999999"); }, "cfg.json: seed: out of range"},
      {[](json& j) { j["seed"] = uint64_t(18446744073709551615ull); }, "cfg.json: seed: out of range"},
      {[](json& j) { j["seed"] = -1; }, "cfg.json: seed: out of range: must be >= 0, got -1"},
      {[](json& j) { j["workers"] = 65; }, "cfg.json: workers: out of range: must be in [0, 64], got 65"},
      {[](json& j) { j["seed"] = "1"; }, "cfg.json: seed: expected an integer"},
  };
  for (auto& [edit, needle] : bad) {
    json j = base;
    edit(j);
    std::string msg = error_of([&] { train::parse_train_config(j, "cfg.json"); });
    EXPECT_EQ(msg.rfind(needle, 0), 0u) << needle << " / " << msg;
  }
  // --set key=null takes the key out (the default), --set with a huge number is out of range.
  atomic_write_file(f.dir + "/cfg.json", base.dump());
  EXPECT_EQ(train::load_train_config(f.dir + "/cfg.json", {"seed=5", "seed=null"}, "sft").seed, 0u);
  std::string msg = error_of([&] { train::load_train_config(f.dir + "/cfg.json", {"seed=99999999999999999999"}, "sft"); });
  EXPECT_TRUE(contains(msg, "seed: out of range")) << msg;
  fs::remove_all(f.dir);
}

TEST(Reliability, FutureFormatsAreRefusedWithoutLoading) {
  auto f = pvm::testing::make_train_fixture("rel_future", 8);
  const std::string run = f.dir + "/run";
  auto cfg = pvm::testing::train_config_json(f, run);
  cfg["steps"] = 4, cfg["batch_size"] = 2;
  ASSERT_EQ(pvm::testing::run_train_quiet(cfg, 2), 0);
  // Trainer state: written with its format number; a newer one is refused naming the file.
  const std::string sp = run + "/checkpoints/step-000002/trainer_state.json";
  json st = json::parse(read_file_to_string(sp));
  EXPECT_EQ(st.value("pvm_trainer_state", 0), 1);
  st["pvm_trainer_state"] = 2;
  atomic_write_file(sp, st.dump());
  std::string msg = error_of([&] { pvm::testing::run_train_quiet(cfg, -1, run); });
  EXPECT_EQ(msg, sp + ": trainer state format 2 is newer than this build reads (up to 1): it needs a newer build");
  // An old state without the number still resumes.
  st.erase("pvm_trainer_state");
  atomic_write_file(sp, st.dump());
  EXPECT_EQ(pvm::testing::run_train_quiet(cfg, -1, run), 0);

  // PVM adapter: the same, for adapter_config.json.
  auto m = make_random_model(pvm::testing::tiny_config(), 1, torch::kFloat, torch::kCPU);
  pvm::testing::attach_tiny_pvm(*m, {1, 2}, 0.5);
  const std::string adir = f.dir + "/adapter";
  save_pvm_adapter(*m, adir);
  json ac = json::parse(read_file_to_string(adir + "/adapter_config.json"));
  EXPECT_EQ(ac.value("pvm_adapter_format", 0), 1);
  ac["pvm_adapter_format"] = 7;
  atomic_write_file(adir + "/adapter_config.json", ac.dump());
  auto g = make_random_model(pvm::testing::tiny_config(), 2, torch::kFloat, torch::kCPU);
  msg = error_of([&] { load_pvm_adapter(*g, adir); });
  EXPECT_EQ(msg.rfind(adir + "/adapter_config.json: PVM adapter format 7 is newer", 0), 0u) << msg;
  EXPECT_FALSE(g->config().has_pvm());
  // A null field is named (not "needs integer ... and ...").
  ac["pvm_adapter_format"] = 1, ac["pvm_hidden_size"] = nullptr;
  atomic_write_file(adir + "/adapter_config.json", ac.dump());
  msg = error_of([&] { load_pvm_adapter(*g, adir); });
  EXPECT_EQ(msg, adir + "/adapter_config.json: pvm_hidden_size must be an integer, got null");

  // Eval log: a settings line of a newer format is refused before the model is opened.
  if (!pvm::testing::pvm_bin().empty()) {
    std::ofstream(f.dir + "/q.jsonl") << R"({"question": "colour?", "image": "img/red.png", "answer": "red"})" << "\n";
    std::ofstream(f.dir + "/log.jsonl") << R"({"pvm_eval": 2, "data": "x"})" << "\n";
    auto r = pvm::testing::run_pvm("eval --data " + f.dir + "/q.jsonl --out " + f.dir + "/log.jsonl --resume --model " + f.model, f.dir);
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err, "pvm eval: error: " + f.dir + "/log.jsonl: eval log format 2 is newer than this build reads (up to 1): it needs a newer build\n");
  }
  fs::remove_all(f.dir);
}

// What a run reports at its end comes from the run, not from files that may have moved: a run
// folder moved while training is followed (and named), a removed one is an error, and neither is
// silently re-created at the old path.
TEST(Reliability, RunFolderMovedOrRemovedWhileTraining) {
  auto f = pvm::testing::make_train_fixture("rel_moved", 8);
  const std::string run = f.dir + "/run", moved = f.dir + "/elsewhere";
  auto cfg = train::parse_train_config(
      [&] {
        auto j = pvm::testing::train_config_json(f, run);
        j["steps"] = 4, j["batch_size"] = 2, j["save_every"] = 2;
        return j;
      }(),
      "test");
  train::RunOptions o;
  o.install_signal_handlers = false;
  o.on_step = [&](const json& m) {
    if (m.value("step", 0) == 2) fs::rename(run, moved);
  };
  train::RunOutcome out;
  ASSERT_EQ(train::run(cfg, o, &out), 0);
  EXPECT_EQ(out.state, "finished");
  EXPECT_EQ(out.moved_from, run);
  EXPECT_EQ(fs::canonical(out.run_dir), fs::canonical(moved));
  EXPECT_FALSE(fs::exists(run));  // not re-created
  EXPECT_TRUE(fs::exists(moved + "/final/model.safetensors"));
  EXPECT_TRUE(fs::exists(moved + "/checkpoints/step-000004/trainer_state.json"));
  EXPECT_EQ(json::parse(read_file_to_string(moved + "/status.json")).value("state", ""), "finished");
  EXPECT_EQ(pvm::testing::read_jsonl(moved + "/metrics.jsonl").size(), 4u);

  // Stopped early: the outcome says stopped, at which step, and where to resume.
  fs::remove_all(moved);
  o.on_step = nullptr;
  o.stop_after = 2;
  ASSERT_EQ(train::run(cfg, o, &out), 0);
  EXPECT_EQ(out.state, "stopped");
  EXPECT_EQ(out.step, 2);
  EXPECT_EQ(out.total, 4);

  // Removed: an error naming the folder, and nothing re-created.
  fs::remove_all(run);
  o.stop_after = -1;
  o.on_step = [&](const json& m) {
    if (m.value("step", 0) == 2) fs::remove_all(run);
  };
  std::string msg = error_of([&] { train::run(cfg, o, &out); });
  EXPECT_EQ(msg.rfind(run + ": the run folder was removed while training (at step 2)", 0), 0u) << msg;
  EXPECT_FALSE(fs::exists(run));
  fs::remove_all(f.dir);
}

TEST(Reliability, EmptyAssistantTurnsAndSolutionsAreBadSamples) {
  auto f = pvm::testing::make_train_fixture("rel_empty", 4);
  {
    std::ofstream out(f.data, std::ios::app);
    for (std::string answer : {"", "  \n"})
      out << json{{"messages", {{{"role", "user"}, {"content", "<image>What colour is it?"}}, {{"role", "assistant"}, {"content", answer}}}},
                  {"images", {"img/red.png"}}}
                 .dump()
          << "\n";
    out << json{{"messages",
                 {{{"role", "user"}, {"content", "hi"}},
                  {{"role", "assistant"}, {"content", json::array({{{"type", "text"}, {"text", " "}}})}},
                  {{"role", "user"}, {"content", "<image>colour?"}},
                  {{"role", "assistant"}, {"content", "red"}}}},
                {"images", {"img/red.png"}}}
               .dump()
        << "\n";
  }
  std::vector<std::string> warnings;
  train::SftDataset ds = load_sft_collecting(f, warnings);
  EXPECT_EQ(ds.size(), 4);
  EXPECT_EQ(ds.skipped(), 3);
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_EQ(warnings[0], f.data + ":5: messages[1]: empty assistant turn (nothing to learn but stopping at once)");
  EXPECT_TRUE(contains(warnings[1], f.data + ":6: messages[1]: empty assistant turn")) << warnings[1];
  EXPECT_TRUE(contains(warnings[2], f.data + ":7: messages[1]: empty assistant turn")) << warnings[2];
  EXPECT_TRUE(contains(warnings[3], "skipped 3 of 7 samples")) << warnings[3];
  std::string msg = error_of([&] { load_sft_collecting(f, warnings, /*fatal=*/true); });
  EXPECT_EQ(msg, warnings[0]);
  // GRPO: an empty solution has nothing to grade against.
  msg = error_of([&] { train::parse_grpo_line(R"({"prompt": "2+2?", "solution": " "})", "g.jsonl:3", f.dir); });
  EXPECT_EQ(msg, "g.jsonl:3: empty \"solution\" (nothing to grade against)");
  fs::remove_all(f.dir);
}

// `pvm eval` decodes every image at load, with the training data's policy: a truncated, an
// out-of-bounds and a missing-pixels image are found before any item runs.
TEST(Reliability, EvalDataImagesAreDecodedAtLoad) {
  auto d = pvm::testing::temp_dir("rel_evaldata");
  pvm::testing::write_solid_png(d + "/ok.png", 200, 10, 10);
  pvm::testing::write_solid_png(d + "/thin.png", 1, 2, 3, 1, 300);
  auto png = read_file_to_string(d + "/ok.png");
  std::ofstream(d + "/cut.png", std::ios::binary) << png.substr(0, png.size() / 2);
  {
    std::ofstream q(d + "/q.jsonl");
    for (auto img : {"ok.png", "cut.png", "thin.png", "ok.png"})
      q << json{{"question", "colour?"}, {"image", img}, {"answer", "red"}}.dump() << "\n";
  }
  auto data = eval::load_eval_data(d + "/q.jsonl");
  std::vector<std::string> warnings;
  train::BadLinePolicy p;
  p.warn = [&](const std::string& m) { warnings.push_back(m); };
  EXPECT_EQ(eval::validate_images(data, p), 2);
  ASSERT_EQ(data.items.size(), 2u);
  EXPECT_EQ(data.items[1].line, 4);
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0].rfind(d + "/q.jsonl:2: " + d + "/cut.png: ", 0), 0u) << warnings[0];
  EXPECT_TRUE(contains(warnings[1], "q.jsonl:3: ") && contains(warnings[1], "aspect ratio")) << warnings[1];
  EXPECT_EQ(warnings[2], d + "/q.jsonl: skipped 2 of 4 items (bad lines or images, listed above; --bad-lines fatal stops at the first)");
  data = eval::load_eval_data(d + "/q.jsonl");
  p.fatal = true;
  std::string msg = error_of([&] { eval::validate_images(data, p); });
  EXPECT_EQ(msg, warnings[0]);
  // The CLI: every item bad is an error before the model is opened, with the count.
  if (!pvm::testing::pvm_bin().empty()) {
    std::ofstream(d + "/bad.jsonl") << json{{"question", "c?"}, {"image", "cut.png"}, {"answer", "red"}}.dump() << "\n";
    auto r = pvm::testing::run_pvm("eval --data " + d + "/bad.jsonl --model /nonexistent", d);
    EXPECT_EQ(r.rc, 1);
    EXPECT_TRUE(contains(r.err, "bad.jsonl:1: " + d + "/cut.png")) << r.err;
    EXPECT_TRUE(contains(r.err, "pvm eval: error: " + d + "/bad.jsonl: no usable item")) << r.err;
    r = pvm::testing::run_pvm("eval --data " + d + "/bad.jsonl --bad-lines fatal", d);
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.err.rfind("pvm eval: error: " + d + "/bad.jsonl:1: " + d + "/cut.png: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  fs::remove_all(d);
}

// A FIFO, a device or a folder where a file is expected: refused at once, naming the file, by
// every reader (model config, tokenizer, preprocessor config, training and eval data, images,
// train config), in the engine and through the CLI.
TEST(Reliability, NonRegularFilesAreRefusedEverywhere) {
  auto d = pvm::testing::temp_dir("rel_nonregular");
  const std::string fifo = d + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> readers{
      {"config", [](const std::string& p) { load_config(p); }},
      {"tokenizer", [](const std::string& p) { Tokenizer::load(p); }},
      {"preprocessor", [](const std::string& p) { PreprocessorConfig::load(p); }},
      {"sft data", [](const std::string& p) { train::read_sft_jsonl(p, train::BadLinePolicy{}); }},
      {"grpo data", [](const std::string& p) { train::read_grpo_jsonl(p, train::BadLinePolicy{}); }},
      {"eval data", [](const std::string& p) { eval::load_open_jsonl(p); }},
      {"image", [](const std::string& p) { load_image(p); }},
      {"train config", [](const std::string& p) { train::load_train_config(p, {}, "sft"); }},
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& [what, read] : readers)
    for (const std::string& p : {fifo, d, std::string("/dev/zero")}) {
      std::string msg = error_of([&] { read(p); });
      EXPECT_EQ(msg.rfind(p + ": ", 0), 0u) << what << " " << p << ": " << msg;
      EXPECT_TRUE(contains(msg, "not a regular file") || contains(msg, "is a directory")) << what << " " << p << ": " << msg;
    }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  // Through the CLI (a hang would be cut by `timeout` and fail the exit-code check).
  if (!pvm::testing::pvm_bin().empty()) {
    fs::create_directories(d + "/model");
    ASSERT_EQ(::mkfifo((d + "/model/config.json").c_str(), 0600), 0);
    for (const std::string& args : {"generate --prompt hi --model " + d + "/model", "inspect --model " + d + "/model",
                                   "tokenize --text hi --tokenizer " + fifo, "preprocess --image " + fifo,
                                   "eval --data " + fifo + ".jsonl", "train sft --config " + fifo,
                                   "tokenizer-train --input " + fifo + " --out " + d + "/tok"}) {
      if (args.find(".jsonl") != std::string::npos && !fs::exists(fifo + ".jsonl")) ::mkfifo((fifo + ".jsonl").c_str(), 0600);
      auto r = pvm::testing::run_pvm(args, d);
      EXPECT_EQ(r.rc, 1) << args << ": " << r.err;
      // One error line, the last (a progress note such as "loading DIR (cpu, f32)..." may come first).
      std::vector<std::string> lines;
      for (size_t p = 0, e; p < r.err.size(); p = e + 1) {
        e = r.err.find('\n', p);
        if (e == std::string::npos) e = r.err.size();
        lines.push_back(r.err.substr(p, e - p));
      }
      EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return contains(l, "error"); }), 1)
          << args << ": " << r.err;
      EXPECT_TRUE(!lines.empty() && lines.back().rfind("pvm ", 0) == 0 && contains(lines.back(), ": error: ") &&
                  contains(lines.back(), "not a regular file"))
          << args << ": " << r.err;
    }
  }
  fs::remove_all(d);
}
