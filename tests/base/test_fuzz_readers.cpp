// Deterministic fuzzing of every reader of untrusted bytes: safetensors files, shard index.json,
// and config.json. Whatever the input, a reader may only succeed or throw pvm::Error (one line,
// naming the file); any other exception fails the test, and a crash or out-of-bounds read aborts it
// (run this binary under -fsanitize=address,undefined to make the latter loud).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/base/config.h"
#include "engine/base/fs_util.h"
#include "engine/base/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;
using pvm::DType;
using pvm::TensorView;

namespace {

// splitmix64: the same sequence on every platform and standard library.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool coin(int percent = 50) { return below(100) < uint64_t(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
};

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

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 300)) {
    if (c >= 0x20 && c < 0x7f) out += char(c);
    else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

// Tallies outcomes; anything but success or pvm::Error is a test failure (reported a few times).
struct Outcomes {
  const char* what;
  int ok = 0, errors = 0, bad = 0;
  void run(const std::string& input, const std::function<void()>& fn, const std::string& must_mention = "") {
    try {
      fn();
      ++ok;
    } catch (const pvm::Error& e) {
      ++errors;
      std::string msg = e.what();
      if (msg.find('\n') != std::string::npos || (!must_mention.empty() && msg.find(must_mention) == std::string::npos)) {
        if (++bad <= 5) ADD_FAILURE() << what << ": bad error message '" << printable(msg) << "'";
      }
    } catch (const std::exception& e) {
      if (++bad <= 5)
        ADD_FAILURE() << what << ": non-pvm exception '" << printable(e.what()) << "' for input '" << printable(input)
                      << "'";
    } catch (...) {
      if (++bad <= 5) ADD_FAILURE() << what << ": unknown exception for input '" << printable(input) << "'";
    }
  }
  void report() const {
    std::printf("[fuzz] %-28s ok=%d pvm::Error=%d other=%d\n", what, ok, errors, bad);
    EXPECT_EQ(bad, 0) << what;
  }
};

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

std::string mutate_bytes(Rng& r, std::string s, const std::string& alphabet) {
  int ops = 1 + int(r.below(4));
  for (int k = 0; k < ops; ++k) {
    size_t n = s.size();
    switch (r.below(7)) {
      case 0:  // flip a bit
        if (n) s[r.below(n)] ^= char(1u << r.below(8));
        break;
      case 1:  // random byte
        if (n) s[r.below(n)] = char(r.below(256));
        break;
      case 2:  // byte from the interesting alphabet
        if (n) s[r.below(n)] = alphabet[r.below(alphabet.size())];
        break;
      case 3: {  // delete a range
        if (!n) break;
        size_t a = r.below(n), len = 1 + r.below(std::min<size_t>(16, n - a));
        s.erase(a, len);
        break;
      }
      case 4: {  // insert bytes
        size_t a = r.below(n + 1), len = 1 + r.below(8);
        std::string ins;
        for (size_t i = 0; i < len; ++i) ins += r.coin() ? alphabet[r.below(alphabet.size())] : char(r.below(256));
        s.insert(a, ins);
        break;
      }
      case 5:  // truncate
        s.resize(r.below(n + 1));
        break;
      case 6: {  // duplicate a chunk somewhere else
        if (!n) break;
        size_t a = r.below(n), len = 1 + r.below(std::min<size_t>(32, n - a));
        s.insert(r.below(n + 1), s.substr(a, len));
        break;
      }
    }
  }
  return s;
}

const std::string kJsonAlphabet = "{}[]\",:0123456789-+.eE \\ntfalsu_FIBOL";

// Random JSON-ish text from safetensors-flavoured tokens.
std::string token_soup(Rng& r) {
  static const std::vector<std::string> toks{
      "{", "}", "[", "]", ",", ":", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F32\"",
      "\"BF16\"", "\"BOOL\"", "\"F8_E4M3\"", "\"x\"", "\"y\"", "0", "1", "4", "8", "-1", "2.5", "1e400",
      "18446744073709551615", "9223372036854775807", "null", "true", "\"\"", "\"\\u0000\"", " "};
  std::string s = r.coin(80) ? "{" : "";
  size_t n = r.below(40);
  for (size_t i = 0; i < n; ++i) s += r.pick(toks);
  if (r.coin(70)) s += "}";
  return s;
}

json random_json_value(Rng& r, int depth = 0) {
  switch (r.below(depth > 2 ? 12 : 14)) {
    case 0: return nullptr;
    case 1: return r.coin();
    case 2: return -int64_t(r.below(1000)) - 1;
    case 3: return int64_t(r.below(64));
    case 4: return uint64_t(18446744073709551615ull) - r.below(3);
    case 5: return int64_t(9223372036854775807ll) - int64_t(r.below(3));
    case 6: return std::numeric_limits<int64_t>::min();
    case 7: return r.coin() ? 1e308 : -1e308;
    case 8: return 0.5 * double(r.below(9)) - 1.0;
    case 9: return std::string(r.coin() ? "F32" : "not-a-dtype");
    case 10: return int64_t(1) << r.below(63);
    case 11: return std::string("");
    case 12: {
      json a = json::array();
      size_t n = r.below(5);
      for (size_t i = 0; i < n; ++i) a.push_back(random_json_value(r, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      size_t n = r.below(4);
      for (size_t i = 0; i < n; ++i) o["k" + std::to_string(r.below(5))] = random_json_value(r, depth + 1);
      return o;
    }
  }
}

// Replace, delete or add one value somewhere inside `j` (objects and arrays, any depth).
void mutate_json(Rng& r, json& j) {
  json* cur = &j;
  for (int depth = 0; depth < 6; ++depth) {
    bool container = (cur->is_object() || cur->is_array()) && !cur->empty();
    if (!container || r.coin(30)) break;
    size_t i = r.below(cur->size());
    auto it = cur->begin();
    std::advance(it, long(i));
    cur = &*it;
  }
  switch (r.below(4)) {
    case 0:
    case 1: *cur = random_json_value(r); break;
    case 2:
      if (cur->is_object() && !cur->empty()) {
        auto it = cur->begin();
        std::advance(it, long(r.below(cur->size())));
        cur->erase(it);
      } else if (cur->is_array() && !cur->empty()) {
        cur->erase(cur->begin() + long(r.below(cur->size())));
      } else {
        *cur = random_json_value(r);
      }
      break;
    default:
      if (cur->is_object()) (*cur)["extra" + std::to_string(r.below(3))] = random_json_value(r);
      else if (cur->is_array()) cur->push_back(random_json_value(r));
      else *cur = random_json_value(r);
  }
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
