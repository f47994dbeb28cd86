// Issue 21, classes 2-8 on the base library: non-finite options, NaN logits, FIFOs and folders
// where files are expected, output paths, the run lock, stale temp files, incomplete byte
// vocabularies, duplicate deepstack taps, the one image-size check, integer options out of range,
// files of a future format and the line reader. Table-driven where a
// family of inputs shares one expectation.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/base/cli_args.h"
#include "engine/base/config.h"
#include "engine/base/error.h"
#include "engine/base/file_format.h"
#include "engine/base/fs_util.h"
#include "engine/base/image_check.h"
#include "engine/base/sampling.h"
#include "engine/base/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "";
}

std::string fresh_dir(const std::string& name) {
  auto d = fs::path(::testing::TempDir()) / ("pvm_rel_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

}  // namespace

TEST(Reliability, NonFiniteNumericOptionsAreRejected) {
  for (std::string v : {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e999", "-1e999"}) {
    pvm::cli::Args a({"--temperature", v}, {"--temperature"}, {});
    std::string m = error_of([&] { a.get_double("--temperature", 0); });
    EXPECT_NE(m.find("--temperature"), std::string::npos) << v << ": " << m;
    EXPECT_NE(m.find("not a finite number"), std::string::npos) << v << ": " << m;
  }
  pvm::cli::Args ok({"--top-p", "0.5"}, {"--top-p"}, {});
  EXPECT_EQ(ok.get_double("--top-p", 1), 0.5);
  // An out-of-range integer is out of range, not "not an integer".
  pvm::cli::Args big({"--seed", "99999999999999999999999"}, {"--seed"}, {});
  EXPECT_NE(error_of([&] { big.get_int("--seed", 0, 0, INT64_MAX); }).find("out of range"), std::string::npos);
}

TEST(Reliability, SamplingParamsRejectEveryNonFiniteOrOutOfRangeValue) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* option;
    std::function<void(pvm::SamplingParams&)> set;
  };
  const std::vector<Case> bad{
      {"--temperature", [&](auto& p) { p.temperature = nan; }},
      {"--temperature", [&](auto& p) { p.temperature = inf; }},
      {"--temperature", [&](auto& p) { p.temperature = 1e6; }},
      {"--temperature", [&](auto& p) { p.temperature = -1; }},
      {"--top-p", [&](auto& p) { p.top_p = nan; }},
      {"--top-p", [&](auto& p) { p.top_p = inf; }},
      {"--top-p", [&](auto& p) { p.top_p = 0; }},
      {"--top-p", [&](auto& p) { p.top_p = 1.5; }},
      {"--top-k", [&](auto& p) { p.top_k = -1; }},
      {"--min-p", [&](auto& p) { p.min_p = nan; }},
      {"--min-p", [&](auto& p) { p.min_p = -0.1; }},
      {"--repetition-penalty", [&](auto& p) { p.repetition_penalty = nan; }},
      {"--repetition-penalty", [&](auto& p) { p.repetition_penalty = inf; }},
      {"--repetition-penalty", [&](auto& p) { p.repetition_penalty = 0; }},
  };
  for (bool sample : {true, false})
    for (auto& c : bad) {
      pvm::SamplingParams p;
      p.do_sample = sample;
      c.set(p);
      std::string m = error_of([&] { p.validate(); });
      EXPECT_NE(m.find(c.option), std::string::npos) << c.option << " sample=" << sample << ": '" << m << "'";
    }
  pvm::SamplingParams good;
  good.do_sample = true;
  good.temperature = 0.7, good.top_p = 0.9, good.top_k = 40, good.min_p = 0.05, good.repetition_penalty = 1.1;
  EXPECT_NO_THROW(good.validate());
}

TEST(Reliability, NonFiniteLogitsAreAnErrorNotToken0) {
  for (bool sample : {false, true})
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
      pvm::SamplingParams p;
      p.do_sample = sample;
      pvm::Sampler s(p);
      std::vector<float> logits{0.1f, 0.5f, bad, 0.2f};
      std::string m = error_of([&] { s.next(logits.data(), 4, {}); });
      EXPECT_NE(m.find("non-finite logit"), std::string::npos) << m;
    }
  pvm::Sampler s(pvm::SamplingParams{});
  std::vector<float> logits{0.1f, 0.5f, -std::numeric_limits<float>::infinity(), 0.2f};  // -inf is a mask
  EXPECT_EQ(s.next(logits.data(), 4, {}), 1);
}

