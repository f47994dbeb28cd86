#include "engine/base/paths.h"

#include <cstdlib>
#include <filesystem>

#include "engine/base/version.h"

namespace pvm {

namespace fs = std::filesystem;

std::string default_model_dir() {
  auto d = fs::path(source_dir()) / "assets" / "default-model";
  return fs::exists(d / "config.json") ? d.string() : "";
}

std::string default_runs_dir() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (!env("PVM_RUNS_DIR").empty()) return env("PVM_RUNS_DIR");
  fs::path data = env("XDG_DATA_HOME");
  if (data.empty() || data.is_relative()) {  // the XDG spec ignores relative values
    const std::string home = env("HOME");
    data = home.empty() ? fs::temp_directory_path() : fs::path(home) / ".local" / "share";
  }
  return (data / "pvm-studio" / "runs").string();
}

}  // namespace pvm
