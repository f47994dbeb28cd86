// Issue 21, classes 2-7 on the engine and the CLI: NaN weights and gates, adapters of another
// type, inconsistent trainer states, the run lock and stale checkpoint temp folders, one load-time
// policy for missing and corrupt training images, the image-size check in the decoder, stdout
// write errors and cleanup after a failed `pvm scenes`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
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
int run_train(const json& cfg_json, int64_t stop_after = -1, const std::string& resume = "") {
  auto cfg = train::parse_train_config(cfg_json, "test");
  train::RunOptions o;
  o.resume_dir = resume;
  o.install_signal_handlers = false;
  o.stop_after = stop_after;
  return train::run(cfg, o);
}
}  // namespace

TEST(Reliability, ResumeChecksTheStateTheLockAndCleansStaleTemps) {
  auto f = pvm::testing::make_train_fixture("rel_resume", 8);
  auto cfg = pvm::testing::train_config_json(f, f.dir + "/run");
  cfg["steps"] = 4;
  cfg["batch_size"] = 2;
  const std::string run = f.dir + "/run";
  ASSERT_EQ(run_train(cfg, 2), 0);
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
    std::string msg = error_of([&] { run_train(cfg, -1, run); });
    EXPECT_EQ(msg.rfind(sp + ": ", 0), 0u) << msg;
    EXPECT_TRUE(contains(msg, needle)) << needle << " / " << msg;
  }
  std::ofstream(sp, std::ios::trunc) << good.dump(2);

  // A second writer on a live run is refused (the lock of another trainer, here held by us).
  {
    DirLock live(run, "training run");
    std::string msg = error_of([&] { run_train(cfg, -1, run); });
    EXPECT_TRUE(contains(msg, "in use by pid " + std::to_string(::getpid()))) << msg;
  }
  // What a kill -9 during a save leaves behind goes at the next start.
  fs::create_directories(run + "/checkpoints/.tmp-step-000003-99999");
  std::ofstream(run + "/checkpoints/.tmp-step-000003-99999/optimizer.safetensors") << "partial";
  std::ofstream(run + "/status.json.tmp.99999.0") << "partial";
  ASSERT_EQ(run_train(cfg, -1, run), 0);
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
  auto tok = Tokenizer::load(f.model + "/tokenizer.json");
  train::SftDatasetOptions o;
  o.preprocessor = PreprocessorConfig::load(f.model + "/preprocessor_config.json");
  o.max_length = 256;
  std::vector<std::string> warnings;
  o.policy.warn = [&](const std::string& m) { warnings.push_back(m); };
  train::SftDataset ds(f.data, tok, o);
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
  o.policy.fatal = true;
  std::string msg = error_of([&] { train::SftDataset d2(f.data, tok, o); });
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
