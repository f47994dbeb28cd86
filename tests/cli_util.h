// Running the `pvm` CLI from a test: the binary next to the test executable (or $PVM_BIN), with
// stdout and stderr captured.
#pragma once
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace pvm::testing {

// $PVM_BIN, else the `pvm` next to this test binary (same build directory); "" if neither.
inline std::string pvm_bin() {
  if (const char* b = std::getenv("PVM_BIN"); b && *b) return b;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string self(buf, size_t(n));
  std::string p = self.substr(0, self.find_last_of('/') + 1) + "pvm";
  return ::access(p.c_str(), X_OK) == 0 ? p : "";
}

struct CliResult {
  int rc = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `pvm <args>` (arguments must not need shell quoting) in a shell, capturing both streams
// into files under `dir`.
inline CliResult run_pvm(const std::string& args, const std::string& dir) {
  CliResult r;
  const std::string o = dir + "/stdout.txt", e = dir + "/stderr.txt";
  int st = std::system((pvm_bin() + " " + args + " >" + o + " 2>" + e).c_str());
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(o), r.err = slurp(e);
  return r;
}

}  // namespace pvm::testing
