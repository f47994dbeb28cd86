#include <cstdio>

#include "app/cli/command.h"
#include "engine/base/version.h"
#include "engine/torch_pch.h"

PVM_COMMAND("version", "print versions of pvm and LibTorch", "", [](const std::vector<std::string>&) {
  std::printf("pvm %s (LibTorch %s, cuda %s)\n", pvm::version().c_str(), TORCH_VERSION,
              pvm::compat::cuda_available() ? "available" : "not available");
  return 0;
});
