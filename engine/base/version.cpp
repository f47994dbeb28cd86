#include "engine/base/version.h"

#include <cstdlib>

namespace pvm {
std::string version() { return "0.1.0"; }
std::string source_dir() {
  if (const char* h = std::getenv("PVM_HOME")) return h;
  return PVM_SOURCE_DIR;
}
}  // namespace pvm
