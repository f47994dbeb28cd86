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

// The dilution intervention (engine/generate.h): --visual-scale S multiplies every generated token's
// attention on the image by S; --visual-restore K further by (n / P)^K, n the keys the token sees, P
// the prompt's length; --history-window N lets a generated token see only the last N generated tokens
// (and the whole prompt). Checked before the model loads; none goes with VisMem.
struct VisualIntervention {
  double scale = 1.0, restore = 0.0;
  int64_t window = 0;
  bool on() const { return scale != 1.0 || restore != 0.0 || window != 0; }
};
inline VisualIntervention visual_intervention(const Args& a, bool vismem) {
  VisualIntervention v;
  v.scale = a.get_double("--visual-scale", 1.0);
  if (!(v.scale > 0.0 && v.scale <= 1e6)) throw Error("option --visual-scale: out of range (must be in (0, 1e6])");
  v.restore = a.get_double("--visual-restore", 0.0);
  if (!(v.restore >= -4.0 && v.restore <= 4.0)) throw Error("option --visual-restore: out of range (must be in [-4, 4])");
  v.window = a.get_int("--history-window", 0, 0, 1 << 20);
  if (v.on() && vismem) throw Error("options --visual-scale/--visual-restore/--history-window and --vismem exclude each other");
  return v;
}

#define PVM_CONCAT2(a, b) a##b
#define PVM_CONCAT(a, b) PVM_CONCAT2(a, b)
#define PVM_COMMAND(...) static ::pvm::cli::Registrar PVM_CONCAT(pvm_cmd_, __LINE__)({__VA_ARGS__})

}  // namespace pvm::cli
