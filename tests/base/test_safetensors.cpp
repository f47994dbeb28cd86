// Safetensors reader/writer, sharded checkpoints, and atomic file writes (no torch).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/fs_util.h"
#include "engine/base/safetensors.h"

namespace fs = std::filesystem;
using pvm::DType;
using pvm::TensorView;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pvm_st_XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// A raw safetensors file: 8-byte length (or `hlen_override`), header text, data bytes.
std::string raw_file(const std::string& header, const std::string& data, int64_t hlen_override = -1) {
  uint64_t n = hlen_override >= 0 ? uint64_t(hlen_override) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Files left in a directory (to check that no temp file survives).
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Expect `fn` to throw pvm::Error whose message contains every needle.
template <class F>
void expect_error(F&& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected pvm::Error containing '" << needles.front() << "'";
  } catch (const pvm::Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line message: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// Owns bytes for views used by the writer.
struct Blob {
  std::vector<std::vector<uint8_t>> store;
  TensorView make(const std::string& name, DType dt, std::vector<int64_t> shape, uint32_t seed = 1) {
    uint64_t n = 0;
    EXPECT_TRUE(pvm::tensor_nbytes(shape, dt, &n));
    std::vector<uint8_t> b(n);
    uint32_t x = seed * 2654435761u + 12345u;
    for (auto& c : b) {
      x = x * 1664525u + 1013904223u;
      c = uint8_t(x >> 24);
    }
    if (dt == DType::BOOL)
      for (auto& c : b) c &= 1;
    store.push_back(std::move(b));
    TensorView v;
    v.name = name;
    v.dtype = dt;
    v.shape = std::move(shape);
    v.data = store.back().data();
    v.nbytes = n;
    return v;
  }
};

std::string bytes_of(const TensorView& v) { return std::string(reinterpret_cast<const char*>(v.data), v.nbytes); }

}  // namespace

// ------------------------------------------------------------------ dtypes

TEST(Safetensors, DtypeNamesAndSizes) {
  EXPECT_EQ(pvm::all_dtypes().size(), 10u);
  for (DType t : pvm::all_dtypes()) EXPECT_EQ(pvm::dtype_from_string(pvm::dtype_to_string(t)), t);
  EXPECT_EQ(pvm::dtype_size(DType::BF16), 2u);
  EXPECT_EQ(pvm::dtype_size(DType::F64), 8u);
  EXPECT_EQ(pvm::dtype_size(DType::BOOL), 1u);
  EXPECT_EQ(std::string(pvm::dtype_to_string(DType::BF16)), "BF16");
  DType d;
  EXPECT_FALSE(pvm::dtype_from_string("bf16", &d));  // case-sensitive, as the format
  EXPECT_THROW(pvm::dtype_from_string("F8_E4M3"), pvm::Error);
  uint64_t n = 0;
  EXPECT_TRUE(pvm::tensor_nbytes({3, 4}, DType::F32, &n));
  EXPECT_EQ(n, 48u);
  EXPECT_FALSE(pvm::tensor_nbytes({-1}, DType::F32, &n));
  EXPECT_FALSE(pvm::tensor_nbytes({int64_t(1) << 40, int64_t(1) << 40}, DType::F32, &n));
}

// ------------------------------------------------------------------ round trips

TEST(Safetensors, RoundTripEveryDtypeWithMetadata) {
  TempDir d;
  Blob b;
  std::vector<TensorView> ts;
  uint32_t seed = 1;
  for (DType t : pvm::all_dtypes()) ts.push_back(b.make(std::string("t_") + pvm::dtype_to_string(t), t, {3, 5}, seed++));
  ts.push_back(b.make("odd_u8", DType::U8, {7}, 99));  // odd size, must not misalign others
  std::map<std::string, std::string> md{{"format", "pt"}, {"note", "h\u00e9llo \"quoted\""}};
  std::string p = d / "rt.safetensors";
  pvm::write_safetensors(p, ts, md);

  auto f = pvm::SafetensorsFile::open(p);
  EXPECT_EQ(f->path(), p);
  EXPECT_EQ(f->metadata(), md);
  ASSERT_EQ(f->names().size(), ts.size());
  EXPECT_EQ(f->data_start() % 8, 0u);
  EXPECT_EQ(f->file_size(), f->data_start() + f->total_bytes());  // no gaps, no trailing bytes
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(f->names()[i], ts[i].name);  // header keeps the given order
    const TensorView* v = f->find(ts[i].name);
    ASSERT_NE(v, nullptr) << ts[i].name;
    EXPECT_EQ(v->dtype, ts[i].dtype);
    EXPECT_EQ(v->shape, ts[i].shape);
    EXPECT_EQ(v->nbytes, ts[i].nbytes);
    EXPECT_EQ(bytes_of(*v), bytes_of(ts[i])) << ts[i].name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % pvm::dtype_size(v->dtype), 0u) << "misaligned " << v->name;
  }
  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_FALSE(f->contains("nope"));
}

