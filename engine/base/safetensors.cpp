#include "engine/base/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "engine/base/fs_util.h"

namespace pvm {

using json = nlohmann::json;

namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Names and JSON messages go into one-line error messages: escape control/non-ASCII bytes, cap length.
std::string printable(const std::string& s, size_t max_len = 120) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string q(const std::string& name) { return "'" + printable(name) + "'"; }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// nlohmann parses iteratively, but older releases destroy values recursively; a header of a million
// '[' must not blow the stack, so bound the nesting before parsing.
constexpr int kMaxJsonDepth = 64;
bool json_depth_ok(const std::string& text, int max_depth) {
  int depth = 0;
  bool in_string = false, escape = false;
  for (char ch : text) {
    if (in_string) {
      if (escape) escape = false;
      else if (ch == '\\') escape = true;
      else if (ch == '"') in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > max_depth) return false;
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return true;
}

// Parse JSON text; records the keys of the top-level object in order and the first duplicate key
// (nlohmann itself silently keeps the last of duplicate keys).
json parse_json_checked(const std::string& text, const std::string& where, const std::string& what,
                        std::vector<std::string>* top_keys, std::string* duplicate, bool* has_duplicate) {
  if (!json_depth_ok(text, kMaxJsonDepth))
    throw file_error(where, what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  std::set<std::string> seen;
  *has_duplicate = false;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && !*has_duplicate) {
        *has_duplicate = true;
        *duplicate = k;
      }
      if (top_keys) top_keys->push_back(k);
    }
    return true;
  };
  try {
    return json::parse(text, cb);
  } catch (const std::exception& e) {
    throw file_error(where, what + " is not valid JSON (" + printable(e.what(), 200) + ")");
  }
}

bool mul_overflow_u64(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return true;
  *out = a * b;
  return false;
}

// A JSON value as a non-negative int64 (rejects negatives, floats, and values above INT64_MAX).
bool json_nonneg_int(const json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
    *out = int64_t(u);
    return true;
  }
  if (v.is_number_integer()) {
    auto s = v.get<int64_t>();
    if (s < 0) return false;
    *out = s;
    return true;
  }
  return false;
}

bool valid_shard_name(const std::string& s) {
  if (s.empty() || s[0] == '/' || s.find('\0') != std::string::npos) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('/', start);
    if (end == std::string::npos) end = s.size();
    std::string part = s.substr(start, end - start);
    if (part == "..") return false;
    start = end + 1;
  }
  return s.back() != '/';
}

}  // namespace

// ---------------------------------------------------------------- dtypes

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return 1;
  }
  return 1;
}

const char* dtype_to_string(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

std::vector<DType> all_dtypes() {
  return {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
          DType::I32, DType::I16, DType::I8,   DType::U8,  DType::BOOL};
}

bool dtype_from_string(const std::string& s, DType* out) {
  for (DType t : all_dtypes())
    if (s == dtype_to_string(t)) {
      *out = t;
      return true;
    }
  return false;
}

DType dtype_from_string(const std::string& s) {
  DType t;
  if (!dtype_from_string(s, &t)) throw Error("unknown dtype " + q(s));
  return t;
}

bool tensor_nbytes(const std::vector<int64_t>& shape, DType dtype, uint64_t* out) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (mul_overflow_u64(n, uint64_t(d), &n)) return false;
  }
  *out = n;
  return true;
}

int64_t TensorView::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || mul_overflow_u64(n, uint64_t(d), &n)) return -1;
  }
  if (n > uint64_t(std::numeric_limits<int64_t>::max())) return -1;
  return int64_t(n);
}

// ---------------------------------------------------------------- reader

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  uint64_t size = 0;
  int fd = open_regular_file(path, ".safetensors", &size);
  if (size < 8) {
    ::close(fd);
    throw file_error(path, "file is " + std::to_string(size) + " bytes, too small for a safetensors header");
  }
  void* p = ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw file_error(path, "mmap failed: " + errno_text(map_err));

  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->base_ = static_cast<const uint8_t*>(p);
  f->size_ = size;

  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | f->base_[i];
  if (hlen > size - 8)
    throw file_error(path, "header length " + std::to_string(hlen) + " beyond file size " + std::to_string(size));
  if (hlen > kMaxHeaderBytes)
    throw file_error(path, "header length " + std::to_string(hlen) + " exceeds the limit of " +
                               std::to_string(kMaxHeaderBytes) + " bytes");
  f->data_start_ = 8 + hlen;
  f->parse_header(std::string(reinterpret_cast<const char*>(f->base_ + 8), size_t(hlen)));
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_t(size_));
}

