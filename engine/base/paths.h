// Where the tools find and put things by default (torch-free: the CLI, the trainer and the studio
// share it).
#pragma once
#include <string>

namespace pvm {

// assets/default-model of the source folder when it holds a config.json, else "".
std::string default_model_dir();

}  // namespace pvm