TEST(Safetensors, Bf16BitPatternsSurviveExactly) {
  TempDir d;
  // +0, -0, 1, -2, max, min normal, smallest subnormal, +inf, -inf, qNaN, sNaN-ish, NaN with payload
  std::vector<uint16_t> bits{0x0000, 0x8000, 0x3f80, 0xc000, 0x7f7f, 0x0080, 0x0001,
                             0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff};
  TensorView v{"bits", DType::BF16, {int64_t(bits.size())}, reinterpret_cast<const uint8_t*>(bits.data()),
               bits.size() * 2};
  pvm::write_safetensors(d / "b.safetensors", {v});
  auto f = pvm::SafetensorsFile::open(d / "b.safetensors");
  const TensorView* r = f->find("bits");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->nbytes, bits.size() * 2);
  std::vector<uint16_t> back(bits.size());
  std::memcpy(back.data(), r->data, r->nbytes);
  EXPECT_EQ(back, bits);
  // Little-endian on disk: 0x3f80 is stored as 80 3f.
  std::string raw = slurp(d / "b.safetensors");
  EXPECT_EQ(uint8_t(raw[f->data_start() + 4]), 0x80);
  EXPECT_EQ(uint8_t(raw[f->data_start() + 5]), 0x3f);
}

TEST(Safetensors, ZeroDimAndZeroSizeTensors) {
  TempDir d;
  Blob b;
  std::vector<TensorView> ts{b.make("scalar", DType::F32, {}), b.make("empty", DType::F16, {0}),
                             b.make("empty2d", DType::I64, {4, 0}), b.make("after", DType::I32, {2})};
  pvm::write_safetensors(d / "z.safetensors", ts);
  auto f = pvm::SafetensorsFile::open(d / "z.safetensors");
  const TensorView* s = f->find("scalar");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->numel(), 1);
  EXPECT_EQ(s->nbytes, 4u);
  EXPECT_EQ(bytes_of(*s), bytes_of(ts[0]));
  EXPECT_EQ(f->find("empty")->nbytes, 0u);
  EXPECT_EQ(f->find("empty")->numel(), 0);
  EXPECT_EQ(f->find("empty2d")->shape, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(bytes_of(*f->find("after")), bytes_of(ts[3]));

  // A file with no tensors at all (and one with only metadata) is valid too.
  pvm::write_safetensors(d / "none.safetensors", {});
  EXPECT_TRUE(pvm::SafetensorsFile::open(d / "none.safetensors")->names().empty());
  pvm::write_safetensors(d / "md.safetensors", {}, {{"k", "v"}});
  EXPECT_EQ(pvm::SafetensorsFile::open(d / "md.safetensors")->metadata().at("k"), "v");
}

