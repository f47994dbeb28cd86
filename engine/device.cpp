#include "engine/device.h"

#include "engine/base/error.h"
#include "engine/distributed.h"

#include <ATen/Context.h>

namespace pvm {

torch::Device parse_device(const std::string& s) {
  if (s == "auto") return cuda_available() ? torch::Device("cuda") : torch::Device("cpu");
  if (s == "cpu") return torch::Device("cpu");
  if (s.rfind("cuda", 0) == 0) {
    if (!cuda_available()) {
      const bool compiled = at::globalContext().hasCUDART();
      throw Error("--device " + s + ": " +
                  (compiled ? std::string("no CUDA device is present on this machine")
                            : "this build has no CUDA (LibTorch " + std::string(TORCH_VERSION) + " without CUDA)") +
                  "; use --device cpu");
    }
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

bool cuda_available() { return torch::cuda::is_available(); }

void cuda_exact_f32() {
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
}

BuildInfo build_info() {
  BuildInfo b;
  b.libtorch = TORCH_VERSION;
  b.cuda_compiled = at::globalContext().hasCUDART();
  if (b.cuda_compiled) {
    const long v = at::globalContext().versionCUDART();  // e.g. 13000
    b.cuda_runtime = std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
    b.cuda_devices = (int)torch::cuda::device_count();
  }
  b.dist_backends = train::Distributed::backends();
  return b;
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