TEST(Reliability, ReadersRejectFifosAndFoldersWithoutHanging) {
  auto d = fresh_dir("readers");
  const std::string fifo = d + "/fifo.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::string m = error_of([&] { pvm::read_file_to_string(fifo); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(m.rfind(fifo + ": ", 0), 0u) << m;
  EXPECT_NE(m.find("not a regular file"), std::string::npos) << m;
  // Every reader goes through the one helper: config, tokenizer.
  EXPECT_NE(error_of([&] { pvm::load_config(fifo); }).find("not a regular file"), std::string::npos);
  EXPECT_NE(error_of([&] { pvm::Tokenizer::load(fifo); }).find("not a regular file"), std::string::npos);
  m = error_of([&] { pvm::read_file_to_string(d, 1 << 20, "image"); });
  EXPECT_EQ(m, d + ": is a directory, not an image file");
  m = error_of([&] { pvm::Tokenizer::load(d); });
  EXPECT_EQ(m.rfind(d + ": is a directory", 0), 0u) << m;
  EXPECT_NE(m.find(d + "/tokenizer.json"), std::string::npos) << m;  // advice that can be followed
  m = error_of([&] { pvm::read_file_to_string(d + "/absent"); });
  EXPECT_NE(m.find("no such file"), std::string::npos) << m;
  fs::remove_all(d);
}

TEST(Reliability, OutputPathsThatCannotBeWrittenSayWhy) {
  auto d = fresh_dir("outputs");
  std::string m = error_of([&] { pvm::atomic_write_file(d + "/missing/x.json", "{}"); });
  EXPECT_EQ(m, d + "/missing/x.json: cannot write: folder " + d + "/missing does not exist");
  m = error_of([&] { pvm::atomic_write_file(d, "{}"); });
  EXPECT_EQ(m, d + ": is a directory, expected an output file name");
  std::ofstream(d + "/file") << "x";
  m = error_of([&] { pvm::atomic_write_file(d + "/file/x.json", "{}"); });
  EXPECT_NE(m.find("is not a folder"), std::string::npos) << m;
  m = error_of([&] { pvm::make_dirs(d + "/file", "run"); });
  EXPECT_EQ(m, d + "/file: is a file, expected a run folder");
  EXPECT_NE(error_of([&] { pvm::check_output_file(d + "/nope/t.jsonl", "trace"); }).find("does not exist"), std::string::npos);
  EXPECT_NE(error_of([&] { pvm::check_output_file(d, "trace"); }).find("is a directory"), std::string::npos);
  EXPECT_NO_THROW(pvm::check_output_file(d + "/t.jsonl", "trace"));
  fs::remove_all(d);
}

TEST(Reliability, RunLockRefusesASecondWriterAndTakesOverAStaleOne) {
  auto d = fresh_dir("lock");
  {
    pvm::DirLock a(d, "training run");
    EXPECT_EQ(a.stale_pid(), 0);
    std::string m = error_of([&] { pvm::DirLock b(d, "training run"); });
    EXPECT_NE(m.find("in use by pid " + std::to_string(::getpid())), std::string::npos) << m;
    // Another process is refused too (flock is per open file, and a child has its own).
    pid_t c = ::fork();
    if (c == 0) {
      try {
        pvm::DirLock b(d, "training run");
        ::_exit(0);
      } catch (const pvm::Error&) {
        ::_exit(3);
      }
    }
    int st = 0;
    ::waitpid(c, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3);
  }
  {
    pvm::DirLock again(d, "training run");  // released by the destructor: no stale owner
    EXPECT_EQ(again.stale_pid(), 0);
  }
  // A lock file left by a process that died (kill -9 leaves its pid in the file).
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  std::ofstream(d + "/run.lock") << dead << "\n";
  pvm::DirLock taken(d, "training run");
  EXPECT_EQ(taken.stale_pid(), long(dead));
  EXPECT_EQ(std::stol(pvm::read_file_to_string(d + "/run.lock")), long(::getpid()));
  fs::remove_all(d);
}

TEST(Reliability, StaleTempFilesAreRemovedAndNamed) {
  auto d = fresh_dir("temps");
  fs::create_directories(d + "/.tmp-step-000004-12345/sub");
  std::ofstream(d + "/.tmp-step-000004-12345/sub/optimizer.safetensors") << "partial";
  std::ofstream(d + "/status.json.tmp.999.0") << "partial";
  std::ofstream(d + "/status.json") << "{}";
  std::ofstream(d + "/notes.tmp.txt") << "user file";  // not our pattern: kept
  fs::create_directories(d + "/step-000002");
  auto removed = pvm::remove_stale_temps(d, ".tmp-");
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{".tmp-step-000004-12345", "status.json.tmp.999.0"}));
  EXPECT_FALSE(fs::exists(d + "/.tmp-step-000004-12345"));
  EXPECT_TRUE(fs::exists(d + "/status.json"));
  EXPECT_TRUE(fs::exists(d + "/notes.tmp.txt"));
  EXPECT_TRUE(fs::exists(d + "/step-000002"));
  fs::remove_all(d);
}

