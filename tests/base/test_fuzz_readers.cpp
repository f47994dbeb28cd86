// Deterministic fuzzing of every reader of untrusted bytes: safetensors files, shard index.json,
// config.json, tokenizer.json and eval data (JSONL, TSV); the engine's readers (trainer state,
// train config, training data, preprocessor config) are fuzzed in tests/test_fuzz_engine_readers.cpp
// and the studio's session reader in tests/studio/test_session_robust.cpp. Whatever the input, a reader may only succeed or throw pvm::Error (one line,
// naming the file); any other exception fails the test, and a crash or out-of-bounds read aborts it
// (run this binary under -fsanitize=address,undefined to make the latter loud).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/base/config.h"
#include "engine/base/eval_data.h"
#include "engine/base/fs_util.h"
#include "engine/base/safetensors.h"
#include "engine/base/tokenizer.h"
#include "engine/base/version.h"
#include "tests/fuzz_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using pvm::DType;
using pvm::TensorView;
using namespace pvm::fuzz;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    // Thousands of small files: prefer tmpfs (ext4 flushes on every truncate-and-rewrite).
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : fs::temp_directory_path().string();
    std::string tmpl = base + "/pvm_fuzz_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void spit(const std::string& p, const std::string& bytes) {
  ::unlink(p.c_str());  // a fresh inode each time: no flush-on-truncate, no stale mapping reuse
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out;
}

// Open a file and, when it is accepted, check every invariant a loader relies on and read every byte.
void open_and_check(const std::string& p) {
  auto f = pvm::SafetensorsFile::open(p);
  uint64_t sum = 0;
  for (const auto& v : f->tensors()) {
    uint64_t need = 0;
    if (!pvm::tensor_nbytes(v.shape, v.dtype, &need) || need != v.nbytes || v.numel() < 0)
      throw std::logic_error("accepted tensor with inconsistent size: " + v.name);
    for (size_t i = 0; i < v.nbytes; ++i) sum += v.data[i];  // out of the mapping = crash
    if (f->find(v.name) != &v) throw std::logic_error("find() does not return the listed view");
    f->advise_done(v);
  }
  if (f->total_bytes() > f->file_size() - f->data_start())
    throw std::logic_error("tensors claim more bytes than the data section holds");
  volatile uint64_t sink = sum;
  (void)sink;
}

// A valid file with a bit of everything: metadata, several dtypes, a 0-d and a zero-size tensor.
std::vector<uint8_t> g_store;
std::vector<TensorView> sample_tensors() {
  g_store.assign(4096, 0);
  for (size_t i = 0; i < g_store.size(); ++i) g_store[i] = uint8_t(i * 37 + 11);
  return {{"model.visual.patch_embed.proj.weight", DType::BF16, {4, 3}, g_store.data(), 24},
          {"model.language_model.norm.weight", DType::F32, {5}, g_store.data() + 100, 20},
          {"scalar", DType::F64, {}, g_store.data() + 200, 8},
          {"empty", DType::I64, {0, 7}, g_store.data(), 0},
          {"mask", DType::BOOL, {3}, g_store.data() + 300, 3},
          {"ids", DType::I32, {2, 2}, g_store.data() + 400, 16}};
}

std::string valid_file_bytes(const TempDir& d) {
  std::string p = d.path + "/valid.safetensors";
  pvm::write_safetensors(p, sample_tensors(), {{"format", "pt"}, {"origin", "fuzz"}});
  return pvm::read_file_to_string(p);
}

}  // namespace

