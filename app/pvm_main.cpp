// pvm: the headless CLI. Every sub-command lives in app/cli/cmd_*.cpp and registers itself.
#include <cstdio>
#include <exception>
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
      return 0;
    }
  try {
    return it->second.run(args);
  } catch (const pvm::Error& e) {
    std::fprintf(stderr, "pvm %s: error: %s\n", argv[1], e.what());
    return 1;
  } catch (const std::exception& e) {
    // torch errors carry multi-line backtraces: keep the first line only.
    std::string msg = e.what();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    std::fprintf(stderr, "pvm %s: error: %s\n", argv[1], msg.c_str());
    return 1;
  }
}
