#include "engine/base/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/tokenizer_text.h"
#include "engine/base/version.h"

namespace pvm {

using text::char_class;
using text::kCrLf;
using text::kLetter;
using text::kNfcUnsafe;
using text::kNumber;
using text::kQwen2Pattern;
using text::kSpace;
using text::match_qwen2;

namespace {

using json = nlohmann::json;

// ---- GPT-2 byte <-> unicode map ----
struct ByteMap {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 512> cp_to_byte{};  // all mapped code points are < 512
  ByteMap() {
    cp_to_byte.fill(-1);
    uint32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : extra++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// ---- merges: (left id, right id) -> (rank, merged id), open addressing ----
class MergeTable {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, {0, 0});
    mask_ = cap - 1;
  }
  void insert(int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = key(a, b);
    size_t i = slot(k);
    while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
    keys_[i] = k;
    vals_[i] = {rank, merged};  // a repeated pair keeps the last rank, like HF's HashMap collect
  }
  // Returns rank (or INT32_MAX) and sets merged.
  inline int32_t find(int32_t a, int32_t b, int32_t& merged) const {
    uint64_t k = key(a, b);
    size_t i = slot(k);
    while (true) {
      uint64_t kk = keys_[i];
      if (kk == k) {
        merged = vals_[i].second;
        return vals_[i].first;
      }
      if (kk == kEmpty) return INT32_MAX;
      i = (i + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 17) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<std::pair<int32_t, int32_t>> vals_;
  size_t mask_ = 0;
};

// Hash of a short byte string (pieces are a few bytes): 8 bytes at a time, multiply-xorshift.
inline size_t piece_hash(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xC2B2AE3D27D4EB4Full);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
  }
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return static_cast<size_t>(h);
}

// ---- word cache: piece bytes -> ids (thread-safe, bounded) ----
class WordCache {
 public:
  static constexpr size_t kMaxKey = 256;

