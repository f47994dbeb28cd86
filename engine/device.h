// Device and dtype selection shared by CLI, studio and trainer.
#pragma once
#include <string>
#include <vector>

#include "engine/torch_pch.h"

namespace pvm {

// "cpu", "cuda", "cuda:1"; "auto" picks cuda when present. Asking for cuda on a CPU-only build or
// machine is an error that says which of the two it is.
torch::Device parse_device(const std::string& s);
// "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16"; "auto" = bf16 on cuda, f32 on cpu.
torch::ScalarType parse_dtype(const std::string& s, const torch::Device& dev);
std::string dtype_name(torch::ScalarType t);

// f32 on CUDA means f32: TF32 off in cuBLAS matmuls and cuDNN convolutions (PyTorch's default
// lets cuDNN convolutions, e.g. the vision patch embedding, run in TF32: 2e-3 off the CPU). Called
// whenever a model is built or loaded on CUDA; bf16 models are unaffected.
void cuda_exact_f32();

// True when a CUDA device can be used now (CUDA compiled in and a device present).
bool cuda_available();

// What this build and machine offer, for `pvm version` and run manifests.
struct BuildInfo {
  std::string libtorch;        // TORCH_VERSION of the headers built against, e.g. "2.11.0"
  bool cuda_compiled = false;  // LibTorch's CUDA library is linked (CUDA hooks registered)
  std::string cuda_runtime;    // CUDA runtime version LibTorch was built with, "13.0"; "" if none
  int cuda_devices = 0;        // devices present now
  std::vector<std::string> dist_backends;  // c10d backends compiled in: "gloo", "nccl"
};
BuildInfo build_info();

}  // namespace pvm