void SafetensorsFile::parse_header(const std::string& header) {
  const std::string& P = path_;
  if (header.empty() || header.find_first_not_of(" \t\r\n") == std::string::npos)
    throw file_error(P, "header is empty");
  if (header[header.find_first_not_of(" \t\r\n")] != '{')
    throw file_error(P, "header is not a JSON object");
  std::vector<std::string> keys;
  std::string dup;
  bool has_dup = false;
  json j = parse_json_checked(header, P, "header", &keys, &dup, &has_dup);
  if (!j.is_object()) throw file_error(P, "header is not a JSON object");
  if (has_dup) throw file_error(P, "duplicate tensor name " + q(dup) + " in header");

  const uint64_t data_size = size_ - data_start_;
  names_.reserve(keys.size());
  tensors_.reserve(keys.size());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) per tensor (header order)

  for (const std::string& name : keys) {
    const json& e = j.at(name);
    if (name == "__metadata__") {
      if (!e.is_object()) throw file_error(P, "__metadata__ is not a JSON object");
      for (auto it = e.begin(); it != e.end(); ++it) {
        if (!it.value().is_string())
          throw file_error(P, "__metadata__ value for " + q(it.key()) + " is not a string");
        metadata_[it.key()] = it.value().get<std::string>();
      }
      continue;
    }
    const std::string T = "tensor " + q(name) + ": ";
    if (!e.is_object()) throw file_error(P, T + "entry is not a JSON object");
    auto dt = e.find("dtype");
    if (dt == e.end() || !dt->is_string()) throw file_error(P, T + "missing or non-string \"dtype\"");
    TensorView v;
    v.name = name;
    if (!dtype_from_string(dt->get<std::string>(), &v.dtype))
      throw file_error(P, T + "unknown dtype " + q(dt->get<std::string>()));
    auto sh = e.find("shape");
    if (sh == e.end() || !sh->is_array()) throw file_error(P, T + "missing or non-array \"shape\"");
    for (const json& d : *sh) {
      int64_t n;
      if (!json_nonneg_int(d, &n))
        throw file_error(P, T + "shape " + printable(sh->dump(), 80) + " is not a list of non-negative integers");
      v.shape.push_back(n);
    }
    auto off = e.find("data_offsets");
    int64_t b = 0, en = 0;
    if (off == e.end() || !off->is_array() || off->size() != 2 || !json_nonneg_int((*off)[0], &b) ||
        !json_nonneg_int((*off)[1], &en))
      throw file_error(P, T + "\"data_offsets\" must be [begin, end] with non-negative integers");
    const std::string offs = "offsets [" + std::to_string(b) + "," + std::to_string(en) + "]";
    if (b > en) throw file_error(P, T + offs + " have begin > end");
    if (uint64_t(en) > data_size)
      throw file_error(P, T + offs + " out of range (data is " + std::to_string(data_size) + " bytes)");
    uint64_t need = 0;
    if (!tensor_nbytes(v.shape, v.dtype, &need) || v.numel() < 0)
      throw file_error(P, T + "shape " + shape_str(v.shape) + " is too large");
    if (need != uint64_t(en - b))
      throw file_error(P, T + offs + " hold " + std::to_string(en - b) + " bytes but " + dtype_to_string(v.dtype) +
                              " " + shape_str(v.shape) + " needs " + std::to_string(need));
    v.data = base_ + data_start_ + uint64_t(b);
    v.nbytes = size_t(need);
    index_[name] = tensors_.size();
    names_.push_back(name);
    tensors_.push_back(std::move(v));
    ranges.emplace_back(uint64_t(b), uint64_t(en));
  }

  // No two non-empty tensors may share bytes.
  std::vector<size_t> order;
  for (size_t i = 0; i < ranges.size(); ++i)
    if (ranges[i].second > ranges[i].first) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    size_t a = order[k - 1], b = order[k];
    if (ranges[a].second > ranges[b].first)
      throw file_error(P, "tensors " + q(tensors_[a].name) + " and " + q(tensors_[b].name) + " overlap");
  }
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

uint64_t SafetensorsFile::total_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes;
  return n;
}

void SafetensorsFile::advise(const uint8_t* p, size_t n, int advice) const {
  if (!base_ || n == 0 || p < base_ || p >= base_ + size_ || n > size_t((base_ + size_) - p)) return;
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE) > 0 ? ::sysconf(_SC_PAGESIZE) : 4096);
  uintptr_t lo = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + n + page - 1) & ~(page - 1);
  // The mapping starts page-aligned and covers whole pages, so [lo, hi) stays inside it.
  (void)::madvise(reinterpret_cast<void*>(lo), size_t(hi - lo), advice);
}

