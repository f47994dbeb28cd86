// Benchmark data readers (engine/base/eval_data.h) and `pvm eval` end to end on a tiny random model.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/answer_extract.h"
#include "engine/base/error.h"
#include "engine/base/eval_data.h"
#include "engine/image.h"
#include "engine/image_write.h"
#include "engine/loader.h"
#include "test_util.h"

#include "cli_util.h"

namespace {

namespace ev = pvm::eval;
using nlohmann::json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "<no pvm::Error thrown>";
}

void write_file(const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; }
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A small RGB test card: distinct pixels so a wrong decode shows.
pvm::ImageRGB test_card(int w, int h, int salt) {
  pvm::ImageRGB img;
  img.width = w, img.height = h;
  img.rgb.resize(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) img.rgb[(size_t(y) * w + x) * 3 + c] = uint8_t((x * 37 + y * 11 + c * 80 + salt) & 255);
  return img;
}

std::string png_bytes(const pvm::ImageRGB& img) {
  auto v = pvm::encode_png(img.width, img.height, 3, img.rgb.data());
  return std::string(v.begin(), v.end());
}

std::string row(const std::vector<std::string>& f) {
  std::string s;
  for (size_t i = 0; i < f.size(); ++i) s += (i ? "\t" : "") + ev::tsv_quote(f[i]);
  return s + "\n";
}

const std::vector<std::string> kHeader = {"index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
                                          "image", "split"};

// ---- base64 ----

