// One error type for every user-facing failure: the message is a single line that names the
// file (or option) and the problem, e.g. "model.safetensors: header length 9e9 beyond file size 12".
#pragma once
#include <stdexcept>
#include <string>

namespace pvm {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Error about a file: "<path>: <what>".
inline Error file_error(const std::string& path, const std::string& what) {
  return Error(path + ": " + what);
}

}  // namespace pvm
