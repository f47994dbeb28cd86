#include "engine/device.h"

#include "engine/base/error.h"

namespace pvm {

torch::Device parse_device(const std::string& s) {
  if (s == "auto") return compat::cuda_available() ? torch::Device("cuda") : torch::Device("cpu");
  if (s == "cpu") return torch::Device("cpu");
  if (s.rfind("cuda", 0) == 0) {
    if (!compat::cuda_available())
      throw Error("--device " + s + ": this build or machine has no CUDA (LibTorch " +
                  std::string(TORCH_VERSION) + ", cuda available: no); use --device cpu");
    try {
      return torch::Device(s);
    } catch (const std::exception&) {
      throw Error("--device: bad device '" + s + "' (use cpu, cuda or cuda:N)");
    }
  }
  throw Error("--device: unknown device '" + s + "' (use cpu, cuda, cuda:N or auto)");
}

torch::ScalarType parse_dtype(const std::string& s, const torch::Device& dev) {
  if (s == "auto") return dev.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  if (s == "f32" || s == "float32" || s == "fp32") return torch::kFloat32;
  if (s == "bf16" || s == "bfloat16") return torch::kBFloat16;
  if (s == "f16" || s == "float16" || s == "fp16") return torch::kFloat16;
  throw Error("--dtype: unknown dtype '" + s + "' (use f32, bf16, f16 or auto)");
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "f32";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "f16";
    default: return c10::toString(t);
  }
}

}  // namespace pvm
