// CLI sub-command registry: each app/cli/cmd_*.cpp registers itself with PVM_COMMAND.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pvm::cli {

struct Command {
  std::string name, summary, usage;
  std::function<int(const std::vector<std::string>& args)> run;  // args exclude "pvm <name>"
};

std::map<std::string, Command>& registry();

struct Registrar {
  Registrar(Command c) { registry()[c.name] = std::move(c); }
};

#define PVM_CONCAT2(a, b) a##b
#define PVM_CONCAT(a, b) PVM_CONCAT2(a, b)
#define PVM_COMMAND(...) static ::pvm::cli::Registrar PVM_CONCAT(pvm_cmd_, __LINE__)({__VA_ARGS__})

}  // namespace pvm::cli