TEST(Safetensors, ReadsHandWrittenFileWithPaddingAndUnsortedOffsets) {
  TempDir d;
  // Header padded with spaces, tensors listed out of data order, as other writers may produce.
  std::string header = R"({"b":{"dtype":"I16","shape":[2],"data_offsets":[4,8]},)"
                       R"("a":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}})";
  header += std::string(5, ' ');
  std::string data("\x01\x02\x03\x04\x05\x00\x06\x00", 8);
  spit(d / "h.safetensors", raw_file(header, data));
  auto f = pvm::SafetensorsFile::open(d / "h.safetensors");
  EXPECT_EQ(f->names(), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(bytes_of(*f->find("a")), std::string("\x01\x02\x03\x04", 4));
  int16_t v[2];
  std::memcpy(v, f->find("b")->data, 4);
  EXPECT_EQ(v[0], 5);
  EXPECT_EQ(v[1], 6);
}

TEST(Safetensors, AdviseDoneDropsResidentPagesAndDataStaysReadable) {
  TempDir d;
  Blob b;
  auto big = b.make("big", DType::U8, {8 << 20}, 7);
  pvm::write_safetensors(d / "big.safetensors", {big});
  auto f = pvm::SafetensorsFile::open(d / "big.safetensors");
  const TensorView* v = f->find("big");
  ASSERT_NE(v, nullptr);
  uint64_t sum = 0;
  for (size_t i = 0; i < v->nbytes; i += 512) sum += v->data[i];  // fault every page in

  // Resident size of the mapping, from /proc/self/smaps.
  auto rss_kb = [&]() -> long {
    std::ifstream sm("/proc/self/smaps");
    std::string line;
    bool in = false;
    auto addr = reinterpret_cast<uintptr_t>(v->data);
    while (std::getline(sm, line)) {
      unsigned long lo, hi;
      if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find('-')) {
        in = addr >= lo && addr < hi;
        continue;
      }
      long kb;
      if (in && std::sscanf(line.c_str(), "Rss: %ld kB", &kb) == 1) return kb;
    }
    return -1;
  };
  long before = rss_kb();
  if (before < 0) GTEST_SKIP() << "/proc/self/smaps not available";
  EXPECT_GT(before, 6 * 1024);
  f->advise_done(*v);
  long after = rss_kb();
  EXPECT_LT(after, 1024) << "before " << before << " kB";
  // The pages come back from the file on the next access.
  uint64_t sum2 = 0;
  for (size_t i = 0; i < v->nbytes; i += 512) sum2 += v->data[i];
  EXPECT_EQ(sum, sum2);
  EXPECT_EQ(bytes_of(*v), bytes_of(big));
  f->release("big");
  f->release("unknown");  // no-op
  TensorView foreign = big;  // not from this file: ignored
  f->advise_done(foreign);
  EXPECT_EQ(bytes_of(big), bytes_of(*v));
}

// ------------------------------------------------------------------ checkpoints

TEST(Checkpoint, SingleFileDirectoryAndAdapter) {
  TempDir d;
  Blob b;
  std::vector<TensorView> ts{b.make("model.language_model.norm.weight", DType::BF16, {8}),
                             b.make("lm_head.weight", DType::BF16, {4, 8})};
  pvm::write_safetensors(d / "model.safetensors", ts, {{"format", "pt"}});
  for (const std::string& p : {d.path, d.path + "/", d / "model.safetensors"}) {
    auto ck = pvm::Checkpoint::open(p);
    EXPECT_EQ(ck.names(), (std::vector<std::string>{"lm_head.weight", "model.language_model.norm.weight"}));
    EXPECT_EQ(ck.files().size(), 1u);
    EXPECT_TRUE(ck.contains("lm_head.weight"));
    EXPECT_FALSE(ck.contains("x"));
    EXPECT_EQ(ck.total_bytes(), 16u + 64u);
    EXPECT_EQ(ck.metadata().at("format"), "pt");
    EXPECT_EQ(bytes_of(*ck.find("lm_head.weight")), bytes_of(ts[1]));
  }
  // Any safetensors file name is accepted when given as a file.
  pvm::write_safetensors(d / "adapter.safetensors", {ts[0]});
  auto ad = pvm::Checkpoint::open(d / "adapter.safetensors");
  EXPECT_EQ(ad.names(), std::vector<std::string>{"model.language_model.norm.weight"});
  // The checkpoint keeps the mapping alive after copies and scope exits.
  pvm::Checkpoint copy = ad;
  ad = pvm::Checkpoint();
  EXPECT_EQ(bytes_of(*copy.find("model.language_model.norm.weight")), bytes_of(ts[0]));
}