void SafetensorsFile::advise_done(const TensorView& v) const { advise(v.data, v.nbytes, MADV_DONTNEED); }
void SafetensorsFile::advise_willneed(const TensorView& v) const { advise(v.data, v.nbytes, MADV_WILLNEED); }

void SafetensorsFile::release(const std::string& name) const {
  if (const TensorView* v = find(name)) advise_done(*v);
}

// ---------------------------------------------------------------- index + checkpoint

ShardIndex parse_shard_index(const std::string& json_text, const std::string& where) {
  std::string dup;
  bool has_dup = false;
  json j = parse_json_checked(json_text, where, "index", nullptr, &dup, &has_dup);
  if (!j.is_object()) throw file_error(where, "index is not a JSON object");
  if (has_dup) throw file_error(where, "duplicate key " + q(dup) + " in index");
  ShardIndex idx;
  auto wm = j.find("weight_map");
  if (wm == j.end()) throw file_error(where, "missing \"weight_map\"");
  if (!wm->is_object()) throw file_error(where, "\"weight_map\" is not a JSON object");
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) throw file_error(where, "weight_map entry " + q(it.key()) + " is not a string");
    std::string shard = it.value().get<std::string>();
    if (!valid_shard_name(shard))
      throw file_error(where, "weight_map entry " + q(it.key()) + " has bad shard file name " + q(shard));
    idx.weight_map[it.key()] = shard;
  }
  auto md = j.find("metadata");
  if (md != j.end() && !md->is_null()) {
    if (!md->is_object()) throw file_error(where, "\"metadata\" is not a JSON object");
    for (auto it = md->begin(); it != md->end(); ++it)
      idx.metadata[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    auto ts = md->find("total_size");
    if (ts != md->end()) {
      int64_t n = -1;
      if (!json_nonneg_int(*ts, &n)) {
        double d = ts->is_number_float() ? ts->get<double>() : -1.0;
        if (!(d >= 0 && d < 9.2e18 && std::floor(d) == d))
          throw file_error(where, "metadata.total_size is not a non-negative integer");
        n = int64_t(d);
      }
      idx.total_size = n;
    }
  }
  return idx;
}

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

Checkpoint Checkpoint::open(const std::string& dir_or_file) {
  Checkpoint ck;
  ck.path_ = dir_or_file;
  std::string file = dir_or_file;
  if (is_directory(dir_or_file)) {
    std::string single = join_path(dir_or_file, "model.safetensors");
    std::string index = join_path(dir_or_file, "model.safetensors.index.json");
    bool has_single = is_regular_file(single), has_index = is_regular_file(index);
    if (has_single && has_index)
      throw file_error(dir_or_file,
                       "holds both model.safetensors and model.safetensors.index.json; pass one of them explicitly");
    if (!has_single && !has_index)
      throw file_error(dir_or_file, "directory has no model.safetensors or model.safetensors.index.json");
    file = has_index ? index : single;
  } else if (!path_exists(dir_or_file)) {
    throw file_error(dir_or_file, "no such file or directory");
  }

  if (!ends_with(file, ".index.json")) {
    auto f = SafetensorsFile::open(file);
    ck.shards_.push_back(f);
    for (const auto& v : f->tensors()) ck.entries_[v.name] = Entry{0, &v};
    ck.metadata_ = f->metadata();
    return ck;
  }

  ShardIndex idx = parse_shard_index(read_file_to_string(file, SafetensorsFile::kMaxHeaderBytes), file);
  std::string dir = parent_dir(file);
  std::map<std::string, size_t> shard_pos;
  for (const auto& [name, shard] : idx.weight_map) {
    auto it = shard_pos.find(shard);
    if (it == shard_pos.end()) {
      std::string sp = join_path(dir, shard);
      if (!is_regular_file(sp)) throw file_error(file, "shard " + q(shard) + " not found (" + sp + ")");
      std::shared_ptr<SafetensorsFile> f;
      try {
        f = SafetensorsFile::open(sp);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (shard of " + file + ")");
      }
      it = shard_pos.emplace(shard, ck.shards_.size()).first;
      ck.shards_.push_back(std::move(f));
    }
    const TensorView* v = ck.shards_[it->second]->find(name);
    if (!v) throw file_error(file, "tensor " + q(name) + " listed in the index is missing from shard " + q(shard));
    ck.entries_[name] = Entry{it->second, v};
  }
  if (!ck.shards_.empty()) ck.metadata_ = ck.shards_[0]->metadata();
  return ck;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.view;
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& s : shards_) out.push_back(s->path());
  return out;
}

const SafetensorsFile* Checkpoint::shard_of(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : shards_[it->second.shard].get();
}

