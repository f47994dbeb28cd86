#include "engine/base/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

namespace pvm {

namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::atomic<uint64_t> g_temp_seq{0};

void fsync_dir_best_effort(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);  // some file systems refuse fsync on directories; the rename already happened
  ::close(fd);
}

}  // namespace

AtomicWriter::AtomicWriter(const std::string& path) : path_(path) {
  if (path.empty()) throw Error("atomic write: empty file name");
  if (path.back() == '/') throw file_error(path, "is a directory name, not a file name");
  // pid keeps processes apart, the sequence number keeps threads of one process apart.
  tmp_ = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_temp_seq.fetch_add(1));
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    int err = errno;
    throw file_error(path, "cannot create temp file " + tmp_ + ": " + errno_text(err));
  }
  // Keep the permission bits of a file we replace.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) (void)::fchmod(fd_, st.st_mode & 07777);
}

AtomicWriter::~AtomicWriter() {
  if (!committed_) abort();
}

void AtomicWriter::abort() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!committed_ && !tmp_.empty()) {
    ::unlink(tmp_.c_str());
    tmp_.clear();
  }
}

void AtomicWriter::fail(const std::string& what, int err) {
  abort();
  throw file_error(path_, what + (err ? ": " + errno_text(err) : std::string()));
}

void AtomicWriter::write(const void* data, size_t n) {
  if (committed_ || fd_ < 0) throw file_error(path_, "write after commit or abort");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    size_t chunk = n < (size_t(1) << 30) ? n : (size_t(1) << 30);
    ssize_t w = ::write(fd_, p, chunk);
    if (w < 0) {
      int err = errno;
      if (err == EINTR) continue;
      fail("write failed after " + std::to_string(written_) + " bytes", err);
    }
    if (w == 0) fail("write made no progress after " + std::to_string(written_) + " bytes", 0);
    p += w;
    n -= size_t(w);
    written_ += uint64_t(w);
  }
}

void AtomicWriter::commit() {
  if (committed_ || fd_ < 0) throw file_error(path_, "commit after commit or abort");
  if (::fsync(fd_) != 0) {
    int err = errno;
    fail("fsync failed", err);
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    int err = errno;
    fail("close failed", err);
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    fail("cannot rename " + tmp_ + " into place", err);
  }
  committed_ = true;
  fsync_dir_best_effort(parent_dir(path_));
}

void atomic_write_file(const std::string& path, const std::string& bytes) {
  AtomicWriter w(path);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

std::string read_file_to_string(const std::string& path, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw file_error(path, err == ENOENT ? std::string("no such file") : "cannot open: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw file_error(path, "cannot stat: " + errno_text(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw file_error(path, "is a directory, expected a file");
  }
  if (st.st_size > 0 && uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    throw file_error(path, "file is " + std::to_string(st.st_size) + " bytes, larger than the limit of " +
                               std::to_string(max_bytes));
  }
  std::string out;
  if (st.st_size > 0) out.reserve(size_t(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      throw file_error(path, "read failed: " + errno_text(err));
    }
    if (r == 0) break;
    if (out.size() + size_t(r) > max_bytes) {
      ::close(fd);
      throw file_error(path, "file is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, size_t(r));
  }
  ::close(fd);
  return out;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parent_dir(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir == ".") return name;
  if (!name.empty() && name[0] == '/') return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string base_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

}  // namespace pvm