TEST(Checkpoint, ShardedRoundTripViaIndex) {
  TempDir d;
  Blob b;
  std::vector<TensorView> ts;
  for (int i = 0; i < 7; ++i) ts.push_back(b.make("layers." + std::to_string(i) + ".w", DType::F32, {10, 10}, i + 1));
  ts.push_back(b.make("bias", DType::BF16, {3}, 50));
  std::string dir = d / "ck";  // created by the writer
  auto written = pvm::write_sharded(dir, ts, 1000, {{"format", "pt"}});
  // 400 bytes per f32 tensor, 1000 per shard: 2 + 2 + 2 + (1 + bias) = 4 shards.
  ASSERT_EQ(written.size(), 5u);
  EXPECT_EQ(written[0], dir + "/model-00001-of-00004.safetensors");
  EXPECT_EQ(written[3], dir + "/model-00004-of-00004.safetensors");
  EXPECT_EQ(written[4], dir + "/model.safetensors.index.json");
  EXPECT_EQ(listing(dir).size(), 5u);  // no temp files left

  auto idx = nlohmann::json::parse(slurp(written[4]));
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), 7u * 400u + 6u);
  EXPECT_EQ(idx["weight_map"]["layers.0.w"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(idx["weight_map"]["bias"], "model-00004-of-00004.safetensors");
  auto si = pvm::parse_shard_index(slurp(written[4]), written[4]);
  EXPECT_EQ(si.total_size, int64_t(7 * 400 + 6));
  EXPECT_EQ(si.weight_map.size(), 8u);

  for (const std::string& p : {dir, written[4]}) {
    auto ck = pvm::Checkpoint::open(p);
    EXPECT_EQ(ck.size(), ts.size());
    EXPECT_EQ(ck.files().size(), 4u);
    EXPECT_EQ(ck.total_bytes(), 7u * 400u + 6u);
    EXPECT_EQ(ck.metadata().at("format"), "pt");
    for (const auto& t : ts) {
      const TensorView* v = ck.find(t.name);
      ASSERT_NE(v, nullptr) << t.name;
      EXPECT_EQ(v->shape, t.shape);
      EXPECT_EQ(bytes_of(*v), bytes_of(t)) << t.name;
      ASSERT_NE(ck.shard_of(t.name), nullptr);
      ck.release(t.name);
      EXPECT_EQ(bytes_of(*v), bytes_of(t)) << "after release: " << t.name;
    }
  }
  // A tensor bigger than the shard limit gets a shard of its own.
  auto w2 = pvm::write_sharded(d / "ck2", ts, 1);
  EXPECT_EQ(w2.size(), ts.size() + 1);
  EXPECT_EQ(pvm::Checkpoint::open(d / "ck2").size(), ts.size());
}

TEST(Checkpoint, DirectoryErrors) {
  TempDir d;
  expect_error([&] { pvm::Checkpoint::open(d.path); }, {d.path, "no model.safetensors"});
  expect_error([&] { pvm::Checkpoint::open(d / "missing"); }, {d / "missing", "no such file"});
  Blob b;
  pvm::write_safetensors(d / "model.safetensors", {b.make("a", DType::F32, {1})});
  spit(d / "model.safetensors.index.json", R"({"weight_map":{"a":"model.safetensors"}})");
  expect_error([&] { pvm::Checkpoint::open(d.path); }, {d.path, "both"});
  // Explicit paths still work.
  EXPECT_EQ(pvm::Checkpoint::open(d / "model.safetensors.index.json").size(), 1u);
  EXPECT_EQ(pvm::Checkpoint::open(d / "model.safetensors").size(), 1u);
}

// ------------------------------------------------------------------ corruption

class Corrupt : public ::testing::Test {
 protected:
  TempDir d;
  std::string p = d / "bad.safetensors";
  void open_expect(const std::string& bytes, const std::vector<std::string>& needles) {
    spit(p, bytes);
    std::vector<std::string> all{p};
    all.insert(all.end(), needles.begin(), needles.end());
    expect_error([&] { pvm::SafetensorsFile::open(p); }, all);
    expect_error([&] { pvm::Checkpoint::open(p); }, all);
  }
  static std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                           const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
  }
};