TEST(EvalData, Base64KnownVectors) {
  // RFC 4648 section 10.
  const std::vector<std::pair<std::string, std::string>> v = {{"", ""},         {"f", "Zg=="},     {"fo", "Zm8="},
                                                              {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                              {"foobar", "Zm9vYmFy"}};
  for (auto& [plain, enc] : v) {
    EXPECT_EQ(ev::base64_decode(enc, "t"), plain) << enc;
    EXPECT_EQ(ev::base64_encode(plain), enc) << plain;
  }
  EXPECT_EQ(ev::base64_decode("Zm9v\nYmFy", "t"), "foobar");  // line breaks are skipped
  EXPECT_EQ(ev::base64_decode("Zm9vYg", "t"), "foob");        // missing padding
  EXPECT_EQ(ev::base64_decode("/+8=", "t"), "\xff\xef");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  EXPECT_EQ(ev::base64_decode(ev::base64_encode(all), "t"), all);
  EXPECT_NE(error_of([] { ev::base64_decode("Zm9v*mFy", "img.tsv:3 image 1"); }).find("img.tsv:3 image 1: invalid base64 character '*'"),
            std::string::npos);
  EXPECT_NE(error_of([] { ev::base64_decode("Zm9vY", "t"); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([] { ev::base64_decode("Zg==Zg", "t"); }).find("after '=' padding"), std::string::npos);
}

TEST(EvalData, PythonFloatRepr) {
  EXPECT_EQ(ev::python_float_repr(3.0), "3.0");
  EXPECT_EQ(ev::python_float_repr(0.1), "0.1");
  EXPECT_EQ(ev::python_float_repr(2.5), "2.5");
  EXPECT_EQ(ev::python_float_repr(-1.5), "-1.5");
  EXPECT_EQ(ev::python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(ev::python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(ev::python_float_repr(1e16), "1e+16");
  EXPECT_EQ(ev::python_float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(ev::python_float_repr(1.0 / 3), "0.3333333333333333");
}

// ---- TSV ----

TEST(EvalData, TsvBase64AndIndexPointerImages) {
  const auto card = test_card(20, 12, 5);
  const std::string b64 = ev::base64_encode(png_bytes(card));
  ASSERT_GT(b64.size(), 64u);
  std::string tsv = row(kHeader);
  tsv += row({"10", "What color is the cube?", "nan", "red", "blue", "green", "yellow", "A", "color", "attribute", b64, "dev"});
  // Quotes, a tab and a line break inside fields (pandas quotes such fields); D is NA; the image is
  // the index of row 10.
  tsv += row({"11", "Which \"shape\"\tis it?", "Look\nclosely.", "cube", "sphere", "cone", "nan", "B", "shape", "", "10", "dev"});
  tsv += row({"12", "No image here", "", "x", "y", "", "", "A", "shape", "", "", "dev"});  // skipped like VLMEvalKit
  auto d = ev::parse_vlmeval_tsv(tsv, "mini.tsv", "/data");
  ASSERT_EQ(d.items.size(), 2u);
  EXPECT_EQ(d.skipped_no_image, 1);
  const auto& a = d.items[0];
  const auto& b = d.items[1];
  EXPECT_EQ(a.key, "10");
  EXPECT_EQ(a.line, 2);
  EXPECT_EQ(b.line, 3);  // the row starts on line 3 and spans line 4
  EXPECT_FALSE(a.has_hint);
  EXPECT_TRUE(b.has_hint);
  EXPECT_EQ(b.hint, "Look\nclosely.");
  EXPECT_EQ(b.question, "Which \"shape\"\tis it?");
  ASSERT_EQ(a.options.size(), 4u);
  ASSERT_EQ(b.options.size(), 3u);
  EXPECT_EQ(b.options[2], (std::pair<char, std::string>{'C', "cone"}));
  EXPECT_EQ(b.answer, "B");
  EXPECT_EQ(a.category, "color");
  EXPECT_EQ(a.l2_category, "attribute");
  EXPECT_EQ(b.l2_category, "");
  EXPECT_EQ(a.split, "dev");
  ASSERT_EQ(a.images.size(), 1u);
  ASSERT_EQ(b.images.size(), 1u);
  EXPECT_EQ(a.images[0].base64.get(), b.images[0].base64.get());  // shared, not copied
  // The decoded image is the card, pixel for pixel.
  std::string bytes = ev::base64_decode(*b.images[0].base64, b.images[0].name);
  auto img = pvm::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), b.images[0].name);
  EXPECT_EQ(img.width, 20);
  EXPECT_EQ(img.height, 12);
  EXPECT_EQ(img.rgb, card.rgb);
  EXPECT_EQ(b.images[0].name, "mini.tsv:3 image 1");

  // VLMEvalKit's ImageMCQDataset.build_prompt, and the Qwen3-VL variant.
  EXPECT_EQ(ev::build_prompt(b, ev::PromptStyle::Dataset),
            "Hint: Look\nclosely.\nQuestion: Which \"shape\"\tis it?\nOptions:\nA. cube\nB. sphere\nC. cone\n"
            "Please select the correct answer from the options above. \n");
  EXPECT_EQ(ev::build_prompt(a, ev::PromptStyle::Dataset),
            "Question: What color is the cube?\nOptions:\nA. red\nB. blue\nC. green\nD. yellow\n"
            "Please select the correct answer from the options above. \n");
  EXPECT_EQ(ev::build_prompt(a, ev::PromptStyle::Qwen3VL),
            "Question: What color is the cube?\nOptions:\nA. red\nB. blue\nC. green\nD. yellow\nAnswer with the option letter only.");
  EXPECT_EQ(a.option_texts(), (std::vector<std::string>{"red", "blue", "green", "yellow"}));
}

TEST(EvalData, TsvNumericColumnsPrintLikePandas) {
  const std::string b64 = ev::base64_encode(png_bytes(test_card(4, 4, 1)));
  std::string tsv = row({"index", "question", "A", "B", "C", "answer", "image"});
  tsv += row({"1", "How many?", "3", "5", "2", "A", b64});
  tsv += row({"2", "How many now?", "4", "6.5", "", "B", "1"});
  auto d = ev::parse_vlmeval_tsv(tsv, "n.tsv", ".");
  ASSERT_EQ(d.items.size(), 2u);
  // A: ints without gaps -> int64 ("3"); B: has 6.5 -> float64 ("5.0"); C: a gap -> float64 ("2.0").
  EXPECT_EQ(d.items[0].options[0].second, "3");
  EXPECT_EQ(d.items[0].options[1].second, "5.0");
  EXPECT_EQ(d.items[0].options[2].second, "2.0");
  EXPECT_EQ(d.items[1].options.size(), 2u);
  EXPECT_EQ(d.items[1].options[1].second, "6.5");
}

TEST(EvalData, TsvMalformedRowsNameTheirLine) {
  const std::string b64 = ev::base64_encode(png_bytes(test_card(4, 4, 1)));
  auto head = row({"index", "question", "A", "B", "answer", "image"});
  auto good = row({"1", "q", "x", "y", "A", b64});
  EXPECT_NE(error_of([&] { ev::parse_vlmeval_tsv(head + good + "2\tq\tx\tA\t" + b64 + "\n", "bad.tsv", "."); })
                .find("bad.tsv:3: row has 5 fields, the header has 6"),
            std::string::npos);
  // A quoted field that never closes: reported at the line it opened.
  EXPECT_NE(error_of([&] { ev::parse_vlmeval_tsv(head + good + good + "3\t\"q\n\nmore\tx\ty\tA\t1\n", "bad.tsv", "."); })
                .find("bad.tsv:4: quoted field never closed"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ev::parse_vlmeval_tsv(head + good + row({"2", "q", "x", "y", "C", "1"}), "bad.tsv", "."); })
                .find("bad.tsv:3: answer 'C' is not one of the options AB"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ev::parse_vlmeval_tsv(head + good + row({"2", "q", "x", "y", "B", "77"}), "bad.tsv", "."); })
                .find("bad.tsv:3: image '77' is neither base64 data nor the index of another row"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ev::parse_vlmeval_tsv(head + good + good, "bad.tsv", "."); }).find("bad.tsv:3: index 1 appears twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ev::parse_vlmeval_tsv(row({"index", "question", "image"}) + good, "bad.tsv", "."); })
                .find("bad.tsv:1: no 'answer' column"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ev::load_eval_data("/nonexistent/x.tsv"); }).find("/nonexistent/x.tsv"), std::string::npos);
  EXPECT_NE(error_of([&] { ev::load_eval_data("/tmp/x.csv"); }).find("unknown data format"), std::string::npos);
}

// ---- JSONL ----

TEST(EvalData, JsonlOpenAnswers) {
  auto dir = pvm::testing::temp_dir("eval_jsonl");
  pvm::write_png(dir + "/a.png", test_card(8, 8, 2));
  std::filesystem::create_directories(dir + "/sub");
  pvm::write_png(dir + "/sub/b.png", test_card(8, 8, 3));
  write_file(dir + "/q.jsonl",
             "{\"question\": \"How many cubes?\", \"image\": \"a.png\", \"answer\": 3, \"category\": \"count\"}\n"
             "\n"
             "{\"id\": \"q2\", \"question\": \"Name it.\", \"images\": [\"a.png\", \"sub/b.png\"], \"answer\": \"red cube\"}\n");
  auto d = ev::load_eval_data(dir + "/q.jsonl");
  ASSERT_EQ(d.items.size(), 2u);
  EXPECT_TRUE(d.items[0].open);
  EXPECT_EQ(d.items[0].answer, "3");
  EXPECT_EQ(d.items[0].category, "count");
  EXPECT_EQ(d.items[0].key, "line 1");
  EXPECT_EQ(d.items[1].key, "q2");
  EXPECT_EQ(d.items[1].line, 3);
  ASSERT_EQ(d.items[1].images.size(), 2u);
  EXPECT_EQ(d.items[1].images[1].path, dir + "/sub/b.png");
  EXPECT_EQ(ev::build_prompt(d.items[0], ev::PromptStyle::Dataset), "How many cubes?");
  EXPECT_EQ(ev::build_prompt(d.items[0], ev::PromptStyle::Qwen3VL),
            "How many cubes?\nPlease answer concisely with short words or phrases when possible.");

  write_file(dir + "/bad1.jsonl", "{\"question\": \"q\", \"answer\": \"x\"}\n{\"question\": \"q\", \"answer\": }\n");
  EXPECT_NE(error_of([&] { ev::load_eval_data(dir + "/bad1.jsonl"); }).find("bad1.jsonl:2: bad JSON"), std::string::npos);
  write_file(dir + "/bad2.jsonl", "{\"question\": \"q\", \"image\": \"missing.png\", \"answer\": \"x\"}\n");
  EXPECT_NE(error_of([&] { ev::load_eval_data(dir + "/bad2.jsonl"); }).find("bad2.jsonl:1: image 'missing.png' not found"),
            std::string::npos);
  write_file(dir + "/bad3.jsonl", "{\"question\": \"q\", \"answer\": [1]}\n");
  EXPECT_NE(error_of([&] { ev::load_eval_data(dir + "/bad3.jsonl"); }).find("bad3.jsonl:1: \"answer\" must be"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// ---- end to end ----

// GPT-2 byte-level alphabet (how byte-level BPE vocabularies spell bytes).
std::string byte_token(int b) {
  auto printable = [](int x) { return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255); };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int x = 0; x < b; ++x) n += !printable(x);
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  return s;
}

// A byte-only tokenizer whose special tokens sit at tiny_config()'s ids.
void write_byte_tokenizer(const std::string& path) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  json added = json::array();
  const std::vector<std::pair<int, std::string>> sp{{300, "<|image_pad|>"}, {301, "<|video_pad|>"}, {302, "<|vision_start|>"},
                                                    {303, "<|vision_end|>"}, {304, "<|endoftext|>"}, {305, "<|im_end|>"},
                                                    {306, "<|im_start|>"}};
  for (auto& [id, s] : sp)
    added.push_back({{"id", id}, {"content", s}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"single_word", false}});
  json j = {{"version", "1.0"},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  write_file(path, j.dump());
}

using pvm::testing::pvm_bin;  // tests/cli_util.h

// Runs a command; returns (exit status, stdout); stderr goes to `err_file`.
std::pair<int, std::string> run(const std::string& cmd, const std::string& err_file) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>" + err_file).c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::vector<json> jsonl(const std::string& path) {
  std::vector<json> v;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

TEST(EvalEndToEnd, TsvRunReportAndResume) {
  const std::string bin = pvm_bin();
  if (bin.empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("eval_e2e");
  const std::string model = dir + "/model";
  auto cfg = pvm::testing::tiny_config();
  auto m = pvm::make_random_model(cfg, 11, torch::kFloat, torch::kCPU);
  pvm::save_model(m, model, torch::kFloat);
  write_byte_tokenizer(model + "/tokenizer.json");
  // Small images keep the prefill short: 32x32 -> one merged image token.
  write_file(model + "/preprocessor_config.json", R"({"size": {"shortest_edge": 1024, "longest_edge": 4096}})");

  // Four questions, two categories; rows 2-4 point at row 1's image or carry their own.
  std::string tsv = row(kHeader);
  const std::string b1 = ev::base64_encode(png_bytes(test_card(32, 32, 1))), b2 = ev::base64_encode(png_bytes(test_card(32, 32, 9)));
  tsv += row({"1", "Color of the cube?", "nan", "red", "blue", "green", "yellow", "A", "color", "attr", b1, "dev"});
  tsv += row({"2", "Shape on the left?", "Look left.", "cube", "sphere", "cone", "nan", "B", "shape", "attr", "1", "dev"});
  tsv += row({"3", "Color of the sphere?", "nan", "red", "blue", "green", "yellow", "C", "color", "attr", b2, "dev"});
  tsv += row({"4", "How many objects?", "nan", "1", "2", "3", "4", "D", "count", "reason", "3", "dev"});
  write_file(dir + "/mini.tsv", tsv);

  const std::string log = dir + "/log.jsonl", err = dir + "/err.txt";
  const std::string base = bin + " eval --data " + dir + "/mini.tsv --model " + model +
                           " --device cpu --dtype f32 --max-new-tokens 6 --json --quiet --out " + log;
  auto [rc1, out1] = run(base + " --limit 2", err);
  ASSERT_EQ(rc1, 0) << read_file(err);
  json rep1 = json::parse(out1);
  EXPECT_EQ(rep1["scoring"], "rule-only");
  EXPECT_EQ(rep1["items"], 2);
  EXPECT_EQ(rep1["done"], 2);
  EXPECT_TRUE(rep1["complete"].get<bool>());
  auto recs1 = jsonl(log);
  ASSERT_EQ(recs1.size(), 3u);  // settings line + 2 items
  EXPECT_EQ(recs1[0]["pvm_eval"], 1);
  const std::string first_part = read_file(log);

  // Without --resume an existing log is refused.
  auto [rc_exists, out_exists] = run(base, err);
  EXPECT_NE(rc_exists, 0);
  EXPECT_NE(read_file(err).find("already exists"), std::string::npos) << read_file(err);

  // --resume completes the rest and keeps the first two records as they were.
  auto [rc2, out2] = run(base + " --resume", err);
  ASSERT_EQ(rc2, 0) << read_file(err);
  const std::string full = read_file(log);
  ASSERT_GE(full.size(), first_part.size());
  EXPECT_EQ(full.substr(0, first_part.size()), first_part);
  auto recs = jsonl(log);
  ASSERT_EQ(recs.size(), 5u);
  std::set<std::string> keys;
  auto data = ev::parse_vlmeval_tsv(tsv, "mini.tsv", dir);
  for (size_t k = 1; k < recs.size(); ++k) {
    const auto& r = recs[k];
    keys.insert(r["index"].get<std::string>());
    EXPECT_EQ(r["run"], 0);
    const auto& item = data.items[std::stoi(r["index"].get<std::string>()) - 1];
    EXPECT_EQ(r["prompt"], ev::build_prompt(item, ev::PromptStyle::Dataset));
    ASSERT_TRUE(r["output"].is_string());
    EXPECT_LE(r["tokens"].get<int>(), 6);
    // The record's verdict is the extractor's verdict on the recorded output.
    auto c = pvm::answers::extract_choice(r["output"].get<std::string>(), item.option_texts());
    EXPECT_EQ(r["kind"], pvm::answers::kind_name(c.kind));
    EXPECT_EQ(r["how"], c.how);
    EXPECT_EQ(r["correct"].get<bool>(), c.kind == pvm::answers::ChoiceKind::Letter && std::string(1, c.letter) == item.answer);
  }
  EXPECT_EQ(keys, (std::set<std::string>{"1", "2", "3", "4"}));

  json rep = json::parse(out2);
  EXPECT_EQ(rep["items"], 4);
  EXPECT_EQ(rep["done"], 4);
  EXPECT_TRUE(rep["complete"].get<bool>());
  EXPECT_EQ(rep["overall"]["n"], 4);
  long long correct = 0, refusals = 0, unextracted = 0;
  for (size_t k = 1; k < recs.size(); ++k) {
    correct += recs[k]["correct"].get<bool>();
    refusals += recs[k]["kind"] == "refusal";
    unextracted += recs[k]["kind"] == "none" || recs[k]["kind"] == "ambiguous";
  }
  EXPECT_EQ(rep["overall"]["correct"], correct);
  EXPECT_DOUBLE_EQ(rep["overall"]["accuracy"].get<double>(), correct / 4.0);
  EXPECT_EQ(rep["overall"]["refusals"], refusals);
  EXPECT_EQ(rep["overall"]["unextracted"], unextracted);
  EXPECT_EQ(rep["by_category"].size(), 3u);
  EXPECT_EQ(rep["by_category"]["color"]["n"], 2);
  EXPECT_EQ(rep["by_l2_category"]["attr"]["n"], 3);
  ASSERT_EQ(rep["by_length"].size(), 4u);
  EXPECT_EQ(rep["by_length"]["<64"]["n"], 4);  // 6 new tokens at most
  EXPECT_EQ(rep["by_length"][">1024"]["n"], 0);

  // Resuming a finished log with other settings is refused (the answers would differ).
  auto [rc3, out3] = run(base + " --resume --temperature 0.7", err);
  EXPECT_NE(rc3, 0);
  EXPECT_NE(read_file(err).find("temperature"), std::string::npos) << read_file(err);

  // A torn last line (a crash mid-write) is dropped and that item redone.
  {
    std::string t = read_file(log);
    size_t cut = t.rfind('\n', t.size() - 2);
    write_file(log, t.substr(0, cut + 1) + "{\"index\": \"4\", \"ru");
  }
  auto [rc4, out4] = run(base + " --resume", err);
  ASSERT_EQ(rc4, 0) << read_file(err);
  EXPECT_EQ(jsonl(log).size(), 5u);
  EXPECT_EQ(json::parse(out4)["done"], 4);
  std::filesystem::remove_all(dir);
}

TEST(EvalEndToEnd, RunsGiveMeanAndSpread) {
  const std::string bin = pvm_bin();
  if (bin.empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("eval_runs");
  const std::string model = dir + "/model";
  auto m = pvm::make_random_model(pvm::testing::tiny_config(), 12, torch::kFloat, torch::kCPU);
  pvm::save_model(m, model, torch::kFloat);
  write_byte_tokenizer(model + "/tokenizer.json");
  write_file(model + "/preprocessor_config.json", R"({"size": {"shortest_edge": 1024, "longest_edge": 4096}})");
  pvm::write_png(dir + "/a.png", test_card(32, 32, 4));
  write_file(dir + "/q.jsonl", "{\"question\": \"How many?\", \"image\": \"a.png\", \"answer\": 3, \"category\": \"count\"}\n"
                               "{\"question\": \"Color?\", \"image\": \"a.png\", \"answer\": \"red\"}\n");
  const std::string err = dir + "/err.txt", log = dir + "/log.jsonl";
  auto [rc, out] = run(bin + " eval --data " + dir + "/q.jsonl --model " + model +
                           " --device cpu --dtype f32 --max-new-tokens 5 --runs 3 --temperature 1.0 --seed 7 --json --quiet --out " + log,
                       err);
  ASSERT_EQ(rc, 0) << read_file(err);
  json rep = json::parse(out);
  EXPECT_EQ(rep["runs"], 3);
  EXPECT_EQ(rep["done"], 6);
  EXPECT_EQ(rep["overall"]["accuracy_per_run"].size(), 3u);
  EXPECT_FALSE(rep["overall"]["accuracy_std"].is_null());
  auto recs = jsonl(log);
  ASSERT_EQ(recs.size(), 7u);
  for (size_t k = 1; k < recs.size(); ++k) {
    EXPECT_EQ(recs[k]["how"], "open");
    EXPECT_EQ(recs[k]["correct"].get<bool>(), pvm::answers::open_match(recs[k]["output"], recs[k]["answer"]));
  }
  // Sampling differs between runs (seeded per run and item): not all three outputs of item 1 agree.
  std::set<std::string> outs;
  for (size_t k = 1; k < recs.size(); ++k)
    if (recs[k]["index"] == "line 1") outs.insert(recs[k]["output"].get<std::string>());
  EXPECT_GT(outs.size(), 1u);
  std::filesystem::remove_all(dir);
}

}  // namespace

// A file with no usable item is an error naming it (exit 1), not an empty report (n=0, exit 0).
TEST(EvalEndToEnd, NoUsableItemIsAnErrorNamingTheFile) {
  const std::string bin = pvm_bin();
  if (bin.empty()) GTEST_SKIP() << "pvm binary not found next to the test (set PVM_BIN)";
  auto dir = pvm::testing::temp_dir("eval_empty");
  write_file(dir + "/empty.jsonl", "");
  write_file(dir + "/header_only.tsv", row(kHeader));
  // Every row without an image: VLMEvalKit skips such rows, which leaves nothing.
  write_file(dir + "/no_images.tsv",
             row(kHeader) + row({"1", "Q?", "nan", "a", "b", "nan", "nan", "A", "c", "l2", "", "dev"}));
  for (const char* f : {"empty.jsonl", "header_only.tsv", "no_images.tsv"}) {
    const std::string path = dir + "/" + f, err = dir + "/err.txt";
    auto [rc, out] = run(bin + " eval --data " + path + " --model " + dir + "/no_model --json --quiet", err);
    EXPECT_EQ(rc, 1) << f << ": " << out;
    EXPECT_NE(read_file(err).find(path), std::string::npos) << f << ": " << read_file(err);
    EXPECT_EQ(out.find("\"n\""), std::string::npos) << f << ": " << out;
  }
}
