#include "engine/base/base64.h"

#include <cstdint>
#include <cstring>
#include <string_view>

#include "engine/base/error.h"

namespace pvm {

std::string base64_decode(const std::string& s, const std::string& where) {
  static int8_t table[256];
  static bool init = [] {
    std::memset(table, -1, sizeof table);
    const char* al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int k = 0; k < 64; ++k) table[(unsigned char)al[k]] = int8_t(k);
    return true;
  }();
  (void)init;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  uint32_t acc = 0;
  int nbits = 0, nchars = 0;
  bool pad = false;
  for (size_t k = 0; k < s.size(); ++k) {
    unsigned char c = (unsigned char)s[k];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      pad = true;
      continue;
    }
    int v = table[c];
    if (v < 0) throw Error(where + ": invalid base64 character '" + std::string(1, char(c)) + "' at offset " + std::to_string(k));
    if (pad) throw Error(where + ": base64 data continues after '=' padding (offset " + std::to_string(k) + ")");
    acc = (acc << 6) | uint32_t(v);
    nbits += 6;
    ++nchars;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(char((acc >> nbits) & 0xFF));
    }
  }
  if (nchars % 4 == 1) throw Error(where + ": truncated base64 data (" + std::to_string(nchars) + " characters)");
  return out;
}

std::string base64_encode(const void* data, size_t n) {
  const std::string_view b(static_cast<const char*>(data), n);
  const char* al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  size_t i = 0;
  for (; i + 2 < b.size(); i += 3) {
    uint32_t v = (uint32_t((unsigned char)b[i]) << 16) | (uint32_t((unsigned char)b[i + 1]) << 8) | (unsigned char)b[i + 2];
    o += {al[v >> 18], al[(v >> 12) & 63], al[(v >> 6) & 63], al[v & 63]};
  }
  if (i + 1 == b.size()) {
    uint32_t v = uint32_t((unsigned char)b[i]) << 16;
    o += {al[v >> 18], al[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == b.size()) {
    uint32_t v = (uint32_t((unsigned char)b[i]) << 16) | (uint32_t((unsigned char)b[i + 1]) << 8);
    o += {al[v >> 18], al[(v >> 12) & 63], al[(v >> 6) & 63], '='};
  }
  return o;
}

}  // namespace pvm