TEST_F(Corrupt, TruncatedFile) {
  Blob b;
  pvm::write_safetensors(p, {b.make("w", DType::F32, {4, 4})});
  std::string good = slurp(p);
  open_expect(good.substr(0, 5), {"too small"});
  open_expect("", {"too small"});
  open_expect(good.substr(0, 8), {"beyond file size"});
  open_expect(good.substr(0, good.size() - 64), {"'w'", "out of range"});  // header intact, data cut
  open_expect(good.substr(0, good.size() - 1), {"'w'", "out of range"});
}

TEST_F(Corrupt, HeaderLengthBeyondFile) {
  open_expect(raw_file("{}", "", 123456), {"header length 123456 beyond file size 10"});
  open_expect(raw_file("{}", "", int64_t(1) << 62), {"header length 4611686018427387904 beyond file size 10"});
  open_expect(raw_file("{}", "", 3), {"beyond file size"});
  spit(p, raw_file("{}" + std::string(2000, ' '), ""));  // sanity: padding alone is fine
  EXPECT_TRUE(pvm::SafetensorsFile::open(p)->names().empty());
}

TEST_F(Corrupt, HeaderLengthAboveLimit) {
  // A sparse file just above the 100 MB header cap, so the length fits in the file.
  uint64_t n = pvm::SafetensorsFile::kMaxHeaderBytes + 8;
  spit(p, raw_file("{", "", int64_t(n)));
  ASSERT_EQ(::truncate(p.c_str(), off_t(n + 8)), 0);
  expect_error([&] { pvm::SafetensorsFile::open(p); }, {p, "exceeds the limit"});
}

TEST_F(Corrupt, NonJsonHeader) {
  open_expect(raw_file("{not json", ""), {"not valid JSON"});
  open_expect(raw_file("[1,2,3]", ""), {"not a JSON object"});
  open_expect(raw_file("\"str\"", ""), {"not a JSON object"});
  open_expect(raw_file("        ", ""), {"header is empty"});
  open_expect(raw_file("{\"a\":{}} trailing", ""), {"not valid JSON"});
  open_expect(raw_file(std::string("{\"a\xff\":1}"), ""), {"not valid JSON"});
  open_expect(raw_file(std::string(100000, '[') , ""), {"not a JSON object"});
  open_expect(raw_file("{\"a\":" + std::string(100000, '[') + "}", ""), {"nests deeper"});
}

