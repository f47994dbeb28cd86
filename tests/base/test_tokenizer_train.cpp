// Byte-level BPE training (engine/base/tokenizer_train.h): the written tokenizer.json loads with
// pvm::Tokenizer, round-trips any UTF-8, compresses training-like text, is deterministic, works with
// the chat template, agrees with the trainer's own segmentation and with an independent
// implementation (Hugging Face `tokenizers` through $PVM_PYTHON), and bad input is a pvm::Error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/base/base64.h"
#include "engine/base/chat_template.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/tokenizer.h"
#include "engine/base/tokenizer_text.h"
#include "engine/base/tokenizer_train.h"
#include "engine/base/version.h"
#include "tests/tokenizer/qwen_fixture.h"

using pvm::TokenizerTrainOptions;
using pvm::TokenizerTrainResult;

namespace {

// A small stand-in for the scenes world's texts: long object-by-object descriptions and QA with
// <think>/<answer>. Deterministic for a seed (mt19937 output used directly, so every standard
// library gives the same text).
std::vector<std::string> scene_like_texts(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& { return v[rng() % v.size()]; };
  const std::vector<std::string> colours = {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"};
  const std::vector<std::string> shapes = {"circle", "square", "triangle", "star", "hexagon", "diamond", "cross"};
  const std::vector<std::string> sizes = {"small", "medium", "large"};
  const std::vector<std::string> rows = {"top", "upper middle", "lower middle", "bottom"};
  const std::vector<std::string> cols = {"left", "centre left", "centre right", "right"};
  const std::vector<std::string> rel = {"to the left of", "to the right of", "above", "below"};
  // Names made of syllables give an open vocabulary, so that 758 merges are reachable.
  const std::vector<std::string> syl = {"ka", "lo", "mi", "ren", "tu", "sa", "bel", "quo", "dri", "fen",
                                        "ix", "po", "gar", "vy", "nel", "os", "zu", "hap", "tri", "we"};
  auto name = [&] {
    std::string n;
    for (int k = 0, len = 2 + static_cast<int>(rng() % 2); k < len; ++k) n += syl[rng() % syl.size()];
    n[0] = static_cast<char>(n[0] - 32);
    return n;
  };
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    const int objects = 4 + static_cast<int>(rng() % 13);
    std::string d = "The picture shows " + std::to_string(objects) + " objects on a grey background.";
    for (int k = 1; k <= objects; ++k) {
      std::string c = pick(colours), s = pick(shapes);
      d += " Object " + std::to_string(k) + ", called " + name() + ", is a " + pick(sizes) + " " + c + " " + s + " in the " + pick(rows) +
           " row, " + pick(cols) + " column";
      if (k > 1) d += ", " + pick(rel) + " object " + std::to_string(k - 1);
      d += ".";
      if (rng() % 4 == 0) d += " It carries the digit " + std::to_string(rng() % 10) + ".";
    }
    out.push_back(d);
    const std::string c = pick(colours), s = pick(shapes);
    const int count = static_cast<int>(rng() % 5);
    out.push_back("How many " + c + " " + s + "s are there?\n<think>I look at every object and count the " + c + " " +
                  s + "s: there are " + std::to_string(count) + ".</think><answer>" + std::to_string(count) +
                  "</answer>");
  }
  return out;
}

TokenizerTrainResult train(int64_t vocab, const std::vector<std::string>& texts, int64_t min_freq = 2) {
  TokenizerTrainOptions opt;
  opt.vocab_size = vocab;
  opt.min_frequency = min_freq;
  return pvm::train_bpe_tokenizer(texts, opt);
}

pvm::Tokenizer load(const TokenizerTrainResult& r) { return pvm::Tokenizer::from_json(r.tokenizer_json, "trained"); }

// The trained 1024 tokenizer on 300 scenes, shared by several tests (trained once).
struct Shared {
  std::vector<std::string> texts;
  TokenizerTrainResult result;
  std::unique_ptr<pvm::Tokenizer> tok;
};
const Shared& shared() {
  static const Shared s = [] {
    Shared x;
    x.texts = scene_like_texts(300, 7);
    x.result = train(1024, x.texts);
    x.tok = std::make_unique<pvm::Tokenizer>(load(x.result));
    return x;
  }();
  return s;
}

std::string temp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "pvm_tok_train_" + name + "_" + std::to_string(::getpid());
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot create " << d;
  return d;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const pvm::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Strings that exercise every branch of the pre-tokenizer and the byte fallback.
std::vector<std::string> tricky_strings() {
  return {"Hello world", "it's IT'S we'LL they've I'd you'RE 'ſ 's",
          "a\n\nb", "  \n  x", "x   y", "tab\t\tz \t", "trailing   ", "12345 and 3.14159",
          "\xC2\xA1Hola! \xC2\xBF" "Qu\xC3\xA9?", "x.y,z;  ...  --> <=>", "\r\n\r\nline\r\n",
          "nbsp\xC2\xA0here", "nel\xC2\x85there", "bom\xEF\xBB\xBFinside", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"
          "\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",
          "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!", "e\xCC\x81 vs \xC3\xA9", "\xC7\x84 title",
          "don't?!\n\n", "$x_1 = y^{2}$", "    indented code();\n        deeper\n", " a", "  b", "\t\n\t",
          "mixedCASE123abc", "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9\x85",
          "\xE2\x85\xA0\xE2\x85\xA1 roman \xC2\xBD half", "", " ", "\n"};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST(TokenizerTrain, LoadsWithRequestedVocabAndIdLayout) {
  for (int64_t n : {266, 300, 1024}) {
    TokenizerTrainResult r = train(n, shared().texts);
    pvm::Tokenizer tok = load(r);
    EXPECT_EQ(static_cast<int64_t>(tok.vocab_size()), n);
    EXPECT_EQ(r.vocab_size, n);
    EXPECT_EQ(r.merges, n - 266);
    // 256 single-byte tokens first, one per byte value.
    std::vector<int> seen(256, 0);
    for (int32_t id = 0; id < 256; ++id) {
      std::string b = tok.token_bytes(id);
      ASSERT_EQ(b.size(), 1u) << id;
      ++seen[static_cast<unsigned char>(b[0])];
    }
    for (int b = 0; b < 256; ++b) EXPECT_EQ(seen[b], 1) << b;
    // Merged tokens are multi-byte; added tokens take the last 10 ids, in Qwen3-VL's order.
    for (int32_t id = 256; id < n - 10; ++id) EXPECT_GE(tok.token_bytes(id).size(), 2u) << id;
    const std::vector<std::string> added = {"<|endoftext|>",  "<|im_start|>", "<|im_end|>",  "<|vision_start|>",
                                            "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
                                            "<think>",        "</think>"};
    for (size_t i = 0; i < added.size(); ++i) {
      int32_t id = static_cast<int32_t>(n - 10 + static_cast<int64_t>(i));
      EXPECT_EQ(tok.token_id(added[i]), id) << added[i];
      EXPECT_EQ(tok.is_special(id), i < 8) << added[i];  // <think>, </think> are not special (as in Qwen3)
      EXPECT_EQ(tok.encode(added[i]), std::vector<int32_t>{id}) << added[i];
    }
  }
}

TEST(TokenizerTrain, RoundTripsArbitraryUtf8) {
  const pvm::Tokenizer& tok = *shared().tok;
  std::vector<std::string> cases = tricky_strings();
  for (const std::string& s : scene_like_texts(20, 99)) cases.push_back(s);  // unseen scenes
  cases.push_back("Quantum chromodynamics \xE2\x80\x94 never seen in training \xE2\x9C\x93");
  // Random valid UTF-8 over the whole code space (no surrogates): nothing is lost.
  std::mt19937 rng(5);
  for (int k = 0; k < 200; ++k) {
    std::string s;
    int len = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) {
      uint32_t cp;
      switch (rng() % 4) {
        case 0: cp = rng() % 0x80; break;
        case 1: cp = 0x80 + rng() % (0x800 - 0x80); break;
        case 2: cp = 0x800 + rng() % (0x10000 - 0x800); break;
        default: cp = 0x10000 + rng() % (0x110000 - 0x10000); break;
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      pvm::text::utf8_append(s, cp);
    }
    cases.push_back(s);
  }
  for (const std::string& s : cases) {
    std::vector<int32_t> ids = tok.encode(s);
    for (int32_t id : ids) ASSERT_LT(id, 1024);
    EXPECT_EQ(tok.decode(ids), pvm::text::nfc(s)) << s;
  }
  // Invalid UTF-8 comes back repaired (U+FFFD), as the tokenizer documents.
  std::string bad = "ok\xFF\xC3(end";
  EXPECT_EQ(tok.decode(tok.encode(bad)), pvm::text::utf8_sanitize(bad));
}

TEST(TokenizerTrain, MergesCompressTrainingLikeText) {
  const pvm::Tokenizer& tok = *shared().tok;
  size_t bytes = 0, tokens = 0;
  for (const std::string& s : scene_like_texts(40, 12345)) {  // held out: another seed
    bytes += s.size();
    tokens += tok.encode(s).size();
  }
  const double bytes_per_token = static_cast<double>(bytes) / static_cast<double>(tokens);
  // Byte tokens alone give ~1.0; 758 merges turn the fixed words into single tokens (" circle"),
  // only the made-up names and digits stay in pieces: measured 3.87 bytes/token.
  EXPECT_GT(bytes_per_token, 3.0) << bytes << " bytes -> " << tokens << " tokens";
  // The trainer's count over its own corpus is consistent with that.
  const TokenizerTrainResult& r = shared().result;
  EXPECT_GT(static_cast<double>(r.text_bytes) / static_cast<double>(r.tokens), 3.0);
}

TEST(TokenizerTrain, EncodingReproducesTheTrainersSegmentation) {
  // Encoding every training text with pvm::Tokenizer gives exactly as many BPE tokens as the
  // trainer's final segmentation of the corpus (merge order = rank, HF semantics).
  const Shared& s = shared();
  const pvm::Tokenizer& tok = *s.tok;
  int64_t bpe_tokens = 0;
  for (const std::string& t : s.texts)
    for (int32_t id : tok.encode(t))
      if (id < 1014) ++bpe_tokens;  // added tokens are cut out before training
  EXPECT_EQ(bpe_tokens, s.result.tokens);
  // A second vocabulary size, with min_frequency 1 so that rare pairs merge too.
  std::vector<std::string> small(s.texts.begin(), s.texts.begin() + 30);
  TokenizerTrainResult r = train(700, small, 1);
  pvm::Tokenizer t2 = load(r);
  int64_t n2 = 0;
  for (const std::string& t : small)
    for (int32_t id : t2.encode(t))
      if (id < 690) ++n2;
  EXPECT_EQ(n2, r.tokens);
}

TEST(TokenizerTrain, PreTokenizerSplitsLikeTheTokenizer) {
  // Train to exhaustion on the tricky strings: each piece becomes (nearly always) one token, so a
  // split that differed from pvm::Tokenizer's would show as different ids.
  std::vector<std::string> texts = tricky_strings();
  TokenizerTrainOptions opt;
  opt.vocab_size = 4096;
  opt.min_frequency = 1;
  opt.allow_smaller = true;
  TokenizerTrainResult r = pvm::train_bpe_tokenizer(texts, opt);
  EXPECT_LT(r.vocab_size, 4096);
  pvm::Tokenizer tok = load(r);
  size_t pieces = 0, single = 0;
  for (const std::string& s : texts) {
    std::string n = pvm::text::nfc(s);
    std::vector<int32_t> joined;
    std::string rebuilt;
    for (std::string_view p : pvm::pretokenize_qwen2(n)) {
      rebuilt += p;
      std::vector<int32_t> ids = tok.encode(p);
      ++pieces;
      if (ids.size() == 1) ++single;
      joined.insert(joined.end(), ids.begin(), ids.end());
    }
    EXPECT_EQ(rebuilt, n);
    EXPECT_EQ(tok.encode(s), joined) << s;
  }
  EXPECT_GE(single * 10, pieces * 9) << single << " of " << pieces;
  // Known splits (Qwen2 regex): contractions, a leading space joins the word, digits one by one.
  auto split = [](const std::string& s) {
    std::vector<std::string> v;
    for (auto p : pvm::pretokenize_qwen2(s)) v.emplace_back(p);
    return v;
  };
  EXPECT_EQ(split("it's 12 cats!!\n\n"), (std::vector<std::string>{"it", "'s", " ", "1", "2", " cats", "!!\n\n"}));
  EXPECT_EQ(split("a   b"), (std::vector<std::string>{"a", "  ", " b"}));
}

TEST(TokenizerTrain, DeterministicAndOrderIndependent) {
  std::vector<std::string> texts = scene_like_texts(60, 3);
  TokenizerTrainResult a = train(512, texts);
  TokenizerTrainResult b = train(512, texts);
  EXPECT_EQ(a.tokenizer_json, b.tokenizer_json);
  EXPECT_EQ(a.tokenizer_config_json, b.tokenizer_config_json);
  std::vector<std::string> reversed(texts.rbegin(), texts.rend());
  EXPECT_EQ(train(512, reversed).tokenizer_json, a.tokenizer_json);
  // The files on disk are byte-identical too.
  std::string d1 = temp_dir("det1"), d2 = temp_dir("det2");
  pvm::write_tokenizer_files(a, d1);
  pvm::write_tokenizer_files(b, d2);
  for (const char* f : {"/tokenizer.json", "/tokenizer_config.json"})
    EXPECT_EQ(pvm::read_file_to_string(d1 + f), pvm::read_file_to_string(d2 + f)) << f;
  EXPECT_EQ(pvm::read_file_to_string(d1 + "/tokenizer.json"), a.tokenizer_json);
  // A different corpus gives a different tokenizer (the test above is not vacuous).
  EXPECT_NE(train(512, scene_like_texts(60, 4)).tokenizer_json, a.tokenizer_json);
}

TEST(TokenizerTrain, ConfigFileDescribesTheSpecialTokens) {
  auto cfg = nlohmann::json::parse(shared().result.tokenizer_config_json);
  EXPECT_EQ(cfg["tokenizer_class"], "Qwen2Tokenizer");
  EXPECT_EQ(cfg["eos_token"], "<|im_end|>");
  EXPECT_EQ(cfg["pad_token"], "<|endoftext|>");
  EXPECT_TRUE(cfg["bos_token"].is_null());
  EXPECT_EQ(cfg["added_tokens_decoder"]["1020"]["content"], "<|image_pad|>");
  EXPECT_EQ(cfg["added_tokens_decoder"]["1022"]["special"], false);
  auto j = nlohmann::json::parse(shared().result.tokenizer_json);
  EXPECT_EQ(j["model"]["vocab"].size(), 1014u);
  EXPECT_EQ(j["model"]["merges"].size(), 758u);
  EXPECT_EQ(j["added_tokens"].size(), 10u);
}

TEST(TokenizerTrain, ChatTemplateWithImage) {
  const pvm::Tokenizer& tok = *shared().tok;
  const int32_t im_start = tok.token_id("<|im_start|>"), im_end = tok.token_id("<|im_end|>");
  const int32_t vs = tok.token_id("<|vision_start|>"), ve = tok.token_id("<|vision_end|>");
  const int32_t pad = tok.token_id("<|image_pad|>"), eot = tok.token_id("<|endoftext|>");
  pvm::ChatMessage user;
  user.role = "user";
  user.content = {pvm::ChatPart::make_image(64), pvm::ChatPart::make_text("Describe every object.")};
  std::vector<pvm::ChatMessage> msgs = {pvm::ChatMessage::text("system", "You are a blind painter's eyes."), user};
  pvm::ChatEncoding enc = pvm::encode_chat(tok, msgs);
  const auto& ids = enc.ids;
  ASSERT_EQ(enc.images.size(), 1u);
  const size_t p = enc.images[0].first_pad;
  EXPECT_EQ(enc.images[0].n_pads, 64);
  ASSERT_GT(p, 0u);
  ASSERT_LT(p + 64, ids.size());
  EXPECT_EQ(ids[p - 1], vs);
  for (size_t i = p; i < p + 64; ++i) ASSERT_EQ(ids[i], pad) << i;
  EXPECT_EQ(ids[p + 64], ve);
  // <|im_start|>system\n ... <|im_end|>\n<|im_start|>user\n<vision> text <|im_end|>\n<|im_start|>assistant\n
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 2);
  EXPECT_EQ(tok.decode(std::vector<int32_t>(ids.begin() + 1, ids.begin() + p - 1)),
            "system\nYou are a blind painter's eyes.<|im_end|>\n<|im_start|>user\n");
  EXPECT_EQ(tok.decode(std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(p) + 65, ids.end())),
            "Describe every object.<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(enc.stop_ids, (std::vector<int32_t>{im_end, eot}));
  // An assistant answer in the QA format: the tags are single tokens; skip_special keeps them.
  std::vector<int32_t> a = tok.encode("<think>two red stars</think><answer>2</answer>");
  EXPECT_EQ(a.front(), tok.token_id("<think>"));
  EXPECT_EQ(tok.decode(a, /*skip_special=*/true), "<think>two red stars</think><answer>2</answer>");
}

TEST(TokenizerTrain, BadOptionsAndInputAreErrors) {
  const std::vector<std::string> texts = scene_like_texts(5, 1);
  std::string e = error_of([&] { train(265, texts); });
  EXPECT_NE(e.find("vocab size 265"), std::string::npos) << e;
  EXPECT_NE(e.find("266"), std::string::npos) << e;
  e = error_of([&] { train(1024, {}); });
  EXPECT_NE(e.find("no training text"), std::string::npos) << e;
  e = error_of([&] { train(1024, {"", "<|im_start|><|im_end|>"}); });
  EXPECT_NE(e.find("no training text"), std::string::npos) << e;
  e = error_of([&] { train(1024, {"ab ab ab"}); });  // too few pairs for 758 merges
  EXPECT_NE(e.find("yields only"), std::string::npos) << e;
  e = error_of([&] { train(1024, texts, 0); });
  EXPECT_NE(e.find("min frequency"), std::string::npos) << e;
  TokenizerTrainOptions dup;
  dup.added_tokens.push_back(dup.added_tokens[0]);
  e = error_of([&] { pvm::BpeTrainer t(dup); });
  EXPECT_NE(e.find("listed twice"), std::string::npos) << e;

  const std::string d = temp_dir("bad");
  const std::string empty = d + "/empty.jsonl";
  write_file(empty, "\n\n");
  e = error_of([&] { pvm::read_training_texts(empty); });
  EXPECT_NE(e.find(empty + ": no training text"), std::string::npos) << e;
  e = error_of([&] { pvm::read_training_texts(d + "/missing.jsonl"); });
  EXPECT_NE(e.find(d + "/missing.jsonl"), std::string::npos) << e;
  const std::string bad = d + "/bad.jsonl";
  write_file(bad, "{\"text\": \"fine\"}\n\n{\"text\": \"trunc\n");
  e = error_of([&] { pvm::read_training_texts(bad); });
  EXPECT_NE(e.find(bad + ":3: not valid JSON"), std::string::npos) << e;
  write_file(bad, "{\"text\": \"fine\"}\n{\"prompt\": 3}\n");
  e = error_of([&] { pvm::read_training_texts(bad); });
  EXPECT_NE(e.find(bad + ":2: \"prompt\" must be"), std::string::npos) << e;
  write_file(bad, "[1, 2]\n");
  e = error_of([&] { pvm::read_training_texts(bad); });
  EXPECT_NE(e.find(bad + ":1: expected a JSON object"), std::string::npos) << e;
  write_file(bad, "{\"images\": [\"a.png\"]}\n");
  e = error_of([&] { pvm::read_training_texts(bad); });
  EXPECT_NE(e.find(bad + ":1: no text field"), std::string::npos) << e;
  write_file(bad, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}\n");
  e = error_of([&] { pvm::read_training_texts(bad); });
  EXPECT_NE(e.find(bad + ":1: messages[0].content must be"), std::string::npos) << e;
  // An output path that is a file.
  write_file(d + "/file", "x");
  e = error_of([&] { pvm::write_tokenizer_files(train(300, texts), d + "/file"); });
  EXPECT_NE(e.find(d + "/file"), std::string::npos) << e;
}

TEST(TokenizerTrain, ReadsTextsFromJsonlAndTextFiles) {
  const std::string d = temp_dir("read");
  const std::string jl = d + "/data.jsonl";
  write_file(jl,
             "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": "
             "\"Describe.\"}]}, {\"role\": \"assistant\", \"content\": \"A red star.\"}], \"images\": [\"a.png\"]}\n"
             "\r\n"
             "{\"prompt\": \"<image>How many?\", \"solution\": \"<answer>3</answer>\", \"images\": [\"b.png\"]}\n"
             "{\"text\": \"plain\\ntext\"}");
  std::vector<std::string> t = pvm::read_training_texts(jl);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0],
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>\n"
            "<|im_start|>assistant\nA red star.<|im_end|>\n");
  EXPECT_EQ(t[1],
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t[2], "<answer>3</answer>");
  EXPECT_EQ(t[3], "plain\ntext");
  const std::string txt = d + "/data.txt";
  write_file(txt, "first line\r\n\nsecond {\"not\": json}\n");
  EXPECT_EQ(pvm::read_training_texts(txt), (std::vector<std::string>{"first line", "second {\"not\": json}"}));
}

