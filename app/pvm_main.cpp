// pvm: the headless CLI. Every sub-command lives in app/cli/cmd_*.cpp and registers itself.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "engine/base/error.h"

namespace pvm::cli {
std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}
}  // namespace pvm::cli

static void usage() {
  std::fprintf(stderr, "usage: pvm <command> [options]\n\ncommands:\n");
  for (auto& [name, c] : pvm::cli::registry())
    std::fprintf(stderr, "  %-12s %s\n", name.c_str(), c.summary.c_str());
  std::fprintf(stderr, "\n'pvm <command> --help' shows the options of one command.\n");
}

// Output that never arrived (stdout on a full disk, /dev/full, a closed pipe) is a failure: flush
// and check the stream state after every command, so `pvm ... > file` on a full disk exits 1.
static int check_stdout(const char* cmd, int rc) {
  std::cout.flush();
  errno = 0;
  bool bad = std::fflush(stdout) != 0 || std::ferror(stdout) || std::cout.fail();
  if (!bad) return rc;
  int err = errno;
  std::fprintf(stderr, "pvm %s: error: cannot write to standard output: %s\n", cmd,
               err ? std::strerror(err) : "write error");
  return rc == 0 ? 1 : rc;
}

static int run_command(const std::string& name, const pvm::cli::Command& c, const std::vector<std::string>& args) {
  try {
    return c.run(args);
  } catch (const pvm::Error& e) {
    std::fprintf(stderr, "pvm %s: error: %s\n", name.c_str(), e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "pvm %s: error: out of memory\n", name.c_str());
    return 1;
  } catch (const std::exception& e) {
    // torch errors carry multi-line backtraces: keep the first line only.
    std::string msg = e.what();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    std::fprintf(stderr, "pvm %s: error: %s\n", name.c_str(), msg.c_str());
    return 1;
  }
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  auto& reg = pvm::cli::registry();
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    std::fprintf(stderr, "pvm: error: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (auto& a : args)
    if (a == "--help" || a == "-h") {
      std::printf("usage: pvm %s %s\n\n%s\n", it->first.c_str(), it->second.usage.c_str(),
                  it->second.summary.c_str());
      return check_stdout(argv[1], 0);
    }
  return check_stdout(argv[1], run_command(it->first, it->second, args));
}
