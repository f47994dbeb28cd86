// torch <-> safetensors: dtype mapping, exact bits, zero-copy views, save/load convenience.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>

#include "engine/device.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/tensor_io.h"

namespace fs = std::filesystem;
using pvm::DType;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pvm_tio_XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& n) const { return path + "/" + n; }
};

torch::Tensor sample(torch::ScalarType t, std::vector<int64_t> shape) {
  torch::manual_seed(3);
  if (t == torch::kBool) return torch::rand(shape) > 0.5;
  if (t == torch::kUInt8) return torch::randint(0, 255, shape, torch::TensorOptions().dtype(t));
  if (torch::isIntegralType(t, false)) return torch::randint(-100, 100, shape, torch::TensorOptions().dtype(t));
  return torch::randn(shape).to(t);
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), size_t(ca.numel()) * ca.element_size()) == 0;
}

}  // namespace

TEST(TensorIo, DtypeMappingIsABijection) {
  for (DType d : pvm::all_dtypes()) {
    auto t = pvm::to_torch_dtype(d);
    EXPECT_EQ(pvm::from_torch_dtype(t), d);
    EXPECT_EQ(size_t(c10::elementSize(t)), pvm::dtype_size(d)) << pvm::dtype_to_string(d);
  }
  EXPECT_THROW(pvm::from_torch_dtype(torch::kComplexFloat), pvm::Error);
}

TEST(TensorIo, RoundTripEveryDtype) {
  TempDir d;
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  for (DType dt : pvm::all_dtypes())
    ts.emplace_back(std::string("t.") + pvm::dtype_to_string(dt), sample(pvm::to_torch_dtype(dt), {3, 4, 5}));
  ts.emplace_back("scalar", torch::tensor(2.5, torch::kFloat64).reshape({}));
  ts.emplace_back("empty", torch::zeros({0, 4}, torch::kBFloat16));
  std::string p = d / "rt.safetensors";
  pvm::save_tensors(p, ts, {{"format", "pt"}});
  auto back = pvm::load_tensors(p);
  ASSERT_EQ(back.size(), ts.size());
  for (const auto& [name, t] : ts) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_TRUE(same_bits(back[name], t)) << name;
    EXPECT_TRUE(torch::equal(back[name], t)) << name;
  }
  EXPECT_EQ(back["scalar"].dim(), 0);
  EXPECT_DOUBLE_EQ(back["scalar"].item<double>(), 2.5);
  EXPECT_EQ(back["empty"].sizes(), torch::IntArrayRef({0, 4}));
  EXPECT_EQ(pvm::SafetensorsFile::open(p)->metadata().at("format"), "pt");
}