TEST(TokenizerTrain, TrainsTenMegabytesInSeconds) {
  // ~10 MB of scene-like text: the whole pipeline (split + count + 758 merges) stays fast.
  std::vector<std::string> texts = scene_like_texts(6000, 11);
  size_t bytes = 0;
  for (auto& s : texts) bytes += s.size();
  ASSERT_GT(bytes, 5u << 20);
  auto t0 = std::chrono::steady_clock::now();
  TokenizerTrainResult r = train(1024, texts);
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.vocab_size, 1024);
  EXPECT_LT(sec, 20.0) << bytes << " bytes";  // generous: 2 shared cores; typically ~1-2 s
  std::printf("[ info ] trained on %zu bytes in %.2f s (merges %.3f s)\n", bytes, sec, r.train_seconds);
}

TEST(TokenizerTrain, AgreesWithHfTokenizers) {
  PVM_REQUIRE_REFERENCE_PYTHON(python);
  const Shared& s = shared();
  const std::string d = temp_dir("hf");
  pvm::write_tokenizer_files(s.result, d);
  std::vector<std::string> cases = tricky_strings();
  for (const std::string& t : scene_like_texts(30, 777)) cases.push_back(t);
  cases.push_back("<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>What?<|im_end|>\n");
  cases.push_back("<think>a</think><answer>b</answer> \xF0\x9F\x8E\xA8 \xE8\x89\xB2");
  std::string in;
  for (const std::string& t : cases) in += "{\"b64\":\"" + pvm::base64_encode(t) + "\"}\n";
  write_file(d + "/texts.jsonl", in);
  const std::string script = pvm_test::tokenizer_data_dir() + "/crosscheck_hf.py";
  const std::string cmd = "'" + python + "' '" + script + "' '" + d + "' '" + d + "/texts.jsonl' '" + d +
                          "/out.jsonl' > '" + d + "/log' 2>&1";
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << cmd << "\n" << pvm::read_file_to_string(d + "/log");
  std::vector<std::string> lines = pvm_test::read_lines(d + "/out.jsonl");
  ASSERT_EQ(lines.size(), cases.size());
  size_t total = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto j = nlohmann::json::parse(lines[i]);
    std::vector<int32_t> ref = j["ids"].get<std::vector<int32_t>>();
    total += ref.size();
    EXPECT_EQ(s.tok->encode(cases[i]), ref) << "case " << i << ": " << cases[i];
    EXPECT_EQ(s.tok->decode(ref), pvm_test::b64decode(j["dec_b64"].get<std::string>())) << "case " << i;
  }
  EXPECT_GT(total, 1000u);
}
