// Default folders: training runs go to $PVM_RUNS_DIR, else the XDG data folder, never the source tree.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "engine/base/paths.h"
#include "engine/base/version.h"

namespace {

// Sets (or unsets, with nullptr) an environment variable for the scope.
struct EnvVar {
  std::string name, old;
  bool had;
  EnvVar(const char* n, const char* v) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (o) old = o;
    if (v) setenv(n, v, 1);
    else unsetenv(n);
  }
  ~EnvVar() {
    if (had) setenv(name.c_str(), old.c_str(), 1);
    else unsetenv(name.c_str());
  }
};

}  // namespace

TEST(Paths, RunsDirFollowsTheEnvironmentNotTheSourceTree) {
  {
    EnvVar r("PVM_RUNS_DIR", "/tmp/pvm_runs_x");
    EXPECT_EQ(pvm::default_runs_dir(), "/tmp/pvm_runs_x");
  }
  EnvVar r("PVM_RUNS_DIR", nullptr);
  {
    EnvVar x("XDG_DATA_HOME", "/data/me");
    EXPECT_EQ(pvm::default_runs_dir(), "/data/me/pvm-studio/runs");
  }
  EnvVar x("XDG_DATA_HOME", nullptr);
  EnvVar h("HOME", "/home/someone");
  EXPECT_EQ(pvm::default_runs_dir(), "/home/someone/.local/share/pvm-studio/runs");
  EXPECT_EQ(pvm::default_runs_dir().rfind(pvm::source_dir(), 0), std::string::npos);
}