namespace {
// GPT-2 byte -> unicode character of the byte-level vocabulary, as UTF-8.
std::string byte_token(int b) {
  auto ok = [](int x) { return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255); };
  uint32_t cp = uint32_t(b);
  if (!ok(b)) {
    int n = 0;
    for (int x = 0; x < b; ++x) n += !ok(x);
    cp = uint32_t(256 + n);
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  return s;
}
json byte_level_tokenizer(int drop_byte) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    if (b != drop_byte) vocab[byte_token(b)] = b;
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}
}  // namespace

TEST(Reliability, TokenizerWithoutAllByteTokensIsALoadError) {
  EXPECT_NO_THROW(pvm::Tokenizer::from_json(byte_level_tokenizer(-1).dump(), "full.json"));
  for (int b : {0, int('a'), 0xFF}) {
    std::string m = error_of([&] { pvm::Tokenizer::from_json(byte_level_tokenizer(b).dump(), "t.json"); });
    EXPECT_EQ(m.rfind("t.json: ", 0), 0u) << m;
    EXPECT_NE(m.find("lacks 1 of the 256 byte tokens"), std::string::npos) << m;
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", b);
    EXPECT_NE(m.find(hex), std::string::npos) << m;
  }
}

TEST(Reliability, DuplicateDeepstackIndexesAreRejected) {
  json j = json::parse(pvm::config_to_json(pvm::preset_config("qwen3-vl-2b")));
  j["vision_config"]["deepstack_visual_indexes"] = {5, 11, 5};
  std::string m = error_of([&] { pvm::parse_config(j.dump(), "dir/config.json"); });
  EXPECT_EQ(m.rfind("dir/config.json: ", 0), 0u) << m;
  EXPECT_NE(m.find("deepstack_visual_indexes lists layer 5 twice"), std::string::npos) << m;
  j["vision_config"]["deepstack_visual_indexes"] = {5, 11, 17};
  EXPECT_NO_THROW(pvm::parse_config(j.dump(), "dir/config.json"));
}

TEST(Reliability, OneImageSizeCheck) {
  struct Case {
    int64_t w, h;
    const char* needle;  // "" = accepted
  };
  const std::vector<Case> cases{{0, 10, "0 pixels"},           {10, 0, "0 pixels"},
                                {1, 20000, "aspect ratio"},      {20000, 1, "aspect ratio"},
                                {20000, 20000, "more than the limit"}, {1, 200, ""},
                                {1, 201, "aspect ratio"},        {13000, 13000, ""},
                                {1, 1, ""}};
  for (auto& c : cases) {
    std::string m = error_of([&] { pvm::check_image_size(c.w, c.h, "x.png"); });
    if (!*c.needle) {
      EXPECT_EQ(m, "") << c.w << "x" << c.h;
    } else {
      EXPECT_EQ(m.rfind("x.png: ", 0), 0u) << m;
      EXPECT_NE(m.find(c.needle), std::string::npos) << c.w << "x" << c.h << ": " << m;
    }
  }
}

// ---- class 8 ----

TEST(Reliability, IntegerOptionsSayOutOfRangeNotNotAnInteger) {
  struct Case {
    const char* value;
    long long lo, hi;
    const char* needle;  // "" = accepted
  };
  const std::vector<Case> cases{
      {"99999999999999999999", 0, INT64_MAX, "out of range: '99999999999999999999' (must be in 0..9223372036854775807)"},
      {"-99999999999999999999", 0, INT64_MAX, "out of range"},
      {"-1", 0, INT64_MAX, "out of range: '-1' (must be in 0.."},
      {"257", 1, 256, "out of range: '257' (must be in 1..256)"},
      {"0", 1, 256, "out of range"},
      {"12x", 0, 100, "not an integer: '12x'"},
      {"", 0, 100, "not an integer: ''"},
      {"0x10", 0, 100, "not an integer"},
      {"1e3", 0, 10000, "not an integer"},
      {"-", 0, 100, "not an integer"},
      {"+7", 0, 100, ""},
      {"9223372036854775807", 0, INT64_MAX, ""},
      {"42", 0, 100, ""},
  };
  for (const auto& c : cases) {
    pvm::cli::Args a({"--seed", c.value}, {"--seed"}, {});
    std::string m = error_of([&] { a.get_int("--seed", 0, c.lo, c.hi); });
    if (!*c.needle) {
      EXPECT_EQ(m, "") << c.value;
    } else {
      EXPECT_EQ(m.rfind("option --seed: ", 0), 0u) << c.value << ": " << m;
      EXPECT_NE(m.find(c.needle), std::string::npos) << c.value << ": " << m;
    }
  }
  // Lists go through the same parser, item by item.
  EXPECT_EQ(pvm::cli::parse_int_list("1,5,9", "option --pvm-layers", 0, 1023), (std::vector<long long>{1, 5, 9}));
  EXPECT_NE(error_of([&] { pvm::cli::parse_int_list("1,99999999999999999999", "option --pvm-layers", 0, 1023); })
                .find("option --pvm-layers: out of range"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pvm::cli::parse_int_list("1,,2", "option --pvm-layers", 0, 1023); }).find("not a comma-separated"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pvm::cli::parse_int_list("1,x", "option --pvm-layers", 0, 1023); }).find("not an integer: 'x'"),
            std::string::npos);
}

