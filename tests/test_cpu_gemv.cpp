// engine/cpu_gemv (issue 22): decode's AVX-512 matrix-vector loops against a float64 reference and
// torch's linear, on shapes with row counts that are not multiples of the kernel's four-row block,
// 1..8 inputs, bias, and the cases that must fall back to torch (gradients, odd K, other dtypes).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/cpu_gemv.h"
#include "engine/nn.h"

using pvm::cpu_gemv;

namespace {

// The kernels are tested on every CPU that has the instructions, whether or not they are the
// default there (cpu_gemv_default()).
bool have(torch::ScalarType dt) {
  pvm::set_cpu_gemv_enabled(true);
  auto x = torch::ones({1, 32}, torch::TensorOptions().dtype(dt));
  auto w = torch::ones({4, 32}, torch::TensorOptions().dtype(dt));
  torch::NoGradGuard ng;
  return cpu_gemv(x, w).has_value();
}

}  // namespace

TEST(CpuGemv, MatchesAFloat64ReferenceToTheDtypesRounding) {
  for (auto dt : {torch::kFloat, torch::kBFloat16}) {
    if (!have(dt)) {
      std::printf("[cpu_gemv] %s: this CPU lacks the instructions, torch runs it\n", c10::toString(dt));
      continue;
    }
    torch::manual_seed(3);
    torch::NoGradGuard ng;
    for (int64_t M : {1, 3, 8})
      for (int64_t N : {1, 5, 67, 1030})
        for (int64_t K : {32, 96, 2048}) {
          auto w = (torch::randn({N, K}) * 0.05).to(dt);
          auto x = torch::randn({M, K}).to(dt);
          auto b = torch::randn({N}).to(dt);
          auto y = cpu_gemv(x, w, b);
          ASSERT_TRUE(y.has_value()) << M << "x" << K << " @ " << N;
          ASSERT_EQ(y->scalar_type(), dt);
          ASSERT_EQ(y->sizes(), (std::vector<int64_t>{M, N}));
          // f64 reference of the rounded inputs; the bias is added in the output dtype as torch does.
          auto ref = torch::matmul(x.to(torch::kDouble), w.to(torch::kDouble).t());
          auto want = (ref.to(dt) + b).to(torch::kDouble);
          auto got = y->to(torch::kDouble);
          // bf16: at most one unit in the last place (8 bits) apart; f32: accumulation-order noise.
          const double rel = dt == torch::kBFloat16 ? 1.0 / 128 : 1e-5;
          auto tol = want.abs() * rel + (dt == torch::kBFloat16 ? 2e-2 : 1e-5);
          EXPECT_TRUE(((got - want).abs() <= tol).all().item<bool>())
              << c10::toString(dt) << " M=" << M << " N=" << N << " K=" << K
              << " max err " << (got - want).abs().max().item<double>();
          // and against torch's own linear, the path it replaces
          auto t = torch::nn::functional::linear(x, w, b).to(torch::kDouble);
          EXPECT_TRUE(((got - t).abs() <= tol * 2).all().item<bool>()) << (got - t).abs().max().item<double>();
        }
  }
}

TEST(CpuGemv, KeepsLeadingDimsAndFallsBackWhereItDoesNotApply) {
  if (!have(torch::kFloat)) GTEST_SKIP() << "no AVX-512 on this CPU";
  torch::NoGradGuard ng;
  auto w = torch::randn({40, 64});
  auto x3 = torch::randn({2, 1, 64});
  auto y = cpu_gemv(x3, w);
  ASSERT_TRUE(y.has_value());
  EXPECT_EQ(y->sizes(), (std::vector<int64_t>{2, 1, 40}));
  EXPECT_TRUE(torch::allclose(*y, torch::matmul(x3, w.t()), 1e-5, 1e-5));
  EXPECT_FALSE(cpu_gemv(torch::randn({9, 64}), w).has_value()) << "more rows than the limit: a matmul";
  EXPECT_FALSE(cpu_gemv(torch::randn({1, 40}), torch::randn({8, 40})).has_value()) << "K not a multiple of 16";
  EXPECT_FALSE(cpu_gemv(torch::randn({1, 64}).to(torch::kDouble), w.to(torch::kDouble)).has_value());
  EXPECT_FALSE(cpu_gemv(torch::randn({1, 64}), w.t().contiguous().t()).has_value()) << "non-contiguous weight";
  pvm::set_cpu_gemv_enabled(false);
  EXPECT_FALSE(cpu_gemv(torch::randn({1, 64}), w).has_value());
  pvm::set_cpu_gemv_enabled(true);
}

TEST(CpuGemv, TrainingKeepsTorchsOpAndItsGradients) {
  if (!have(torch::kFloat)) GTEST_SKIP() << "no AVX-512 on this CPU";
  auto w = torch::randn({16, 32}, torch::requires_grad());
  auto x = torch::randn({1, 32});
  EXPECT_FALSE(cpu_gemv(x, w).has_value());
  auto y = pvm::linear_rows(x, w);  // the model's linear: torch's op, with a gradient
  y.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(torch::allclose(w.grad(), x.expand({16, 32})));
}
