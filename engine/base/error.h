// One error type for every user-facing failure: the message is a single line that names the
// file (or option) and the problem, e.g. "model.safetensors: header length 9e9 beyond file size 12".
#pragma once
#include <new>
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

// Rethrow the exception in flight (call inside a catch block) as a one-line pvm::Error saying which
// file and what was being done: allocator failures (std::bad_alloc, c10's "out of memory" / "not
// enough memory") become "<where>: out of memory while <doing>", other library errors keep their
// first line. A pvm::Error passes unchanged: it already names its file.
[[noreturn]] inline void rethrow_with_context(const std::string& where, const std::string& doing) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw file_error(where, "out of memory while " + doing);
  } catch (const std::exception& e) {
    std::string m = e.what();
    auto nl = m.find('\n');
    if (nl != std::string::npos) m = m.substr(0, nl);
    if (m.find("out of memory") != std::string::npos || m.find("not enough memory") != std::string::npos)
      throw file_error(where, "out of memory while " + doing + " (" + m + ")");
    throw file_error(where, doing + " failed: " + m);
  }
}

}  // namespace pvm