TEST(FuzzSafetensors, RandomBytes) {
  TempDir d;
  Rng r(0x5afe7e25);
  Outcomes o{"random bytes"};
  std::string p = d.path + "/r.safetensors";
  for (int it = 0; it < 3000; ++it) {
    std::string body;
    size_t n = r.below(200);
    bool jsonish = r.coin();
    for (size_t i = 0; i < n; ++i) body += jsonish ? kJsonAlphabet[r.below(kJsonAlphabet.size())] : char(r.below(256));
    std::string bytes;
    switch (r.below(3)) {
      case 0: bytes = body; break;                                  // no structure at all
      case 1: bytes = le64(r.below(n + 2)) + body; break;           // plausible header length
      default: bytes = le64(r.coin() ? r.next() : n) + body; break;  // exact or wild length
    }
    spit(p, bytes);
    o.run(bytes, [&] { open_and_check(p); }, p);
  }
  o.report();
}

TEST(FuzzSafetensors, TokenSoupHeaders) {
  TempDir d;
  Rng r(42);
  Outcomes o{"token soup headers"};
  std::string p = d.path + "/t.safetensors";
  for (int it = 0; it < 3000; ++it) {
    std::string h = token_soup(r);
    std::string data(r.below(40), '\x5a');
    std::string bytes = le64(h.size()) + h + data;
    spit(p, bytes);
    o.run(bytes, [&] { open_and_check(p); }, p);
  }
  o.report();
}

TEST(FuzzSafetensors, MutatedValidFile) {
  TempDir d;
  std::string good = valid_file_bytes(d);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | uint8_t(good[size_t(i)]);
  std::string header = good.substr(8, hlen), data = good.substr(8 + hlen);
  Rng r(7);
  Outcomes o{"mutated valid file"};
  std::string p = d.path + "/m.safetensors";
  for (int it = 0; it < 4000; ++it) {
    std::string bytes;
    switch (r.below(3)) {
      case 0:  // anything goes, over the whole file
        bytes = mutate_bytes(r, good, kJsonAlphabet);
        break;
      case 1: {  // header mutated, length kept consistent so the JSON checks are reached
        std::string h = mutate_bytes(r, header, kJsonAlphabet);
        bytes = le64(h.size()) + h + data;
        break;
      }
      default: {  // only the data section changes size
        std::string dd = data;
        dd.resize(r.below(data.size() + 16), '\x01');
        bytes = le64(header.size()) + header + dd;
      }
    }
    spit(p, bytes);
    o.run(bytes, [&] { open_and_check(p); }, p);
  }
  o.report();
  EXPECT_GT(o.ok, 0);
  EXPECT_GT(o.errors, 1000);
}

TEST(FuzzSafetensors, StructuredHeaderMutations) {
  TempDir d;
  std::string good = valid_file_bytes(d);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | uint8_t(good[size_t(i)]);
  json header = json::parse(good.substr(8, hlen));
  std::string data = good.substr(8 + hlen);
  Rng r(1234);
  Outcomes o{"structured header mutations"};
  std::string p = d.path + "/s.safetensors";
  for (int it = 0; it < 3000; ++it) {
    json h = header;
    int muts = 1 + int(r.below(3));
    for (int k = 0; k < muts; ++k) mutate_json(r, h);
    std::string text = h.dump();
    if (r.coin(10)) {  // duplicate a key textually (nlohmann cannot build duplicates)
      auto pos = text.find("\"scalar\"");
      if (pos != std::string::npos) text.replace(pos, 8, "\"mask\"");
    }
    std::string dd = r.coin(80) ? data : data.substr(0, r.below(data.size() + 1));
    std::string bytes = le64(text.size()) + text + dd;
    spit(p, bytes);
    o.run(bytes, [&] { open_and_check(p); }, p);
  }
  o.report();
  EXPECT_GT(o.ok, 100);
  EXPECT_GT(o.errors, 100);
}

