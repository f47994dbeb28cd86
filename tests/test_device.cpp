#include <gtest/gtest.h>

#include "engine/base/error.h"
#include "engine/device.h"

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