TEST_F(Corrupt, BadEntries) {
  std::string d8(8, '\0');
  open_expect(raw_file("{" + entry("x", "F32", "[2]", "[0,16]") + "}", d8), {"'x'", "offsets [0,16] out of range (data is 8 bytes)"});
  open_expect(raw_file("{" + entry("x", "F32", "[3]", "[0,8]") + "}", d8), {"'x'", "hold 8 bytes", "needs 12"});
  open_expect(raw_file("{" + entry("x", "F32", "[2]", "[8,0]") + "}", d8), {"'x'", "begin > end"});
  open_expect(raw_file("{" + entry("x", "F8_XYZ", "[2]", "[0,8]") + "}", d8), {"'x'", "unknown dtype 'F8_XYZ'"});
  open_expect(raw_file("{" + entry("x", "F32", "[-2]", "[0,8]") + "}", d8), {"'x'", "non-negative integers"});
  open_expect(raw_file("{" + entry("x", "F32", "[2.0]", "[0,8]") + "}", d8), {"'x'", "non-negative integers"});
  open_expect(raw_file("{" + entry("x", "F32", "[\"2\"]", "[0,8]") + "}", d8), {"'x'", "non-negative integers"});
  open_expect(raw_file("{" + entry("x", "F32", "2", "[0,8]") + "}", d8), {"'x'", "shape"});
  open_expect(raw_file("{" + entry("x", "F32", "[2]", "[0]") + "}", d8), {"'x'", "data_offsets"});
  open_expect(raw_file("{" + entry("x", "F32", "[2]", "[-1,7]") + "}", d8), {"'x'", "data_offsets"});
  open_expect(raw_file("{" + entry("x", "F32", "[2]", "[0,18446744073709551615]") + "}", d8), {"'x'", "data_offsets"});
  open_expect(raw_file("{" + entry("x", "F32", "[4294967296,4294967296,4294967296]", "[0,8]") + "}", d8),
              {"'x'", "too large"});
  open_expect(raw_file("{" + entry("x", "F32", "[9223372036854775807,2]", "[0,8]") + "}", d8), {"'x'", "too large"});
  open_expect(raw_file(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", d8), {"'x'", "dtype"});
  open_expect(raw_file(R"({"x":[1,2]})", d8), {"'x'", "not a JSON object"});
  open_expect(raw_file(R"({"__metadata__":{"a":1}})", d8), {"__metadata__", "'a'", "not a string"});
  open_expect(raw_file(R"({"__metadata__":[]})", d8), {"__metadata__"});
  // Control characters in names are escaped: the message stays on one line.
  open_expect(raw_file("{" + entry("bad\\nname", "F32", "[9]", "[0,8]") + "}", d8), {"bad\\x0aname"});
}

TEST_F(Corrupt, OverlappingTensors) {
  std::string d16(16, '\0');
  open_expect(raw_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", d16),
              {"tensors 'a' and 'b' overlap"});
  open_expect(raw_file("{" + entry("b", "F32", "[2]", "[8,16]") + "," + entry("a", "F32", "[4]", "[0,16]") + "}", d16),
              {"overlap"});
  // Touching ranges and empty tensors inside others are fine.
  spit(p, raw_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[8,16]") + "," +
                       entry("e", "F32", "[0]", "[4,4]") + "}",
                   d16));
  EXPECT_EQ(pvm::SafetensorsFile::open(p)->names().size(), 3u);
}

TEST_F(Corrupt, DuplicateNames) {
  std::string d16(16, '\0');
  open_expect(raw_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("a", "F32", "[2]", "[8,16]") + "}", d16),
              {"duplicate tensor name 'a'"});
}

TEST_F(Corrupt, NotARegularFile) {
  expect_error([&] { pvm::SafetensorsFile::open(d.path); }, {d.path, "directory"});
  expect_error([&] { pvm::SafetensorsFile::open(d / "nope.safetensors"); }, {"nope.safetensors", "no such file"});
}

class BadShards : public ::testing::Test {
 protected:
  TempDir d;
  Blob b;
  std::string dir = d / "ck";
  std::string index = dir + "/model.safetensors.index.json";
  void SetUp() override {
    std::vector<TensorView> ts{b.make("a", DType::F32, {8}), b.make("b", DType::F32, {8}), b.make("c", DType::F32, {8})};
    pvm::write_sharded(dir, ts, 40);
    ASSERT_EQ(pvm::Checkpoint::open(dir).files().size(), 3u);
  }
};

TEST_F(BadShards, MissingShard) {
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  expect_error([&] { pvm::Checkpoint::open(dir); }, {index, "model-00002-of-00003.safetensors", "not found"});
}

TEST_F(BadShards, TensorAbsentFromItsShard) {
  auto j = nlohmann::json::parse(slurp(index));
  j["weight_map"]["ghost"] = "model-00001-of-00003.safetensors";
  spit(index, j.dump());
  expect_error([&] { pvm::Checkpoint::open(dir); }, {index, "'ghost'", "missing from shard", "model-00001-of-00003"});
}

TEST_F(BadShards, CorruptShardNamesShardAndIndex) {
  spit(dir + "/model-00003-of-00003.safetensors", "garbage!");
  expect_error([&] { pvm::Checkpoint::open(dir); }, {"model-00003-of-00003.safetensors", index});
}

