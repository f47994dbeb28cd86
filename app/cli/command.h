// CLI sub-command registry: each app/cli/cmd_*.cpp registers itself with PVM_COMMAND.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/base/cli_args.h"
#include "engine/pipeline.h"

namespace pvm::cli {

struct Command {
  std::string name, summary, usage;
  std::function<int(const std::vector<std::string>& args)> run;  // args exclude "pvm <name>"
};

std::map<std::string, Command>& registry();

struct Registrar {
  Registrar(Command c) { registry()[c.name] = std::move(c); }
};

// The options every model-running command shares: --model, --device, --dtype, --tokenizer, --pvm,
// --threads.
inline OpenOptions open_options(const Args& a, bool quiet) {
  OpenOptions o;
  o.model_dir = model_dir_or_default(a.get("--model"));
  o.device = a.get("--device", "auto");
  o.dtype = a.get("--dtype", "auto");
  o.tokenizer = a.get("--tokenizer");
  o.adapter = a.get("--pvm");
  o.vismem = a.get("--vismem");
  o.quiet = quiet;
  o.threads = int(a.get_int("--threads", 0, 0, 1024));  // 0 = default_cpu_threads
  return o;
}

#define PVM_CONCAT2(a, b) a##b
#define PVM_CONCAT(a, b) PVM_CONCAT2(a, b)
#define PVM_COMMAND(...) static ::pvm::cli::Registrar PVM_CONCAT(pvm_cmd_, __LINE__)({__VA_ARGS__})

}  // namespace pvm::cli