TEST(FuzzSafetensors, ShardIndexAndCheckpoint) {
  TempDir d;
  auto ts = sample_tensors();
  auto written = pvm::write_sharded(d.path + "/ck", ts, 30);
  std::string index_path = written.back();
  std::string good = pvm::read_file_to_string(index_path);
  json gj = json::parse(good);
  ASSERT_EQ(pvm::Checkpoint::open(d.path + "/ck").size(), ts.size());
  Rng r(99);
  Outcomes parse{"index text"}, open{"checkpoint over index"};
  for (int it = 0; it < 3000; ++it) {
    std::string text;
    switch (r.below(3)) {
      case 0: text = mutate_bytes(r, good, kJsonAlphabet); break;
      case 1: text = token_soup(r); break;
      default: {
        json j = gj;
        mutate_json(r, j);
        text = j.dump();
      }
    }
    parse.run(text, [&] { pvm::parse_shard_index(text, "idx.json"); }, "idx.json");
    if (it % 3 == 0) {
      spit(index_path, text);
      open.run(text, [&] {
        auto ck = pvm::Checkpoint::open(d.path + "/ck");
        for (const auto& n : ck.names())
          if (!ck.find(n) || !ck.shard_of(n)) throw std::logic_error("listed tensor not found: " + n);
      });
    }
  }
  parse.report();
  open.report();
  EXPECT_GT(parse.ok, 0);
}

TEST(FuzzConfig, ParseConfigOnlyThrowsPvmError) {
  std::vector<std::string> seeds;
  for (const auto& name : pvm::preset_names()) seeds.push_back(pvm::config_to_json(pvm::preset_config(name)));
  {
    pvm::ModelConfig c = pvm::preset_config("qwen3-vl-2b");
    c.text.pvm_layers = {1, 5, 9};
    seeds.push_back(pvm::config_to_json(c));
  }
  for (const auto& s : seeds) ASSERT_NO_THROW(pvm::parse_config(s, "seed.json"));
  Rng r(2024);
  Outcomes o{"config.json"};
  for (int it = 0; it < 4000; ++it) {
    const std::string& seed = seeds[r.below(seeds.size())];
    std::string text;
    switch (r.below(4)) {
      case 0: text = mutate_bytes(r, seed, kJsonAlphabet); break;
      case 1: text = token_soup(r); break;
      default: {
        json j = json::parse(seed);
        int muts = 1 + int(r.below(3));
        for (int k = 0; k < muts; ++k) mutate_json(r, j);
        text = j.dump();
      }
    }
    o.run(text, [&] { pvm::parse_config(text, "fuzz/config.json"); }, "fuzz/config.json");
  }
  o.report();
  EXPECT_GT(o.ok, 0);
  EXPECT_GT(o.errors, 1000);
}

// ---- tokenizer.json ----
// Seeds: the default model's real 512-token BPE tokenizer (merges, added tokens, the Qwen2
// pre-tokenizer) and a byte-level one. An accepted tokenizer must also encode and decode.
TEST(FuzzTokenizer, FromJsonOnlyThrowsPvmError) {
  std::vector<std::string> seeds;
  const std::string real = pvm::source_dir() + "/assets/default-model/tokenizer.json";
  if (pvm::is_regular_file(real)) seeds.push_back(pvm::read_file_to_string(real));
  {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      uint32_t cp = uint32_t(b);
      auto printable = [](int x) { return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255); };
      if (!printable(b)) {
        int n = 0;
        for (int x = 0; x < b; ++x) n += !printable(x);
        cp = uint32_t(256 + n);
      }
      if (cp < 0x80) s += char(cp);
      else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
      vocab[s] = b;
    }
    vocab["he"] = 256, vocab["ll"] = 257, vocab["hell"] = 258;
    seeds.push_back(json{{"version", "1.0"},
                         {"added_tokens", json::array({{{"id", 259}, {"content", "<|im_end|>"}, {"special", true}}})},
                         {"normalizer", {{"type", "NFC"}}},
                         {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                         {"decoder", {{"type", "ByteLevel"}}},
                         {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "l l", json::array({"he", "ll"})}}}}}
                        .dump());
  }
  for (const auto& s : seeds) ASSERT_NO_THROW(pvm::Tokenizer::from_json(s, "seed.json"));
  Rng r(77);
  Outcomes o{"tokenizer.json"};
  const auto t0 = std::chrono::steady_clock::now();
  for (int it = 0; it < 1500; ++it) {
    const std::string& seed = seeds[r.below(seeds.size())];
    std::string text;
    switch (r.below(4)) {
      case 0: text = mutate_bytes(r, seed, kJsonAlphabet); break;
      case 1: text = token_soup(r); break;
      default: {
        json j = json::parse(seed);
        for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, j);
        text = j.dump();
      }
    }
    o.run(text, [&] {
      auto tok = pvm::Tokenizer::from_json(text, "fuzz/tokenizer.json");
      auto ids = tok.encode("hello world <|im_end|> \xff\xfe caf\xc3\xa9 12345");
      ids.push_back(1 << 30);  // an id without a token decodes to nothing
      (void)tok.decode(ids, r.coin());
    }, "fuzz/tokenizer.json");
  }
  std::printf("[fuzz] tokenizer: %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  o.report();
  EXPECT_GT(o.ok, 0);
  EXPECT_GT(o.errors, 300);
}