TEST_F(BadShards, BadIndexJson) {
  auto bad = [&](const std::string& text, const std::string& needle) {
    spit(index, text);
    expect_error([&] { pvm::Checkpoint::open(dir); }, {index, needle});
    expect_error([&] { pvm::parse_shard_index(text, index); }, {index, needle});
  };
  bad("{oops", "not valid JSON");
  bad("[]", "not a JSON object");
  bad("{}", "missing \"weight_map\"");
  bad(R"({"weight_map":[]})", "not a JSON object");
  bad(R"({"weight_map":{"a":3}})", "'a'");
  bad(R"({"weight_map":{"a":"../escape.safetensors"}})", "bad shard file name");
  bad(R"({"weight_map":{"a":"/abs.safetensors"}})", "bad shard file name");
  bad(R"({"weight_map":{"a":""}})", "bad shard file name");
  bad(R"({"metadata":5,"weight_map":{}})", "metadata");
  bad(R"({"metadata":{"total_size":-3},"weight_map":{}})", "total_size");
  bad(R"({"weight_map":{},"weight_map":{}})", "duplicate key 'weight_map'");
  // An index with float total_size and no tensors is accepted.
  spit(index, R"({"metadata":{"total_size":12.0},"weight_map":{}})");
  EXPECT_EQ(pvm::Checkpoint::open(dir).size(), 0u);
}

// ------------------------------------------------------------------ writer validation

TEST(SafetensorsWriter, RejectsBadViewsWithoutCreatingFiles) {
  TempDir d;
  Blob b;
  auto a = b.make("a", DType::F32, {4});
  std::string p = d / "w.safetensors";
  expect_error([&] { pvm::write_safetensors(p, {a, a}); }, {p, "duplicate tensor name 'a'"});
  auto wrong = a;
  wrong.nbytes = 12;
  expect_error([&] { pvm::write_safetensors(p, {wrong}); }, {p, "'a'", "needs 16 bytes", "has 12"});
  auto meta = a;
  meta.name = "__metadata__";
  expect_error([&] { pvm::write_safetensors(p, {meta}); }, {p, "reserved"});
  auto null = a;
  null.data = nullptr;
  expect_error([&] { pvm::write_safetensors(p, {null}); }, {p, "no data"});
  auto neg = a;
  neg.shape = {-4};
  expect_error([&] { pvm::write_safetensors(p, {neg}); }, {p, "invalid shape"});
  auto utf = a;
  utf.name = std::string("bad\xff", 4);
  expect_error([&] { pvm::write_safetensors(p, {utf}); }, {p, "UTF-8"});
  expect_error([&] { pvm::write_sharded(d / "s", {a, a}, 100); }, {"duplicate"});
  expect_error([&] { pvm::write_sharded(d / "s", {a}, 0); }, {"positive"});
  EXPECT_TRUE(listing(d.path).empty());
}

// ------------------------------------------------------------------ atomic writes

TEST(AtomicWrite, ReplacesContentAndLeavesNoTemp) {
  TempDir d;
  std::string p = d / "cfg.json";
  pvm::atomic_write_file(p, "old");
  ::chmod(p.c_str(), 0600);
  pvm::atomic_write_file(p, "new content");
  EXPECT_EQ(pvm::read_file_to_string(p), "new content");
  EXPECT_EQ(listing(d.path), std::vector<std::string>{"cfg.json"});
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "permissions of the replaced file are kept";
  pvm::atomic_write_file(p, "");
  EXPECT_EQ(pvm::read_file_to_string(p), "");
}

TEST(AtomicWrite, AbandonedWriterRemovesTemp) {
  TempDir d;
  std::string p = d / "x.bin";
  pvm::atomic_write_file(p, "keep");
  {
    pvm::AtomicWriter w(p);
    w.write("partial", 7);
    EXPECT_TRUE(pvm::path_exists(w.temp_path()));
    EXPECT_EQ(w.temp_path().rfind(p + ".tmp." + std::to_string(::getpid()), 0), 0u);
  }  // destroyed without commit (as when an exception unwinds)
  EXPECT_EQ(pvm::read_file_to_string(p), "keep");
  EXPECT_EQ(listing(d.path), std::vector<std::string>{"x.bin"});
}

