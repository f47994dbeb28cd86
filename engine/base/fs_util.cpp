#include "engine/base/fs_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
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
  // An output path that names a folder would only fail at the rename, with a confusing message.
  if (is_directory(path)) throw file_error(path, "is a directory, expected an output file name");
  // pid keeps processes apart, the sequence number keeps threads of one process apart.
  tmp_ = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_temp_seq.fetch_add(1));
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    int err = errno;
    const std::string dir = parent_dir(path);
    if (err == ENOENT && !path_exists(dir)) throw file_error(path, "cannot write: folder " + dir + " does not exist");
    if (err == ENOTDIR) throw file_error(path, "cannot write: " + dir + " is not a folder");
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

int open_regular_file(const std::string& path, const std::string& what, uint64_t* size) {
  if (path.empty()) throw Error("empty " + what + " file name");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) throw file_error(path, "cannot open " + what + ": no such file");
    throw file_error(path, "cannot open " + what + ": " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw file_error(path, "cannot stat " + what + ": " + errno_text(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw file_error(path, std::string("is a directory, not a") + (std::string("aeiou").find(what[0]) != std::string::npos ? "n " : " ") + what + " file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw file_error(path, "is not a regular file (" + what + " file expected)");
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) (void)::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  if (size) *size = uint64_t(st.st_size);
  return fd;
}

void check_regular_file(const std::string& path, const std::string& what) { ::close(open_regular_file(path, what)); }

// A read-only streambuf over a file descriptor (std::ifstream cannot take an fd, and opening by
// name again would undo the checks open_regular_file made).
class InputFile::Buf : public std::streambuf {
 public:
  explicit Buf(int fd) : fd_(fd) {}
  ~Buf() override { ::close(fd_); }
  int error = 0;

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    ssize_t n;
    do n = ::read(fd_, data_, sizeof data_);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
      if (n < 0) error = errno;
      return traits_type::eof();
    }
    setg(data_, data_, data_ + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  int fd_;
  char data_[1 << 16];
};

InputFile::InputFile(const std::string& path, const std::string& what) : path_(path) {
  int fd = open_regular_file(path, what, &size_);
  buf_ = std::make_unique<Buf>(fd);
  in_ = std::make_unique<std::istream>(buf_.get());
}

InputFile::~InputFile() = default;

void InputFile::finish() const {
  if (buf_->error) throw file_error(path_, "read failed: " + errno_text(buf_->error));
}

std::string read_file_to_string(const std::string& path, uint64_t max_bytes, const std::string& what) {
  uint64_t size = 0;
  int fd = open_regular_file(path, what, &size);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (size > max_bytes)
    throw file_error(path, what + " file is " + std::to_string(size) + " bytes, larger than the limit of " +
                               std::to_string(max_bytes));
  std::string out;
  out.reserve(size_t(size));
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw file_error(path, "read failed: " + errno_text(errno));
    }
    if (r == 0) break;
    if (out.size() + size_t(r) > max_bytes)
      throw file_error(path, what + " file is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    out.append(buf, size_t(r));
  }
  return out;
}

void check_output_file(const std::string& path, const std::string& what) {
  if (path.empty()) throw Error("empty " + what + " file name");
  if (path.back() == '/' || is_directory(path))
    throw file_error(path, "is a directory, expected a " + what + " file name");
  std::string dir = parent_dir(path);
  if (!is_directory(dir))
    throw file_error(path, path_exists(dir) ? "cannot write " + what + ": " + dir + " is not a folder"
                                            : "cannot write " + what + ": folder " + dir + " does not exist");
}

DirLock::DirLock(const std::string& dir, const std::string& what, const std::string& name)
    : path_(join_path(dir, name)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw file_error(path_, "cannot create the lock file of the " + what + ": " + errno_text(errno));
  auto read_pid = [&]() -> long {
    char buf[32] = {0};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
  };
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    long pid = read_pid();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw file_error(dir, "the " + what + " is in use by " + (pid > 0 ? "pid " + std::to_string(pid) : "another process") +
                                " (lock " + path_ + "); wait for it to finish or stop it first");
    throw file_error(path_, "cannot lock: " + errno_text(err));
  }
  // We hold the lock: a pid still in the file belongs to a process that died without unlocking.
  long old = read_pid();
  if (old > 0 && old != long(::getpid())) stale_pid_ = old;
  std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size())) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw file_error(path_, "cannot write the lock file: " + errno_text(err));
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  // Empty the file before unlocking, so the next owner does not report a stale lock.
  (void)::ftruncate(fd_, 0);
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

std::vector<std::string> remove_stale_temps(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    std::string n = it->path().filename().string();
    bool stale = !prefix.empty() && n.rfind(prefix, 0) == 0;
    // AtomicWriter temp: "<name>.tmp.<pid>.<seq>"
    auto t = n.rfind(".tmp.");
    if (!stale && t != std::string::npos && t > 0) {
      std::string rest = n.substr(t + 5);
      auto dot = rest.find('.');
      stale = dot != std::string::npos && dot > 0 && dot + 1 < rest.size() &&
              rest.find_first_not_of("0123456789.") == std::string::npos;
    }
    if (!stale) continue;
    std::error_code rec;
    std::filesystem::remove_all(it->path(), rec);
    if (!rec) removed.push_back(n);
  }
  return removed;
}

void make_dirs(const std::string& dir, const std::string& what) {
  if (dir.empty()) throw Error("empty " + what + " folder name");
  if (path_exists(dir) && !is_directory(dir)) throw file_error(dir, "is a file, expected a " + what + " folder");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw file_error(dir, "cannot create the " + what + " folder: " + ec.message());
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