void Checkpoint::release(const std::string& name) const {
  auto it = entries_.find(name);
  if (it != entries_.end()) shards_[it->second.shard]->advise_done(*it->second.view);
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& kv : entries_) n += kv.second.view->nbytes;
  return n;
}

// ---------------------------------------------------------------- writers

namespace {

// Checks every view and returns the JSON header (padded so 8 + size is a multiple of 8) for the data
// laid out in `order`.
std::string make_header(const std::vector<TensorView>& tensors, const std::map<std::string, std::string>& metadata,
                        const std::vector<size_t>& order, const std::string& where) {
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    const std::string T = "tensor " + q(t.name) + ": ";
    if (t.name == "__metadata__") throw file_error(where, "tensor name '__metadata__' is reserved");
    if (!seen.insert(t.name).second) throw file_error(where, "duplicate tensor name " + q(t.name));
    uint64_t need = 0;
    if (!tensor_nbytes(t.shape, t.dtype, &need) || t.numel() < 0)
      throw file_error(where, T + "invalid shape " + shape_str(t.shape));
    if (need != t.nbytes)
      throw file_error(where, T + dtype_to_string(t.dtype) + " " + shape_str(t.shape) + " needs " +
                                  std::to_string(need) + " bytes but the view has " + std::to_string(t.nbytes));
    if (t.nbytes > 0 && !t.data) throw file_error(where, T + "no data");
  }
  std::vector<uint64_t> begin(tensors.size());
  uint64_t pos = 0;
  for (size_t i : order) {
    begin[i] = pos;
    pos += tensors[i].nbytes;
  }
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    h[t.name] = {{"dtype", dtype_to_string(t.dtype)},
                 {"shape", t.shape},
                 {"data_offsets", {begin[i], begin[i] + t.nbytes}}};
  }
  std::string s;
  try {
    s = h.dump();
  } catch (const std::exception& e) {
    throw file_error(where, "cannot encode header (names and metadata must be valid UTF-8): " +
                                printable(e.what(), 160));
  }
  while ((8 + s.size()) % 8 != 0) s += ' ';
  return s;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Largest element size first: with an 8-aligned data start every tensor is naturally aligned and
  // the data stays contiguous (no gaps, as the reference implementation requires).
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype); });
  std::string header = make_header(tensors, metadata, order, path);
  if (header.size() > SafetensorsFile::kMaxHeaderBytes)
    throw file_error(path, "header would be " + std::to_string(header.size()) + " bytes, above the reader's limit");

  uint8_t len[8];
  uint64_t hl = header.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(hl >> (8 * i));
  AtomicWriter w(path);
  w.write(len, 8);
  w.write(header.data(), header.size());
  for (size_t i : order)
    if (tensors[i].nbytes) w.write(tensors[i].data, tensors[i].nbytes);
  w.commit();
}

std::vector<std::string> write_sharded(const std::string& dir, const std::vector<TensorView>& tensors,
                                       uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  if (max_shard_bytes == 0) throw file_error(dir, "max shard size must be positive");
  {
    std::set<std::string> seen;
    for (const auto& t : tensors)
      if (!seen.insert(t.name).second) throw file_error(dir, "duplicate tensor name " + q(t.name));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec && !is_directory(dir)) throw file_error(dir, "cannot create directory: " + ec.message());
  if (!is_directory(dir)) throw file_error(dir, "is not a directory");

  std::vector<std::vector<TensorView>> groups;
  uint64_t cur = 0;
  for (const auto& t : tensors) {
    if (groups.empty() || (!groups.back().empty() && cur + t.nbytes > max_shard_bytes)) {
      groups.emplace_back();
      cur = 0;
    }
    groups.back().push_back(t);
    cur += t.nbytes;
  }
  if (groups.empty()) groups.emplace_back();  // an empty checkpoint is still one (empty) shard
  if (groups.size() > 99999) throw file_error(dir, "too many shards (" + std::to_string(groups.size()) + ")");

  std::vector<std::string> written;
  json weight_map = json::object();
  uint64_t total = 0;
  char name[64];
  for (size_t g = 0; g < groups.size(); ++g) {
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", g + 1, groups.size());
    std::string p = join_path(dir, name);
    write_safetensors(p, groups[g], metadata);
    written.push_back(p);
    for (const auto& t : groups[g]) {
      weight_map[t.name] = name;
      total += t.nbytes;
    }
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}};
  std::string ip = join_path(dir, "model.safetensors.index.json");
  std::string text;
  try {
    text = index.dump(2) + "\n";
  } catch (const std::exception& e) {
    throw file_error(ip, "cannot encode index: " + printable(e.what(), 160));
  }
  atomic_write_file(ip, text);
  written.push_back(ip);
  return written;
}

}  // namespace pvm
