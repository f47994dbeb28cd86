// Device and dtype selection shared by CLI, studio and trainer.
#pragma once
#include <string>

#include "engine/torch_pch.h"

namespace pvm {

// "cpu", "cuda", "cuda:1"; "auto" picks cuda when present. Asking for cuda on a CPU-only build or
// machine is an error that says so.
torch::Device parse_device(const std::string& s);
// "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16"; "auto" = bf16 on cuda, f32 on cpu.
torch::ScalarType parse_dtype(const std::string& s, const torch::Device& dev);
std::string dtype_name(torch::ScalarType t);

}  // namespace pvm
