// Safetensors checkpoint I/O without torch: a validating memory-mapped reader, a multi-shard
// checkpoint view (HF `model.safetensors.index.json` layout), and atomic writers.
//
// File format: [u64 little-endian N][N bytes JSON header][data]. The header maps tensor names to
// {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
// section) plus an optional "__metadata__": {string: string}. Every problem with a file is reported as
// pvm::Error "<path>: <problem>"; nothing in a file can make the reader crash or read out of bounds
// (short of the file being truncated by someone else while it is mapped).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/error.h"

namespace pvm {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);             // bytes per element
const char* dtype_to_string(DType t);   // safetensors spelling: "F32", "BF16", "BOOL", ...
bool dtype_from_string(const std::string& s, DType* out);  // false for unknown names
DType dtype_from_string(const std::string& s);             // throws pvm::Error "unknown dtype 's'"
std::vector<DType> all_dtypes();

// A tensor inside a mapped file (or, for writing, any caller-owned buffer). `data` is read-only and
// only valid while its owner (SafetensorsFile / Checkpoint / caller buffer) lives.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty = 0-d scalar (1 element)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  // Product of shape (1 for 0-d); -1 if a dim is negative or the product overflows int64 (never the
  // case for views handed out by SafetensorsFile, which validates this).
  int64_t numel() const;
};

// numel * dtype_size with overflow checks; false if any dim is negative or the product overflows.
bool tensor_nbytes(const std::vector<int64_t>& shape, DType dtype, uint64_t* out);

class SafetensorsFile {
 public:
  // Largest accepted JSON header (the format's reference implementation uses the same cap).
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  // mmap (read-only, MAP_PRIVATE) and validate the whole header. Throws pvm::Error "<path>: ...".
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }  // header (file) order
  const TensorView* find(const std::string& name) const;             // nullptr if absent
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_start() const { return data_start_; }  // file offset of the data section
  uint64_t total_bytes() const;                         // sum of tensor nbytes

  // Tell the kernel we are done with a tensor's pages (madvise MADV_DONTNEED, rounded out to whole
  // pages). Safe: the mapping is private and never written, so a later access re-reads the file.
  // Lets a loader that copies weights into torch keep peak RSS at ~one copy. Views from other files
  // are ignored. release(name) does the same by name (unknown name = no-op).
  void advise_done(const TensorView& v) const;
  void release(const std::string& name) const;
  void advise_willneed(const TensorView& v) const;  // MADV_WILLNEED: prefetch before copying

 private:
  SafetensorsFile() = default;
  void parse_header(const std::string& header);
  void advise(const uint8_t* p, size_t n, int advice) const;

  std::string path_;
  const uint8_t* base_ = nullptr;  // mapping (nullptr for an empty mapping)
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<std::string> names_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Parsed `model.safetensors.index.json`.
struct ShardIndex {
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name (relative)
  std::map<std::string, std::string> metadata;    // "metadata" object, values stringified
  int64_t total_size = -1;                         // metadata.total_size, -1 if absent
};
// Validates: JSON object, "weight_map" object of string values, shard names relative without "..",
// optional "metadata" object. Errors name `where`.
ShardIndex parse_shard_index(const std::string& json_text, const std::string& where);

// A (possibly sharded) checkpoint: one or more SafetensorsFile plus a name -> tensor map.
class Checkpoint {
 public:
  // `dir_or_file` is one of
  //  - a safetensors file (any name, e.g. model.safetensors, adapter.safetensors, pvm.safetensors),
  //  - a `*.index.json` file (sharded; shards are resolved next to it),
  //  - a directory with `model.safetensors` or `model.safetensors.index.json` (both = ambiguous error).
  // Each shard is opened (mapped) once. A shard named in the index but missing on disk, or a tensor
  // listed in the index but absent from its shard, is an error naming the index and the shard.
  static Checkpoint open(const std::string& dir_or_file);

  Checkpoint() = default;
  const std::string& path() const { return path_; }  // what open() was given
  std::vector<std::string> names() const;             // sorted
  const TensorView* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> files() const;  // shard paths, in index order of first use
  const std::vector<std::shared_ptr<SafetensorsFile>>& shards() const { return shards_; }
  // The shard holding `name` (nullptr if absent) - e.g. to call advise_done after copying.
  const SafetensorsFile* shard_of(const std::string& name) const;
  void release(const std::string& name) const;  // advise_done on the owning shard
  uint64_t total_bytes() const;                 // sum of tensor nbytes over names()
  size_t size() const { return entries_.size(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // first shard's

 private:
  struct Entry {
    size_t shard;
    const TensorView* view;
  };
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Atomically write a safetensors file (temp "<path>.tmp.<pid>.<n>" + fsync + rename; the temp is
// removed on failure and the old file, if any, is left intact). Header keys keep the given order;
// the data is laid out largest element size first, so every tensor is naturally aligned in the file
// (and in a page-aligned mapping) without gaps. Throws pvm::Error "<path>: ...".
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Write `tensors` as HF shards `model-0000i-of-0000N.safetensors` (greedy in the given order, a new
// shard when adding a tensor would exceed `max_shard_bytes`; a single larger tensor gets its own
// shard) plus `model.safetensors.index.json` (metadata.total_size + sorted weight_map), each file
// atomic, the index last. Creates `dir` if needed. Returns the written paths (shards, then index).
std::vector<std::string> write_sharded(const std::string& dir, const std::vector<TensorView>& tensors,
                                       uint64_t max_shard_bytes,
                                       const std::map<std::string, std::string>& metadata = {});

}  // namespace pvm
