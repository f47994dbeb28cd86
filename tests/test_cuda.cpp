// CUDA computes what the CPU computes. Every test here skips at run time on a machine without a
// CUDA device (the build always compiles them: LibTorch comes with CUDA); on a GPU machine
// (scripts/gpu/check_cuda.sh) they run.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include "engine/base/error.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/loader.h"
#include "engine/pvm.h"
#include "engine/text_model.h"
#include "test_util.h"

using namespace pvm;

namespace {

#define PVM_REQUIRE_CUDA() \
  if (!pvm::cuda_available()) GTEST_SKIP() << "no CUDA device on this machine"

// Exact f32 on the GPU: no TF32 in matmuls or convolutions (as load_model sets it).
struct NoTf32 {
  NoTf32() { pvm::cuda_exact_f32(); }
};

struct Tiny {
  ModelConfig cfg = pvm::testing::tiny_config();
  Qwen3VLForConditionalGeneration m = make_random_model(cfg, 7, torch::kFloat, torch::kCPU);
  std::vector<std::array<int64_t, 3>> grids{{1, 4, 6}};
  std::vector<int64_t> ids = pvm::testing::one_image_prompt(cfg);
  torch::Tensor pix = pvm::testing::random_pixel_rows(24, 3);
  explicit Tiny(bool with_pvm) {
    if (with_pvm) pvm::testing::attach_tiny_pvm(*m, {1, 3}, 0.8);
  }
  torch::Tensor logits(const std::vector<int64_t>& seq) {
    torch::NoGradGuard ng;
    ForwardInput in;
    in.input_ids = torch::tensor(seq, torch::kLong).view({1, -1});
    in.pixel_values = pix, in.grids = grids;
    in.all_logits = true;
    in.pvm = true;
    return m->forward(in).logits[0].to(torch::kCPU);
  }
  std::vector<int64_t> greedy(int64_t n) {
    GenerationRequest req;
    req.prompt_ids = ids, req.pixel_values = pix, req.grids = grids;
    req.max_new_tokens = n;
    req.stop_ids = {9999};
    return generate(m, req).tokens[0];
  }
};

}  // namespace

TEST(Cuda, F32ForwardWithPvmEqualsCpu) {
  PVM_REQUIRE_CUDA();
  NoTf32 exact;
  Tiny t(/*with_pvm=*/true);
  auto cpu = t.logits(t.ids);
  auto cpu_ids = t.greedy(16);
  t.m->to(torch::kCUDA);
  ASSERT_TRUE(t.m->device().is_cuda());
  auto gpu = t.logits(t.ids);
  EXPECT_LT((cpu - gpu).abs().max().item<float>(), 1e-4);
  EXPECT_EQ(t.greedy(16), cpu_ids);
}

TEST(Cuda, FusedAndExplicitAttentionAgreeOnTheDevice) {
  PVM_REQUIRE_CUDA();
  NoTf32 exact;
  torch::manual_seed(1);
  auto o = torch::TensorOptions().device(torch::kCUDA);
  auto q = torch::randn({1, 8, 7, 64}, o), k = torch::randn({1, 2, 19, 64}, o), v = torch::randn({1, 2, 19, 64}, o);
  set_attention_path(pvm::AttentionPath::Fused);
  auto fused = gqa_attention(q, k, v, 12, {}, {});
  set_attention_path(pvm::AttentionPath::Explicit);
  auto expl = gqa_attention(q, k, v, 12, {}, {});
  set_attention_path(pvm::AttentionPath::Auto);
  EXPECT_LT((fused - expl).abs().max().item<float>(), 1e-4);
}

TEST(Cuda, Bf16TracksF32) {
  PVM_REQUIRE_CUDA();
  NoTf32 exact;
  Tiny t(/*with_pvm=*/true);
  auto ref = t.logits(t.ids);  // CPU f32
  t.m->to(torch::kCUDA, torch::kBFloat16);
  auto bf = t.logits(t.ids);
  // bf16 weights and activations: close to f32, not equal. Same argmax on most positions.
  const float scale = ref.abs().max().item<float>();
  EXPECT_LT((ref - bf).abs().max().item<float>(), 0.05f * scale);
  auto agree = (ref.argmax(-1) == bf.argmax(-1)).to(torch::kFloat).mean().item<float>();
  EXPECT_GE(agree, 0.8f);
}

TEST(Cuda, DeviceErrorsAreNotRaisedWhenPresent) {
  PVM_REQUIRE_CUDA();
  EXPECT_TRUE(parse_device("cuda").is_cuda());
  EXPECT_TRUE(parse_device("auto").is_cuda());
  EXPECT_EQ(parse_dtype("auto", parse_device("cuda")), torch::kBFloat16);
  const auto b = build_info();
  EXPECT_TRUE(b.cuda_compiled);
  EXPECT_GE(b.cuda_devices, 1);
}

// On a machine without a device, a CUDA-enabled build says so (not "no CUDA in this build").
TEST(Cuda, BuildHasCudaCompiledIn) {
  const auto b = build_info();
  EXPECT_TRUE(b.cuda_compiled) << "LibTorch " << b.libtorch << " was built without CUDA";
  EXPECT_FALSE(b.cuda_runtime.empty());
  if (!pvm::cuda_available()) {
    try {
      parse_device("cuda");
      FAIL() << "expected an error";
    } catch (const pvm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device is present"), std::string::npos) << e.what();
    }
  }
}