TEST(TensorIo, Bf16ExactBits) {
  TempDir d;
  std::vector<int16_t> bits{0x0000, int16_t(0x8000), 0x3f80, 0x7f7f, 0x0001, 0x7f80, int16_t(0xff80),
                            0x7fc0, 0x7f81, int16_t(0xffff), 0x4049};
  auto raw = torch::from_blob(bits.data(), {int64_t(bits.size())}, torch::kInt16).clone();
  auto bf = raw.view(torch::kBFloat16);
  pvm::save_tensors(d / "bf.safetensors", {{"w", bf}});
  auto back = pvm::load_tensors(d / "bf.safetensors").at("w");
  ASSERT_EQ(back.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(back.view(torch::kInt16), raw));  // NaN payloads, -0, subnormals intact
  EXPECT_FLOAT_EQ(back[2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(back[10].item<float>(), 3.140625f);
}

TEST(TensorIo, SavesNonContiguousAndDetachedTensors) {
  TempDir d;
  auto base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  auto t = base.t();  // non-contiguous
  ASSERT_FALSE(t.is_contiguous());
  auto g = torch::ones({2}, torch::requires_grad());
  pvm::save_tensors(d / "nc.safetensors", {{"t", t}, {"g", g}});
  auto back = pvm::load_tensors(d / "nc.safetensors");
  EXPECT_TRUE(torch::equal(back["t"], t));
  EXPECT_FALSE(back["g"].requires_grad());
  EXPECT_TRUE(torch::equal(back["g"], torch::ones({2})));
}

TEST(TensorIo, ZeroCopyFromBlobPath) {
  TempDir d;
  auto w = sample(torch::kFloat32, {64, 32});
  auto ids = sample(torch::kInt64, {7});
  pvm::save_tensors(d / "m.safetensors", {{"w", w}, {"ids", ids}});
  auto f = pvm::SafetensorsFile::open(d / "m.safetensors");
  const pvm::TensorView* v = f->find("w");
  ASSERT_NE(v, nullptr);

  auto view = pvm::to_torch(*v, /*copy=*/false);
  EXPECT_EQ(view.data_ptr(), static_cast<const void*>(v->data)) << "no copy made";
  EXPECT_TRUE(torch::equal(view, w));
  auto copy = pvm::to_torch(*v, /*copy=*/true);
  EXPECT_NE(copy.data_ptr(), static_cast<const void*>(v->data));
  EXPECT_TRUE(torch::equal(copy, w));
  copy.add_(1);  // the copy owns writable memory
  EXPECT_TRUE(torch::equal(view, w));

  // to_torch_shared keeps the mapping alive after the last file handle is gone.
  auto shared = pvm::to_torch_shared(*f->find("ids"), f);
  EXPECT_EQ(shared.data_ptr(), static_cast<const void*>(f->find("ids")->data));
  std::weak_ptr<pvm::SafetensorsFile> weak = f;
  view = torch::Tensor();
  f.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_TRUE(torch::equal(shared, ids));
  shared = torch::Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(TensorIo, BoolBytesAreNormalized) {
  TempDir d;
  uint8_t raw[4] = {0, 1, 2, 255};
  pvm::TensorView v{"m", DType::BOOL, {4}, raw, 4};
  pvm::write_safetensors(d / "b.safetensors", {v});
  auto f = pvm::SafetensorsFile::open(d / "b.safetensors");
  for (bool copy : {true, false}) {
    auto t = pvm::to_torch(*f->find("m"), copy);
    auto u = t.to(torch::kUInt8);
    EXPECT_EQ(u[2].item<int>(), 1) << "copy=" << copy;
    EXPECT_EQ(u[3].item<int>(), 1);
    EXPECT_EQ(t.sum().item<int64_t>(), 3);
    EXPECT_NE(t.data_ptr(), static_cast<const void*>(f->find("m")->data)) << "dirty bools must be copied";
  }
}

TEST(TensorIo, ViewOfRejectsWhatItCannotDescribe) {
  auto t = torch::arange(6, torch::kInt32).reshape({2, 3});
  auto v = pvm::view_of(t, "x");
  EXPECT_EQ(v.dtype, DType::I32);
  EXPECT_EQ(v.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(v.nbytes, 24u);
  EXPECT_EQ(static_cast<const void*>(v.data), t.data_ptr());
  EXPECT_THROW(pvm::view_of(t.t(), "x"), pvm::Error);
  EXPECT_THROW(pvm::view_of(torch::Tensor(), "x"), pvm::Error);
  EXPECT_THROW(pvm::view_of(torch::zeros({2}, torch::kComplexFloat), "x"), pvm::Error);
  if (pvm::cuda_available()) {
    EXPECT_THROW(pvm::view_of(t.cuda(), "x"), pvm::Error);
  }
  // A view whose size disagrees with its shape is rejected before touching memory.
  auto bad = v;
  bad.nbytes = 4;
  EXPECT_THROW(pvm::to_torch(bad), pvm::Error);
}

TEST(TensorIo, SaveErrorsLeaveNoFile) {
  TempDir d;
  std::string p = d / "x.safetensors";
  try {
    pvm::save_tensors(p, {{"ok", torch::ones({2})}, {"cplx", torch::zeros({2}, torch::kComplexFloat)}});
    FAIL() << "expected pvm::Error";
  } catch (const pvm::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("cplx"), std::string::npos) << msg;
  }
  EXPECT_THROW(pvm::save_tensors(p, {{"a", torch::ones({1})}, {"a", torch::ones({1})}}), pvm::Error);
  EXPECT_THROW(pvm::save_tensors(p, {{"u", torch::Tensor()}}), pvm::Error);
  EXPECT_TRUE(fs::is_empty(d.path));
}

TEST(TensorIo, LoadShardedCheckpointAndCudaRoundTrip) {
  TempDir d;
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  for (int i = 0; i < 5; ++i) ts.emplace_back("layers." + std::to_string(i) + ".w", sample(torch::kBFloat16, {16, 16}));
  std::vector<pvm::TensorView> views;
  for (auto& [n, t] : ts) views.push_back(pvm::view_of(t, n));
  auto files = pvm::write_sharded(d / "ck", views, 1024);
  EXPECT_EQ(files.size(), 4u);  // 512 B each, 2 per shard -> 3 shards + index
  auto back = pvm::load_tensors(d / "ck");
  ASSERT_EQ(back.size(), ts.size());
  for (auto& [n, t] : ts) EXPECT_TRUE(same_bits(back[n], t)) << n;
  if (pvm::cuda_available()) {
    auto g = torch::randn({8, 8}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16));
    pvm::save_tensors(d / "g.safetensors", {{"g", g}});
    EXPECT_TRUE(same_bits(pvm::load_tensors(d / "g.safetensors").at("g"), g.cpu()));
  }
  EXPECT_THROW(pvm::load_tensors(d / "nope"), pvm::Error);
}
