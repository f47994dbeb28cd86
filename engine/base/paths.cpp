#include "engine/base/paths.h"

#include <filesystem>

#include "engine/base/version.h"

namespace pvm {

namespace fs = std::filesystem;

std::string default_model_dir() {
  auto d = fs::path(source_dir()) / "assets" / "default-model";
  return fs::exists(d / "config.json") ? d.string() : "";
}

}  // namespace pvm