  bool lookup(std::string_view key, size_t h, std::vector<int32_t>& out) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (slots_.empty()) return false;
    size_t i = h & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.len == 0) return false;
      if (s.hash == h && s.len == key.size() && std::memcmp(keys_.data() + s.key_off, key.data(), key.size()) == 0) {
        out.insert(out.end(), vals_.begin() + s.val_off, vals_.begin() + s.val_off + s.val_len);
        return true;
      }
      i = (i + 1) & mask_;
    }
  }

  void insert(std::string_view key, size_t h, const int32_t* ids, size_t n) const {
    if (key.empty() || key.size() > kMaxKey) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (keys_.size() > (32u << 20) || used_ > (1u << 20)) clear_locked();
    if ((used_ + 1) * 2 > slots_.size()) grow_locked();
    size_t i = h & mask_;
    while (slots_[i].len != 0) {
      const Slot& s = slots_[i];
      if (s.hash == h && s.len == key.size() && std::memcmp(keys_.data() + s.key_off, key.data(), key.size()) == 0)
        return;  // another thread got there first
      i = (i + 1) & mask_;
    }
    Slot s;
    s.hash = h;
    s.key_off = static_cast<uint32_t>(keys_.size());
    s.len = static_cast<uint32_t>(key.size());
    s.val_off = static_cast<uint32_t>(vals_.size());
    s.val_len = static_cast<uint32_t>(n);
    keys_.append(key.data(), key.size());
    vals_.insert(vals_.end(), ids, ids + n);
    slots_[i] = s;
    ++used_;
  }

 private:
  struct Slot {
    size_t hash = 0;
    uint32_t key_off = 0, len = 0, val_off = 0, val_len = 0;
  };
  void clear_locked() const {
    slots_.clear();
    keys_.clear();
    vals_.clear();
    used_ = 0;
    mask_ = 0;
  }
  void grow_locked() const {
    size_t cap = slots_.empty() ? 4096 : slots_.size() * 2;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (s.len == 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  mutable std::mutex mu_;
  mutable std::vector<Slot> slots_;
  mutable std::string keys_;
  mutable std::vector<int32_t> vals_;
  mutable size_t used_ = 0;
  mutable size_t mask_ = 0;
};

// ---- added-token trie over bytes ----
class Trie {
 public:
  Trie() : nodes_(1) { first_.fill(false); }
  void add(const std::string& s, int32_t index) {
    if (s.empty()) return;
    first_[static_cast<unsigned char>(s[0])] = true;
    int32_t n = 0;
    for (unsigned char c : s) {
      int32_t next = -1;
      for (auto& e : nodes_[static_cast<size_t>(n)].next)
        if (e.first == c) next = e.second;
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[static_cast<size_t>(n)].next.emplace_back(c, next);
        nodes_.emplace_back();
      }
      n = next;
    }
    nodes_[static_cast<size_t>(n)].token = index;
  }
  bool empty() const { return nodes_.size() == 1; }
  bool may_start(unsigned char c) const { return first_[c]; }
  // Longest token starting at s[pos]; returns its index and sets len, or -1.
  int32_t longest(std::string_view s, size_t pos, size_t& len) const {
    int32_t n = 0, best = -1;
    for (size_t i = pos; i < s.size(); ++i) {
      int32_t next = -1;
      unsigned char c = static_cast<unsigned char>(s[i]);
      for (auto& e : nodes_[static_cast<size_t>(n)].next)
        if (e.first == c) {
          next = e.second;
          break;
        }
      if (next < 0) break;
      n = next;
      if (nodes_[static_cast<size_t>(n)].token >= 0) {
        best = nodes_[static_cast<size_t>(n)].token;
        len = i + 1 - pos;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t token = -1;
  };
  std::vector<Node> nodes_;
  std::array<bool, 256> first_{};
};

// ---- token string -> id: open addressing over ids, keys are the strings in id_to_token ----
class TokenIndex {
 public:
  void reset(size_t n) {
    size_t cap = 64;
    while (cap < n * 2 + 16) cap <<= 1;
    slots_.assign(cap, -1);
    mask_ = cap - 1;
    used_ = 0;
  }
  // Map strs[id] -> id (an entry with the same string is replaced).
  void insert(const std::vector<std::string>& strs, int32_t id) {
    if ((used_ + 1) * 2 > slots_.size()) grow(strs);
    const std::string& s = strs[static_cast<size_t>(id)];
    size_t i = std::hash<std::string_view>()(s) & mask_;
    while (slots_[i] >= 0) {
      if (strs[static_cast<size_t>(slots_[i])] == s) {
        slots_[i] = id;
        return;
      }
      i = (i + 1) & mask_;
    }
    slots_[i] = id;
    ++used_;
  }
  int32_t find(const std::vector<std::string>& strs, std::string_view s) const {
    if (slots_.empty()) return -1;
    size_t i = std::hash<std::string_view>()(s) & mask_;
    while (slots_[i] >= 0) {
      if (strs[static_cast<size_t>(slots_[i])] == s) return slots_[i];
      i = (i + 1) & mask_;
    }
    return -1;
  }

 private:
  void grow(const std::vector<std::string>& strs) {
    std::vector<int32_t> old;
    old.swap(slots_);
    reset(old.size() + 16);
    for (int32_t id : old)
      if (id >= 0) insert(strs, id);
  }
  std::vector<int32_t> slots_;
  size_t mask_ = 0, used_ = 0;
};

enum class Regex { None, Qwen2, Gpt2 };

// Per-thread scratch buffers for the pre-tokenizer and BPE (no allocation in steady state).
struct Scratch {
  std::vector<uint32_t> cps;
  std::vector<uint8_t> cls;
  std::vector<uint32_t> offs;  // byte offset of each code point, plus the end
  std::vector<int32_t> sym;
  std::vector<int32_t> rank;
  std::vector<int32_t> res;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

inline bool is_word_char(uint32_t cp) { return cp == '_' || (char_class(cp) & (kLetter | kNumber)); }

std::string read_file(const std::string& path) {
  // A folder (e.g. the model folder) is named as such, with what to pass instead.
  if (is_directory(path))
    throw file_error(path, "is a directory, expected a tokenizer.json file (pass the file itself, e.g. " +
                               join_path(path, "tokenizer.json") + ")");
  return read_file_to_string(path, uint64_t(1) << 30, "tokenizer");
}

}  // namespace

// =============================================================================================
// Impl
// =============================================================================================

struct Tokenizer::Impl {
  std::string where;
  // vocabulary
  std::vector<std::string> id_to_token;
  TokenIndex index;  // token string -> id over id_to_token (vocab + added tokens; added win)
  std::vector<uint8_t> id_flags;  // 1 = defined, 2 = added, 4 = special
  std::vector<uint32_t> bytes_off;  // token_bytes arena offsets (size = ids + 1)
  std::string bytes_arena;
  // model
  MergeTable merges;
  std::array<int32_t, 256> byte_id{};  // id of each single-byte symbol, -1 if missing
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;
  // pipeline
  bool nfc = false;
  Regex regex = Regex::None;
  std::vector<AddedToken> added;
  Trie raw_trie, norm_trie;  // indices into `added`
  mutable WordCache cache;

  // ---------------------------------------------------------------------------------------
  void encode(std::string_view input, std::vector<int32_t>& out) const {
    if (input.size() >= (size_t{1} << 32) - 1)
      throw Error(where + ": encode: text of " + std::to_string(input.size()) + " bytes is too long (max 4 GiB)");
    std::string fixed;
    std::string_view s = input;
    if (!text::utf8_valid(s)) {
      fixed = text::utf8_sanitize(s);
      s = fixed;
    }
    split_added(s, raw_trie, out, [&](std::string_view section) { encode_section(section, out); });
  }

  // Find added tokens (leftmost, then longest) in `s`; text between them goes to `on_text`.
  template <class F>
  void split_added(std::string_view s, const Trie& trie, std::vector<int32_t>& out, F&& on_text) const {
    if (trie.empty()) {
      if (!s.empty()) on_text(s);
      return;
    }
    size_t sect = 0, pos = 0, n = s.size();
    while (pos < n) {
      if (!trie.may_start(static_cast<unsigned char>(s[pos]))) {
        ++pos;
        continue;
      }
      size_t len = 0;
      int32_t t = trie.longest(s, pos, len);
      if (t < 0) {
        ++pos;
        continue;
      }
      const AddedToken& tok = added[static_cast<size_t>(t)];
      size_t start = pos, stop = pos + len;
      if (tok.single_word) {
        bool ok_left = true, ok_right = true;
        if (start > 0) {
          size_t i = start - 1;
          while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
          size_t j = i;
          ok_left = !is_word_char(text::utf8_next(s.data(), j));
        }
        if (stop < n) {
          size_t j = stop;
          ok_right = !is_word_char(text::utf8_next(s.data(), j));
        }
        if (!ok_left || !ok_right) {
          pos = stop;  // the match is dropped and the search resumes after it
          continue;
        }
      }
      if (tok.lstrip) {
        size_t i = start;
        while (i > sect) {
          size_t k = i - 1;
          while (k > sect && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t j = k;
          if (!(char_class(text::utf8_next(s.data(), j)) & kSpace)) break;
          i = k;
        }
        start = i;
      }
      if (tok.rstrip) {
        while (stop < n) {
          size_t j = stop;
          if (!(char_class(text::utf8_next(s.data(), j)) & kSpace)) break;
          stop = j;
        }
      }
      if (start > sect) on_text(s.substr(sect, start - sect));
      out.push_back(tok.id);
      sect = pos = stop;
    }
    if (sect < n) on_text(s.substr(sect));
  }

  // One stretch of text between raw added tokens: normalize, normalized added tokens, then
  // pre-tokenize and BPE.
  void encode_section(std::string_view s, std::vector<int32_t>& out) const {
    std::string normed;
    if (nfc && text::nfc_if_needed(s, normed)) s = normed;
    if (norm_trie.empty()) {
      pretokenize(s, out);
    } else {
      split_added(s, norm_trie, out, [&](std::string_view sub) { pretokenize(sub, out); });
    }
  }

  // ---------------------------------------------------------------------------------------
  void pretokenize(std::string_view s, std::vector<int32_t>& out) const {
    if (s.empty()) return;
    if (regex == Regex::None) {
      bpe_piece(s, out);
      return;
    }
    Scratch& sc = scratch();
    const uint8_t* table = text::class_table();
    if (sc.cps.size() < s.size() + 1) {  // grow only: no clearing per call
      sc.cps.resize(s.size() + 1);
      sc.cls.resize(s.size() + 1);
      sc.offs.resize(s.size() + 1);
    }
    size_t i = 0, n = 0;
    const char* d = s.data();
    while (i < s.size()) {
      sc.offs[n] = static_cast<uint32_t>(i);
      uint32_t cp = text::utf8_next(d, i);
      sc.cps[n] = cp;
      sc.cls[n] = table[cp];
      ++n;
    }
    sc.offs[n] = static_cast<uint32_t>(s.size());
    const uint32_t* cp = sc.cps.data();
    const uint8_t* cl = sc.cls.data();
    const uint32_t* off = sc.offs.data();
    size_t p = 0;
    while (p < n) {
      size_t e = regex == Regex::Qwen2 ? match_qwen2(cp, cl, n, p) : match_gpt2(cp, cl, n, p);
      bpe_piece(s.substr(off[p], off[e] - off[p]), out);
      p = e;
    }
  }

  // End of the match of the GPT-2 pattern
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ at p.
  static size_t match_gpt2(const uint32_t* cp, const uint8_t* cl, size_t n, size_t p) {
    if (cp[p] == '\'' && p + 1 < n) {
      uint32_t a = cp[p + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
      if (p + 2 < n) {
        uint32_t b = cp[p + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
      }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional leading U+0020, then a run.
    size_t k = (cp[p] == ' ' && p + 1 < n) ? p + 1 : p;
    for (uint8_t want : {kLetter, kNumber}) {
      if (cl[k] & want) {
        size_t j = k + 1;
        while (j < n && (cl[j] & want)) ++j;
        return j;
      }
    }
    const uint8_t other = kSpace | kLetter | kNumber;
    if (!(cl[k] & other)) {
      size_t j = k + 1;
      while (j < n && !(cl[j] & other)) ++j;
      return j;
    }
    // cl[p] is White_Space
    size_t j = p;
    while (j < n && (cl[j] & kSpace)) ++j;
    if (j == n) return j;
    if (j - p >= 2) return j - 1;
    return j;
  }

  // ---------------------------------------------------------------------------------------
  void bpe_piece(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n == 1 && unk_id < 0) {
      int32_t id = byte_id[static_cast<unsigned char>(piece[0])];
      if (id >= 0) out.push_back(id);
      return;
    }
    if (ignore_merges) {
      std::string bl;
      for (unsigned char b : piece) text::utf8_append(bl, byte_map().byte_to_cp[b]);
      int32_t id = index.find(id_to_token, bl);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    const bool cacheable = n <= WordCache::kMaxKey;
    size_t h = 0;
    if (cacheable) {
      h = piece_hash(piece);
      if (cache.lookup(piece, h, out)) return;
    }
    size_t start = out.size();
    bpe_compute(piece, out);
    if (cacheable) cache.insert(piece, h, out.data() + start, out.size() - start);
  }

  void bpe_compute(std::string_view piece, std::vector<int32_t>& out) const {
    Scratch& sc = scratch();
    std::vector<int32_t>& sym = sc.sym;
    sym.clear();
    for (unsigned char b : piece) {
      int32_t id = byte_id[b];
      if (id >= 0) {
        sym.push_back(id);
      } else if (unk_id >= 0) {
        if (!(fuse_unk && !sym.empty() && sym.back() == unk_id)) sym.push_back(unk_id);
      }  // else: dropped, as HF does without unk_token
    }
    if (sym.size() <= 1) {
      out.insert(out.end(), sym.begin(), sym.end());
      return;
    }
    if (sym.size() <= 128) {
      bpe_small(sym, sc, out);
    } else {
      bpe_large(sym, out);
    }
  }

  // Repeatedly merge the lowest-rank pair (leftmost on ties). O(n^2) comparisons, O(n) lookups.
  void bpe_small(std::vector<int32_t>& sym, Scratch& sc, std::vector<int32_t>& out) const {
    size_t m = sym.size();
    std::vector<int32_t>& rank = sc.rank;
    std::vector<int32_t>& res = sc.res;
    rank.resize(m);
    res.resize(m);
    for (size_t i = 0; i + 1 < m; ++i) rank[i] = merges.find(sym[i], sym[i + 1], res[i]);
    while (m > 1) {
      int32_t best = INT32_MAX;
      size_t bi = 0;
      for (size_t i = 0; i + 1 < m; ++i)
        if (rank[i] < best) {
          best = rank[i];
          bi = i;
        }
      if (best == INT32_MAX) break;
      sym[bi] = res[bi];
      // drop symbol bi+1 and pair bi+1
      for (size_t i = bi + 1; i + 1 < m; ++i) {
        sym[i] = sym[i + 1];
        rank[i] = rank[i + 1];
        res[i] = res[i + 1];
      }
      --m;
      if (bi + 1 < m) rank[bi] = merges.find(sym[bi], sym[bi + 1], res[bi]);
      if (bi > 0) rank[bi - 1] = merges.find(sym[bi - 1], sym[bi], res[bi - 1]);
    }
    out.insert(out.end(), sym.begin(), sym.begin() + static_cast<std::ptrdiff_t>(m));
  }

  // Same result with a heap of candidate pairs keyed by (rank, position of the left symbol).
  struct LargeSym {
    int32_t id, prev, next;
    bool alive;
  };
  struct Cand {
    uint64_t key;  // rank << 32 | position of the left symbol: smaller merges first
    int32_t left, right;
  };
  void bpe_large(const std::vector<int32_t>& init, std::vector<int32_t>& out) const {
    thread_local std::vector<LargeSym> s;
    thread_local std::vector<Cand> heap;
    auto later = [](const Cand& a, const Cand& b) { return a.key > b.key; };  // min-heap
    const int32_t m = static_cast<int32_t>(init.size());
    s.resize(static_cast<size_t>(m));
    for (int32_t i = 0; i < m; ++i) s[static_cast<size_t>(i)] = {init[static_cast<size_t>(i)], i - 1, i + 1 < m ? i + 1 : -1, true};
    heap.clear();
    auto cand = [&](int32_t l, int32_t r, bool push) {
      int32_t merged = 0;
      int32_t rk = merges.find(s[static_cast<size_t>(l)].id, s[static_cast<size_t>(r)].id, merged);
      if (rk == INT32_MAX) return;
      heap.push_back({(static_cast<uint64_t>(static_cast<uint32_t>(rk)) << 32) | static_cast<uint32_t>(l),
                      s[static_cast<size_t>(l)].id, s[static_cast<size_t>(r)].id});
      if (push) std::push_heap(heap.begin(), heap.end(), later);
    };
    for (int32_t i = 0; i + 1 < m; ++i) cand(i, i + 1, false);
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Cand c = heap.back();
      heap.pop_back();
      const auto pos = static_cast<int32_t>(c.key & 0xFFFFFFFFu);
      LargeSym& L = s[static_cast<size_t>(pos)];
      if (!L.alive || L.id != c.left || L.next < 0) continue;
      LargeSym& R = s[static_cast<size_t>(L.next)];
      if (R.id != c.right) continue;
      int32_t merged = 0;
      merges.find(L.id, R.id, merged);
      L.id = merged;
      R.alive = false;
      L.next = R.next;
      if (R.next >= 0) s[static_cast<size_t>(R.next)].prev = pos;
      if (L.prev >= 0) cand(L.prev, pos, true);
      if (L.next >= 0) cand(pos, L.next, true);
    }
    for (int32_t i = 0; i >= 0; i = s[static_cast<size_t>(i)].next) out.push_back(s[static_cast<size_t>(i)].id);
  }

  // ---------------------------------------------------------------------------------------
  bool defined(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < id_flags.size() && (id_flags[static_cast<size_t>(id)] & 1);
  }
};

// =============================================================================================
// Loading
// =============================================================================================

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw file_error(where, what); }

const json& member(const json& obj, const char* key, const std::string& where, const std::string& ctx) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(where, ctx + ": missing \"" + key + "\"");
  return *it;
}

std::string get_string(const json& obj, const char* key, const std::string& where, const std::string& ctx) {
  const json& v = member(obj, key, where, ctx);
  if (!v.is_string()) fail(where, ctx + ": \"" + key + "\" is not a string");
  return v.get<std::string>();
}

bool get_bool(const json& obj, const char* key, bool def, const std::string& where, const std::string& ctx) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(where, ctx + ": \"" + key + "\" is not a boolean");
  return it->get<bool>();
}

std::string type_of(const json& j, const std::string& where, const std::string& ctx) {
  if (!j.is_object()) fail(where, ctx + " is not an object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail(where, ctx + " has no \"type\"");
  return it->get<std::string>();
}

void parse_normalizer(const json& j, Tokenizer::Impl& t, const std::string& where) {
  if (j.is_null()) return;
  std::string type = type_of(j, where, "normalizer");
  if (type == "NFC") {
    t.nfc = true;
  } else if (type == "Sequence") {
    const json& list = member(j, "normalizers", where, "normalizer Sequence");
    if (!list.is_array()) fail(where, "normalizer Sequence: \"normalizers\" is not a list");
    for (const json& n : list) {
      std::string sub = type_of(n, where, "normalizer");
      if (sub != "NFC") fail(where, "unsupported normalizer '" + sub + "' (only NFC is supported)");
      t.nfc = true;
    }
  } else {
    fail(where, "unsupported normalizer '" + type + "' (only NFC is supported)");
  }
}

void check_byte_level(const json& j, const std::string& where, const std::string& ctx, bool& use_regex) {
  if (get_bool(j, "add_prefix_space", false, where, ctx))
    fail(where, ctx + ": add_prefix_space=true is not supported");
  use_regex = get_bool(j, "use_regex", true, where, ctx);
}

void parse_pre_tokenizer(const json& j, Tokenizer::Impl& t, const std::string& where) {
  if (j.is_null()) fail(where, "pre_tokenizer is null (a ByteLevel pre-tokenizer is required)");
  std::string type = type_of(j, where, "pre_tokenizer");
  std::vector<const json*> steps;
  if (type == "Sequence") {
    const json& list = member(j, "pretokenizers", where, "pre_tokenizer Sequence");
    if (!list.is_array()) fail(where, "pre_tokenizer Sequence: \"pretokenizers\" is not a list");
    for (const json& s : list) steps.push_back(&s);
  } else {
    steps.push_back(&j);
  }
  bool have_split = false, have_byte_level = false;
  for (const json* sp : steps) {
    std::string st = type_of(*sp, where, "pre_tokenizer");
    if (st == "Split") {
      if (have_split || have_byte_level) fail(where, "unsupported pre_tokenizer sequence (Split must come once, before ByteLevel)");
      const json& pat = member(*sp, "pattern", where, "Split pre_tokenizer");
      if (!pat.is_object() || !pat.contains("Regex") || !pat["Regex"].is_string())
        fail(where, "Split pre_tokenizer: only a \"Regex\" pattern is supported");
      if (pat["Regex"].get<std::string>() != kQwen2Pattern)
        fail(where, "Split pre_tokenizer: unsupported regex (only the Qwen2 pattern is implemented)");
      std::string behavior = sp->value("behavior", std::string("Isolated"));
      if (behavior != "Isolated") fail(where, "Split pre_tokenizer: unsupported behavior '" + behavior + "'");
      if (get_bool(*sp, "invert", false, where, "Split pre_tokenizer"))
        fail(where, "Split pre_tokenizer: invert=true is not supported");
      have_split = true;
      t.regex = Regex::Qwen2;
    } else if (st == "ByteLevel") {
      if (have_byte_level) fail(where, "unsupported pre_tokenizer sequence (two ByteLevel steps)");
      bool use_regex = true;
      check_byte_level(*sp, where, "ByteLevel pre_tokenizer", use_regex);
      if (use_regex) {
        if (have_split) fail(where, "unsupported pre_tokenizer sequence (Split followed by ByteLevel with use_regex=true)");
        t.regex = Regex::Gpt2;
      }
      have_byte_level = true;
    } else {
      fail(where, "unsupported pre_tokenizer '" + st + "' (only Split + ByteLevel are supported)");
    }
  }
  if (!have_byte_level) fail(where, "pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)");
}

void parse_decoder(const json& j, const std::string& where) {
  if (j.is_null()) fail(where, "decoder is null (a ByteLevel decoder is required)");
  std::string type = type_of(j, where, "decoder");
  if (type != "ByteLevel") fail(where, "unsupported decoder '" + type + "' (only ByteLevel is supported)");
}

// SAX handler for tokenizer.json: model.vocab and model.merges (300k small items in Qwen's file)
// are streamed into flat vectors; everything else becomes a (small) DOM.
class TokenizerSax : public nlohmann::json_sax<json> {
 public:
  json root;
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // second empty: "a b" form, unsplit
  bool have_vocab = false, have_merges = false;
  std::string error;  // layout problem found while streaming
  std::string parse_message;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return number(static_cast<int64_t>(v), json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    return number(v > static_cast<number_unsigned_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v), json(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    if (mode() == Mode::Vocab) return bad("model.vocab['" + key_ + "']: id is not an integer");
    return value(json(v));
  }
  bool string(string_t& v) override {
    switch (mode()) {
      case Mode::Vocab:
        return bad("model.vocab['" + key_ + "']: id is not an integer");
      case Mode::Merges:
        merges.emplace_back(std::move(v), std::string());
        return true;
      case Mode::MergePair: {
        Frame& f = frames_.back();
        if (f.count == 0) merges.back().first = std::move(v);
        else if (f.count == 1) merges.back().second = std::move(v);
        ++f.count;
        return true;
      }
      default:
        return value(json(std::move(v)));
    }
  }
  bool binary(binary_t&) override { return bad("unexpected binary value"); }
  bool start_object(std::size_t) override {
    if (mode() == Mode::Vocab || mode() == Mode::Merges || mode() == Mode::MergePair)
      return bad(mode() == Mode::Vocab ? "model.vocab: values must be integer ids" : "model.merges: entries must be \"a b\" or [\"a\", \"b\"]");
    if (in_model_object() && key_ == "vocab") {
      have_vocab = true;
      vocab.reserve(1 << 17);
      frames_.push_back({Mode::Vocab, nullptr, 0, false});
      return true;
    }
    bool is_model = frames_.size() == 1 && key_ == "model";
    json* p = add(json::object());
    frames_.push_back({Mode::Object, p, 0, is_model});
    return true;
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode() == Mode::Vocab) return bad("model.vocab: values must be integer ids");
    if (mode() == Mode::MergePair) return bad("model.merges: entries must be \"a b\" or [\"a\", \"b\"]");
    if (mode() == Mode::Merges) {
      merges.emplace_back();
      merges.back().second = std::string(1, '\0');  // marks the pair form until filled
      frames_.push_back({Mode::MergePair, nullptr, 0, false});
      return true;
    }
    if (in_model_object() && key_ == "merges") {
      have_merges = true;
      merges.reserve(1 << 17);
      frames_.push_back({Mode::Merges, nullptr, 0, false});
      return true;
    }
    json* p = add(json::array());
    frames_.push_back({Mode::Array, p, 0, false});
    return true;
  }
  bool end_array() override {
    if (mode() == Mode::MergePair && frames_.back().count != 2)
      return bad("model.merges: entry " + std::to_string(merges.size() - 1) + " is not a pair of tokens");
    frames_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    parse_message = ex.what();
    return false;
  }

 private:
  enum class Mode { Object, Array, Vocab, Merges, MergePair };
  struct Frame {
    Mode mode;
    json* node;
    int count;
    bool is_model;
  };
  std::vector<Frame> frames_;
  std::string key_;

  Mode mode() const { return frames_.empty() ? Mode::Object : frames_.back().mode; }
  bool in_model_object() const { return !frames_.empty() && frames_.back().mode == Mode::Object && frames_.back().is_model; }
  bool bad(const std::string& what) {
    if (error.empty()) error = what;
    return false;
  }
  bool number(int64_t v, json&& j) {
    if (mode() == Mode::Vocab) {
      vocab.emplace_back(std::move(key_), v);
      return true;
    }
    if (mode() == Mode::Merges || mode() == Mode::MergePair)
      return bad("model.merges: entries must be \"a b\" or [\"a\", \"b\"]");
    return value(std::move(j));
  }
  json* add(json&& v) {
    if (frames_.empty()) {
      root = std::move(v);
      return &root;
    }
    Frame& f = frames_.back();
    if (f.mode == Mode::Array) {
      f.node->push_back(std::move(v));
      return &f.node->back();
    }
    json& slot = (*f.node)[key_];
    slot = std::move(v);
    return &slot;
  }
  bool value(json&& v) {
    // null, true/false or a float where an id or a merge is expected (the vocab and merges frames
    // build no JSON node to add to): the layout error, not a write through a null node.
    if (mode() == Mode::Vocab) return bad("model.vocab['" + key_ + "']: id is not an integer");
    if (mode() == Mode::Merges || mode() == Mode::MergePair)
      return bad("model.merges: entries must be \"a b\" or [\"a\", \"b\"]");
    add(std::move(v));
    return true;
  }
};

int32_t check_id(int64_t id, const std::string& where, const std::string& ctx) {
  if (id < 0 || id >= (1 << 24)) fail(where, ctx + ": id " + std::to_string(id) + " out of range");
  return static_cast<int32_t>(id);
}

int32_t parse_id(const json& v, const std::string& where, const std::string& ctx) {
  if (!v.is_number_integer()) fail(where, ctx + ": id is not an integer");
  return check_id(v.get<int64_t>(), where, ctx);
}

void parse_model(const json& m, TokenizerSax& sax, Tokenizer::Impl& t, const std::string& where) {
  if (!m.is_object()) fail(where, "\"model\" is not an object");
  auto ti = m.find("type");
  std::string type = (ti != m.end() && ti->is_string()) ? ti->get<std::string>() : "";
  if (type.empty()) {
    if (sax.have_merges) type = "BPE";
    else fail(where, "model has no \"type\" (only BPE is supported)");
  }
  if (type != "BPE") fail(where, "unsupported tokenizer model type '" + type + "' (only BPE is supported)");
  if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
    fail(where, "BPE dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = m.find(k);
    if (it != m.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
      fail(where, std::string("BPE ") + k + " is not supported");
  }
  if (get_bool(m, "byte_fallback", false, where, "model")) fail(where, "BPE byte_fallback is not supported");
  t.fuse_unk = get_bool(m, "fuse_unk", false, where, "model");
  t.ignore_merges = get_bool(m, "ignore_merges", false, where, "model");

  if (!sax.have_vocab) fail(where, "model: missing \"vocab\" (an object token -> id)");
  int32_t max_id = -1;
  for (auto& [tok, id] : sax.vocab) max_id = std::max(max_id, check_id(id, where, "model.vocab['" + tok + "']"));
  t.id_to_token.assign(static_cast<size_t>(max_id + 1), std::string());
  t.id_flags.assign(static_cast<size_t>(max_id + 1), 0);
  t.index.reset(sax.vocab.size() + 1024);
  for (auto& [tok, id] : sax.vocab) {
    auto i = static_cast<size_t>(id);
    t.id_to_token[i] = std::move(tok);
    t.id_flags[i] = 1;
    t.index.insert(t.id_to_token, static_cast<int32_t>(id));
  }
  sax.vocab.clear();
  sax.vocab.shrink_to_fit();

  auto ui = m.find("unk_token");
  if (ui != m.end() && ui->is_string()) {
    t.unk_id = t.index.find(t.id_to_token, ui->get<std::string>());
    if (t.unk_id < 0) fail(where, "unk_token '" + ui->get<std::string>() + "' is not in the vocabulary");
  }

  const ByteMap& bm = byte_map();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    text::utf8_append(s, bm.byte_to_cp[static_cast<size_t>(b)]);
    t.byte_id[static_cast<size_t>(b)] = t.index.find(t.id_to_token, s);
  }
  // Byte-level BPE can spell any text only if every byte has a token; without one, encode would
  // silently drop that byte from the ids. So an incomplete byte alphabet is a load error.
  {
    int missing = 0, first = -1;
    for (int b = 0; b < 256; ++b)
      if (t.byte_id[static_cast<size_t>(b)] < 0 && ++missing == 1) first = b;
    if (missing) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", first);
      std::string tokstr;
      text::utf8_append(tokstr, bm.byte_to_cp[static_cast<size_t>(first)]);
      fail(where, "model.vocab lacks " + std::to_string(missing) + " of the 256 byte tokens (first: byte " + hex +
                      ", token \"" + tokstr + "\"); byte-level BPE needs all 256");
    }
  }

  if (!sax.have_merges) fail(where, "model: missing \"merges\" (a list)");
  t.merges.reserve(sax.merges.size());
  std::string ab;
  int32_t rank = 0;
  for (auto& [first, second] : sax.merges) {
    std::string_view a, b;
    if (second.empty()) {  // "a b"
      size_t sp = first.find(' ');
      if (sp == std::string::npos || first.find(' ', sp + 1) != std::string::npos)
        fail(where, "merge " + std::to_string(rank) + " '" + first + "' is not two tokens separated by one space");
      a = std::string_view(first).substr(0, sp);
      b = std::string_view(first).substr(sp + 1);
    } else {
      a = first;
      b = second;
    }
    int32_t ia = t.index.find(t.id_to_token, a), ib = t.index.find(t.id_to_token, b);
    if (ia < 0 || ib < 0)
      fail(where, "merge " + std::to_string(rank) + " '" + std::string(a) + " " + std::string(b) +
                      "' uses a token missing from the vocabulary");
    ab.assign(a);
    ab.append(b);
    int32_t iab = t.index.find(t.id_to_token, ab);
    if (iab < 0)
      fail(where, "merge " + std::to_string(rank) + " '" + std::string(a) + " " + std::string(b) + "' makes '" + ab +
                      "', which is not in the vocabulary");
    t.merges.insert(ia, ib, rank, iab);
    ++rank;
  }
  sax.merges.clear();
  sax.merges.shrink_to_fit();
}

void parse_added(const json& list, Tokenizer::Impl& t, const std::string& where) {
  if (list.is_null()) return;
  if (!list.is_array()) fail(where, "added_tokens is not a list");
  for (const json& a : list) {
    if (!a.is_object()) fail(where, "added_tokens: entry is not an object");
    AddedToken tok;
    tok.id = parse_id(member(a, "id", where, "added token"), where, "added token");
    tok.content = get_string(a, "content", where, "added token " + std::to_string(tok.id));
    if (tok.content.empty()) fail(where, "added token " + std::to_string(tok.id) + " is empty");
    if (!text::utf8_valid(tok.content)) fail(where, "added token " + std::to_string(tok.id) + " is not valid UTF-8");
    std::string ctx = "added token '" + tok.content + "'";
    tok.special = get_bool(a, "special", false, where, ctx);
    tok.lstrip = get_bool(a, "lstrip", false, where, ctx);
    tok.rstrip = get_bool(a, "rstrip", false, where, ctx);
    tok.single_word = get_bool(a, "single_word", false, where, ctx);
    tok.normalized = get_bool(a, "normalized", !tok.special, where, ctx);
    t.added.push_back(tok);
  }
  int32_t max_id = static_cast<int32_t>(t.id_to_token.size()) - 1;
  for (auto& tok : t.added) max_id = std::max(max_id, tok.id);
  t.id_to_token.resize(static_cast<size_t>(max_id + 1));
  t.id_flags.resize(static_cast<size_t>(max_id + 1), 0);
  for (size_t i = 0; i < t.added.size(); ++i) {
    const AddedToken& tok = t.added[i];
    auto idx = static_cast<size_t>(tok.id);
    if ((t.id_flags[idx] & 2) && t.id_to_token[idx] != tok.content)
      fail(where, "added tokens '" + t.id_to_token[idx] + "' and '" + tok.content + "' share id " + std::to_string(tok.id));
    // A vocabulary entry with this id but another text loses its id (HF keeps the added token).
    t.id_to_token[idx] = tok.content;
    t.id_flags[idx] = static_cast<uint8_t>(1 | 2 | (tok.special ? 4 : 0));
    t.index.insert(t.id_to_token, tok.id);
    if (tok.normalized && t.nfc) {
      t.norm_trie.add(text::nfc(tok.content), static_cast<int32_t>(i));
    } else if (tok.normalized) {
      t.norm_trie.add(tok.content, static_cast<int32_t>(i));
    } else {
      t.raw_trie.add(tok.content, static_cast<int32_t>(i));
    }
  }
}

void build_token_bytes(Tokenizer::Impl& t) {
  const ByteMap& bm = byte_map();
  t.bytes_off.assign(t.id_to_token.size() + 1, 0);
  std::string tmp;
  for (size_t id = 0; id < t.id_to_token.size(); ++id) {
    t.bytes_off[id] = static_cast<uint32_t>(t.bytes_arena.size());
    const std::string& s = t.id_to_token[id];
    // HF ByteLevel decoder: every char maps back to its byte, else the token's own UTF-8 bytes.
    tmp.clear();
    bool all = true;
    size_t i = 0;
    while (i < s.size()) {
      uint32_t cp = text::utf8_next(s.data(), i);
      if (cp >= bm.cp_to_byte.size() || bm.cp_to_byte[cp] < 0) {
        all = false;
        break;
      }
      tmp.push_back(static_cast<char>(bm.cp_to_byte[cp]));
    }
    t.bytes_arena += all ? tmp : s;
  }
  t.bytes_off[t.id_to_token.size()] = static_cast<uint32_t>(t.bytes_arena.size());
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(std::string_view json_text, const std::string& where) {
  TokenizerSax sax;
  bool ok = json::sax_parse(json_text.begin(), json_text.end(), &sax);
  if (!ok) {
    if (!sax.error.empty()) fail(where, sax.error);
    std::string msg = sax.parse_message;
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg.resize(nl);
    fail(where, "invalid JSON (truncated or corrupt tokenizer file?): " + msg);
  }
  const json& j = sax.root;
  if (!j.is_object()) fail(where, "not a tokenizer.json (top level is not an object)");
  if (!j.contains("model")) fail(where, "not a tokenizer.json (no \"model\")");
  auto t = std::make_shared<Impl>();
  t->where = where;
  (void)text::class_table();  // build the character table now rather than in the first encode
  try {
    parse_model(j["model"], sax, *t, where);
    parse_normalizer(j.value("normalizer", json()), *t, where);
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), *t, where);
    parse_decoder(j.value("decoder", json()), where);
    parse_added(j.value("added_tokens", json()), *t, where);
  } catch (const json::exception& e) {
    fail(where, std::string("unexpected tokenizer.json layout: ") + e.what());
  }
  build_token_bytes(*t);
  return Tokenizer(std::move(t));
}