TEST(AtomicWrite, FailsOnBadTargetsAndKeepsOldFile) {
  TempDir d;
  // The missing folder is named (not the temp file it could not create).
  expect_error([&] { pvm::atomic_write_file(d / "no/such/dir/f.json", "x"); }, {"f.json", "folder", "does not exist"});
  // Target is an existing directory: refused before anything is written.
  fs::create_directory(d / "isdir");
  spit(d / "isdir/inside", "keep");
  expect_error([&] { pvm::atomic_write_file(d / "isdir", "data"); }, {d / "isdir", "is a directory"});
  EXPECT_TRUE(pvm::is_directory(d / "isdir"));
  EXPECT_EQ(slurp(d / "isdir/inside"), "keep");
  EXPECT_EQ(listing(d.path), std::vector<std::string>{"isdir"});
  expect_error([&] { pvm::atomic_write_file("", "x"); }, {"empty"});
  expect_error([&] { pvm::atomic_write_file(d.path + "/", "x"); }, {"directory"});
}

TEST(AtomicWrite, UnwritableDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  TempDir d;
  std::string p = d / "m.safetensors";
  pvm::atomic_write_file(p, "old");
  ::chmod(d.path.c_str(), 0500);
  Blob b;
  expect_error([&] { pvm::write_safetensors(p, {b.make("a", DType::F32, {4})}); }, {p});
  ::chmod(d.path.c_str(), 0700);
  EXPECT_EQ(slurp(p), "old");
  EXPECT_EQ(listing(d.path), std::vector<std::string>{"m.safetensors"});
}

TEST(AtomicWrite, FailureMidwayLeavesOldFileIntactAndNoPartialFile) {
  TempDir d;
  Blob b;
  std::string p = d / "model.safetensors";
  auto small = b.make("w", DType::F32, {4});
  pvm::write_safetensors(p, {small});
  std::string old = slurp(p);

  // Limit the file size this process may write to 64 KiB, then write ~1 MiB: write() fails with
  // EFBIG part way through the data (SIGXFSZ ignored so it is an error, not a kill).
  auto big = b.make("w", DType::F32, {256, 1024});
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = saved;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string msg;
  try {
    pvm::write_safetensors(p, {big});
  } catch (const pvm::Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("write failed after"), std::string::npos) << msg;
  EXPECT_EQ(slurp(p), old);
  EXPECT_EQ(listing(d.path), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(bytes_of(*pvm::SafetensorsFile::open(p)->find("w")), bytes_of(small));

  // The same through the sharded writer: no index is written when a shard fails.
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  old_handler = ::signal(SIGXFSZ, SIG_IGN);
  auto big2 = big;
  big2.name = "w2";
  EXPECT_THROW(pvm::write_sharded(d / "sh", {small, big2}, 1 << 30), pvm::Error);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(listing(d / "sh").empty());
}

TEST(FsUtil, ReadFileAndPathHelpers) {
  TempDir d;
  expect_error([&] { pvm::read_file_to_string(d / "none"); }, {"none", "no such file"});
  expect_error([&] { pvm::read_file_to_string(d.path); }, {d.path, "directory"});
  spit(d / "f", std::string(100, 'a'));
  expect_error([&] { pvm::read_file_to_string(d / "f", 10); }, {"limit"});
  EXPECT_EQ(pvm::read_file_to_string(d / "f").size(), 100u);
  EXPECT_EQ(pvm::parent_dir("a/b/c.txt"), "a/b");
  EXPECT_EQ(pvm::parent_dir("c.txt"), ".");
  EXPECT_EQ(pvm::parent_dir("/c.txt"), "/");
  EXPECT_EQ(pvm::join_path("a/", "b"), "a/b");
  EXPECT_EQ(pvm::join_path("a", "b"), "a/b");
  EXPECT_EQ(pvm::join_path(".", "b"), "b");
  EXPECT_EQ(pvm::base_name("x/y/model.safetensors"), "model.safetensors");
  EXPECT_EQ(pvm::base_name("x/y/"), "y");
  EXPECT_TRUE(pvm::is_regular_file(d / "f"));
  EXPECT_FALSE(pvm::is_directory(d / "f"));
}
