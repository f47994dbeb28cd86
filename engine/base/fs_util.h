// Small file-system helpers shared by checkpoint, config and run-file writers.
//
// Every write of a user-visible file goes through AtomicWriter / atomic_write_file: data is written
// to "<path>.tmp.<pid>", fsync'ed, then renamed over <path> (and the parent directory fsync'ed), so a
// crash or error midway leaves either the old file or the new one, never a partial file. On failure
// the temp file is removed and a pvm::Error "<path>: <problem>" is thrown.
#pragma once
#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <vector>

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

// The one place that opens a file for reading. Opens without blocking (a FIFO would otherwise wait
// for a writer forever) and accepts only a regular file; errors are one line naming the path and
// what was expected ("<path>: cannot open <what>: no such file", "<path>: is a directory, not a
// <what> file", "<path>: is not a regular file (<what> file expected)"). Returns the fd in
// blocking mode; the caller closes it. `size` receives the file size.
int open_regular_file(const std::string& path, const std::string& what, uint64_t* size = nullptr);

// open_regular_file, then close: the same one-line errors, for a check ahead of a slower load
// (the studio checks its inputs before it posts work to its model thread).
void check_regular_file(const std::string& path, const std::string& what);

// A regular file opened for reading as a std::istream (through open_regular_file), for readers
// that go line by line (JSONL data, traces, logs, hashes of large files): they refuse FIFOs, devices
// and folders like every other reader. A read error ends the stream; finish() then throws it as
// "<path>: read failed: <reason>".
class InputFile {
 public:
  InputFile(const std::string& path, const std::string& what);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  std::istream& stream() { return *in_; }
  uint64_t size() const { return size_; }
  void finish() const;  // throws when the stream ended on a read error

 private:
  class Buf;
  std::unique_ptr<Buf> buf_;
  std::unique_ptr<std::istream> in_;
  std::string path_;
  uint64_t size_ = 0;
};

// Read a whole regular file (via open_regular_file). `max_bytes` guards against reading huge files
// by mistake; `what` names the kind of file in errors ("config", "tokenizer", "image").
std::string read_file_to_string(const std::string& path, uint64_t max_bytes = uint64_t(1) << 30,
                                 const std::string& what = "input");

// Check that `path` can be created as an output file: its folder exists and it is not a directory.
// "<path>: output folder <dir> does not exist" / "<path>: is a directory, expected an output file
// name". `what` names the output ("trace", "plot").
void check_output_file(const std::string& path, const std::string& what);

// An exclusive lock on a folder (a training run): "<dir>/<name>" holds the owner's pid and is
// flock()ed for the lifetime of the object, so the kernel releases it when the process dies, even
// by kill -9. A second locker fails with "<dir>: <what> is in use by pid N (...)". A lock file left
// by a dead process is taken over; stale_pid() then says whose it was, for the log.
class DirLock {
 public:
  DirLock(const std::string& dir, const std::string& what, const std::string& name = "run.lock");
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  long stale_pid() const { return stale_pid_; }  // 0 unless a dead owner's lock was taken over
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  long stale_pid_ = 0;
};

// Remove what an interrupted writer left in `dir`: folders and files whose name starts with
// `prefix` (".tmp-" for checkpoint folders) and AtomicWriter temp files ("<name>.tmp.<pid>.<n>").
// Only call this while holding the folder's lock. Returns the names removed (for the log).
std::vector<std::string> remove_stale_temps(const std::string& dir, const std::string& prefix);

// create_directories with one-line errors: "<dir>: is a file, expected a <what> folder",
// "<dir>: cannot create the <what> folder: <reason>".
void make_dirs(const std::string& dir, const std::string& what);

bool path_exists(const std::string& path);
bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);
// Directory part of a path ("a/b/c.txt" -> "a/b", "c.txt" -> "."), and "dir/name" joining.
std::string parent_dir(const std::string& path);
std::string join_path(const std::string& dir, const std::string& name);
std::string base_name(const std::string& path);

}  // namespace pvm