Tokenizer Tokenizer::load(const std::string& path) { return from_json(read_file(path), path); }

// =============================================================================================
// Public API
// =============================================================================================

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode(text, out);
  return out;
}

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const { impl_->encode(text, out); }

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0) throw Error(t.where + ": decode: negative token id " + std::to_string(id));
    if (!t.defined(id)) continue;  // like HF: ids without a token (e.g. embedding padding) give no text
    if (skip_special && (t.id_flags[static_cast<size_t>(id)] & 4)) continue;
    bytes.append(t.bytes_arena, t.bytes_off[static_cast<size_t>(id)],
                 t.bytes_off[static_cast<size_t>(id) + 1] - t.bytes_off[static_cast<size_t>(id)]);
  }
  return text::utf8_sanitize(bytes);
}

std::optional<int32_t> Tokenizer::find_token(const std::string& token) const {
  int32_t id = impl_->index.find(impl_->id_to_token, token);
  if (id < 0) return std::nullopt;
  return id;
}

int32_t Tokenizer::token_id(const std::string& token) const {
  auto id = find_token(token);
  if (!id) throw Error(impl_->where + ": token '" + token + "' is not in the vocabulary");
  return *id;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (!impl_->defined(id)) throw Error(impl_->where + ": token id " + std::to_string(id) + " is not in the vocabulary");
  return impl_->id_to_token[static_cast<size_t>(id)];
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& t = *impl_;
  if (!t.defined(id)) throw Error(t.where + ": token id " + std::to_string(id) + " is not in the vocabulary");
  auto i = static_cast<size_t>(id);
  return t.bytes_arena.substr(t.bytes_off[i], t.bytes_off[i + 1] - t.bytes_off[i]);
}

bool Tokenizer::is_special(int32_t id) const {
  return impl_->defined(id) && (impl_->id_flags[static_cast<size_t>(id)] & 4);
}
bool Tokenizer::has_id(int32_t id) const { return impl_->defined(id); }
size_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const std::string& Tokenizer::source() const { return impl_->where; }

std::string default_tokenizer_path() {
  return source_dir() + "/assets/tokenizers/qwen3/tokenizer.json";
}

}  // namespace pvm
