#include <gtest/gtest.h>

#include "engine/base/error.h"
#include "engine/device.h"

#include <ATen/Context.h>

TEST(Device, ParsesCpuAndDtypes) {
  auto d = pvm::parse_device("cpu");
  EXPECT_TRUE(d.is_cpu());
  EXPECT_EQ(pvm::parse_dtype("bf16", d), torch::kBFloat16);
  EXPECT_EQ(pvm::parse_dtype("auto", d), torch::kFloat32);
  EXPECT_THROW(pvm::parse_dtype("int4", d), pvm::Error);
  EXPECT_THROW(pvm::parse_device("tpu"), pvm::Error);
}

TEST(Device, CudaOnCpuOnlyBuildIsAClearError) {
  if (pvm::cuda_available()) GTEST_SKIP() << "CUDA present";
  try {
    pvm::parse_device("cuda");
    FAIL() << "expected an error";
  } catch (const pvm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA"), std::string::npos);
  }
}

// f32 on CUDA is exact f32: loading a model on CUDA turns TF32 off for cuBLAS and cuDNN (the GPU
// run found the vision patch embedding 2e-3 off the CPU under PyTorch's default cuDNN TF32).
TEST(Device, ExactF32TurnsTf32Off) {
  at::globalContext().setAllowTF32CuDNN(true);
  pvm::cuda_exact_f32();
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
  EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
}
