// Small file-system helpers shared by checkpoint, config and run-file writers.
//
// Every write of a user-visible file goes through AtomicWriter / atomic_write_file: data is written
// to "<path>.tmp.<pid>", fsync'ed, then renamed over <path> (and the parent directory fsync'ed), so a
// crash or error midway leaves either the old file or the new one, never a partial file. On failure
// the temp file is removed and a pvm::Error "<path>: <problem>" is thrown.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/base/error.h"

namespace pvm {

// Streaming atomic writer. Destroying it without commit() removes the temp file (old file untouched).
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path);  // creates the temp file; throws on failure
  ~AtomicWriter();                                 // aborts (removes temp) unless committed
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t n);  // all-or-throw (handles short writes / EINTR)
  void commit();                           // fsync + close + rename + fsync(dir)
  void abort() noexcept;                   // close + remove temp; idempotent

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  uint64_t bytes_written() const { return written_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);  // abort() then throw
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t written_ = 0;
};

// Write `bytes` to `path` atomically (temp + fsync + rename).
void atomic_write_file(const std::string& path, const std::string& bytes);

// Read a whole regular file. Errors ("<path>: no such file", "... is a directory", "... larger than
// N bytes") are pvm::Error. `max_bytes` guards against reading huge files by mistake.
std::string read_file_to_string(const std::string& path, uint64_t max_bytes = uint64_t(1) << 30);

bool path_exists(const std::string& path);
bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);
// Directory part of a path ("a/b/c.txt" -> "a/b", "c.txt" -> "."), and "dir/name" joining.
std::string parent_dir(const std::string& path);
std::string join_path(const std::string& dir, const std::string& name);
std::string base_name(const std::string& path);

}  // namespace pvm
