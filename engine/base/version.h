#pragma once
#include <string>
namespace pvm {
std::string version();        // project version
std::string source_dir();     // where assets/ lives (compile-time source dir, overridable by PVM_HOME)
}