// ---- eval data: JSONL of open questions and VLMEvalKit TSVs ----
TEST(FuzzEvalData, JsonlAndTsvOnlyThrowPvmError) {
  const std::string jsonl =
      "{\"question\": \"What colour?\", \"image\": \"a.png\", \"answer\": \"red\", \"category\": \"c\", \"id\": 1}\n"
      "{\"question\": \"How many?\", \"images\": [\"a.png\", \"b.png\"], \"answer\": 3, \"id\": \"x\"}\n"
      "\n{\"question\": \"q\", \"answer\": \"a\"}\n";
  const std::string b64 = "iVBORw0KGgo" + std::string(90, 'A') + "=";  // (short cells are row indexes)
  const std::string tsv =
      "index\tquestion\thint\tA\tB\tC\tanswer\tcategory\timage\n"
      "0\tWhich?\tnan\tred\tblue\tNone\tA\tcol\t" + b64 + "\n"
      "1\t\"Quoted\ttab\"\t\tx\ty\tz\tB\tcol\t0\n"
      "2\tOpen?\t\t\t\t\tforty\tvqa\t" + b64 + "\n";
  ASSERT_NO_THROW(pvm::eval::parse_open_jsonl(jsonl, "seed.jsonl", ".", false));
  ASSERT_NO_THROW(pvm::eval::parse_vlmeval_tsv(tsv, "seed.tsv", "."));
  Rng r(31337);
  Outcomes oj{"eval JSONL"}, ot{"eval TSV"};
  const std::string tsv_alphabet = "\t\n\"\\abcAB0123456789=";
  for (int it = 0; it < 2000; ++it) {
    std::string text;
    if (r.coin()) {
      text = mutate_bytes(r, jsonl, kJsonAlphabet);
    } else {  // one line structurally mutated
      json j = json::parse(jsonl.substr(0, jsonl.find('\n')));
      for (int k = 0, n = 1 + int(r.below(3)); k < n; ++k) mutate_json(r, j);
      text = j.dump() + "\n" + jsonl.substr(jsonl.find('\n') + 1);
    }
    oj.run(text, [&] {
      auto d = pvm::eval::parse_open_jsonl(text, "fuzz/q.jsonl", ".", false);
      for (auto& item : d.items) (void)pvm::eval::build_prompt(item, pvm::eval::PromptStyle::Qwen3VL);
    }, "fuzz/q.jsonl");
    const std::string t = mutate_bytes(r, tsv, tsv_alphabet);
    ot.run(t, [&] {
      auto d = pvm::eval::parse_vlmeval_tsv(t, "fuzz/d.tsv", ".");
      for (auto& item : d.items) {
        (void)pvm::eval::build_prompt(item, pvm::eval::PromptStyle::Dataset);
        (void)item.option_texts();
      }
    }, "fuzz/d.tsv");
  }
  oj.report();
  ot.report();
  EXPECT_GT(oj.ok, 0);
  EXPECT_GT(oj.errors, 100);
  EXPECT_GT(ot.ok, 0);
}
