#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/command.h"
#include "engine/base/error.h"
#include "engine/base/version.h"
#include "engine/device.h"

// What a bug report needs: our version, the LibTorch built against, whether CUDA is compiled in
// and whether a device is present (a CUDA build on a machine without a GPU says so).
PVM_COMMAND("version", "print versions of pvm and LibTorch, CUDA compiled in / devices present", "[--json]",
            [](const std::vector<std::string>& args) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json") json = true;
    else throw pvm::Error("version: unknown option '" + a + "' (only --json)");
  }
  const auto b = pvm::build_info();
  std::string backends;
  for (const auto& x : b.dist_backends) backends += (backends.empty() ? "" : ",") + x;
  if (json) {
    nlohmann::json j = {{"pvm", pvm::version()},           {"libtorch", b.libtorch},
                        {"cuda_compiled", b.cuda_compiled}, {"cuda_runtime", b.cuda_runtime},
                        {"cuda_devices", b.cuda_devices},   {"dist_backends", b.dist_backends}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("pvm %s\nLibTorch %s\nCUDA compiled in: %s\nCUDA devices: %d%s\ndata parallel: %s\n",
              pvm::version().c_str(), b.libtorch.c_str(),
              b.cuda_compiled ? ("yes (CUDA runtime " + b.cuda_runtime + ")").c_str() : "no", b.cuda_devices,
              b.cuda_devices == 0 ? " (none present: --device cuda is unavailable)" : "",
              backends.empty() ? "none" : backends.c_str());
  return 0;
});
