// Where the tools find and put things by default (torch-free: the CLI, the trainer and the studio
// share it).
#pragma once
#include <string>

namespace pvm {

// assets/default-model of the source folder when it holds a config.json, else "".
std::string default_model_dir();

// Where training runs go unless a folder is named (`pvm train` without out, the studio's Training
// view): $PVM_RUNS_DIR, else $XDG_DATA_HOME/pvm-studio/runs, else ~/.local/share/pvm-studio/runs;
// never the source tree. Not created here.
std::string default_runs_dir();

}  // namespace pvm