TEST(Reliability, FilesOfAFutureFormatAreRefused) {
  struct Case {
    json j;
    const char* needle;  // "" = accepted
  };
  const std::vector<Case> cases{
      {{{"fmt", 1}}, ""},
      {json::object(), ""},  // written before the number existed
      {{{"fmt", 2}}, "f.json: session format 2 is newer than this build reads (up to 1)"},
      {{{"fmt", uint64_t(18446744073709551615ull)}}, "must be a positive integer"},
      {{{"fmt", 1e30}}, "newer than this build reads"},
      {{{"fmt", 0}}, "fmt must be a positive integer, got 0"},
      {{{"fmt", -3}}, "must be a positive integer"},
      {{{"fmt", "2"}}, "fmt must be a positive integer, got \"2\""},
      {{{"fmt", nullptr}}, "fmt must be a positive integer, got null"},
      {{{"fmt", 1.5}}, "must be a positive integer"},
  };
  for (const auto& c : cases) {
    std::string m = error_of([&] { pvm::check_file_format(c.j, "fmt", 1, "f.json", "session"); });
    if (!*c.needle) {
      EXPECT_EQ(m, "") << c.j.dump();
    } else {
      EXPECT_EQ(m.rfind("f.json: ", 0), 0u) << m;
      EXPECT_NE(m.find(c.needle), std::string::npos) << c.j.dump() << ": " << m;
    }
  }
}

TEST(Reliability, InputFileReadsLinesAndRefusesWhatIsNoRegularFile) {
  auto d = fresh_dir("inputfile");
  std::ofstream(d + "/data.jsonl") << "a\nb\n\nc";
  pvm::InputFile f(d + "/data.jsonl", "data");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f.stream(), line)) lines.push_back(line);
  EXPECT_NO_THROW(f.finish());
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(f.size(), 6u);
  const std::string fifo = d + "/fifo.jsonl";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  for (const std::string& p : {fifo, d, std::string("/dev/null")}) {
    std::string m = error_of([&] { pvm::InputFile g(p, "data"); });
    EXPECT_EQ(m.rfind(p + ": ", 0), 0u) << m;
    EXPECT_TRUE(m.find("not a regular file") != std::string::npos || m.find("is a directory") != std::string::npos) << m;
    m = error_of([&] { pvm::check_regular_file(p, "data"); });
    EXPECT_EQ(m.rfind(p + ": ", 0), 0u) << m;
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  fs::remove_all(d);
}

// Found by the tokenizer fuzz target: a null, boolean or float among the merges or as a vocab id
// wrote through a null node (SIGSEGV). Now the layout error naming the file.
TEST(Reliability, TokenizerNullsInVocabOrMergesAreErrorsNotCrashes) {
  const json base = byte_level_tokenizer(-1);
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases{
      {[](json& j) { j["model"]["merges"] = json::array({nullptr}); }, "model.merges: entries must be"},
      {[](json& j) { j["model"]["merges"] = json::array({true}); }, "model.merges: entries must be"},
      {[](json& j) { j["model"]["merges"] = json::array({1.5}); }, "model.merges: entries must be"},
      {[](json& j) { j["model"]["merges"] = json::array({json::array({"a", nullptr})}); }, "model.merges: entries must be"},
      {[](json& j) { j["model"]["vocab"]["zz"] = nullptr; }, "model.vocab['zz']: id is not an integer"},
      {[](json& j) { j["model"]["vocab"]["zz"] = false; }, "model.vocab['zz']: id is not an integer"},
  };
  for (const auto& [edit, needle] : cases) {
    json j = base;
    edit(j);
    std::string m = error_of([&] { pvm::Tokenizer::from_json(j.dump(), "t.json"); });
    EXPECT_EQ(m.rfind("t.json: ", 0), 0u) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << needle << ": " << m;
  }
}
