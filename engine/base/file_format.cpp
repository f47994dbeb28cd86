#include "engine/base/file_format.h"

#include <cmath>

#include "engine/base/error.h"

namespace pvm {

int64_t check_file_format(const nlohmann::json& j, const char* key, int64_t newest, const std::string& path,
                          const std::string& what, int64_t absent) {
  if (!j.is_object() || !j.contains(key)) return absent;
  const nlohmann::json& v = j[key];
  std::string got = v.dump();
  if (got.size() > 40) got = got.substr(0, 40) + "...";
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) || v.get<int64_t>() < 1) {
    // A whole float beyond 64 bits is still a (far) newer format, not a malformed one.
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && v.get<double>() > double(newest))
      throw file_error(path, what + " format " + got + " is newer than this build reads (up to " + std::to_string(newest) +
                                 "): it needs a newer build");
    throw file_error(path, std::string(key) + " must be a positive integer, got " + got);
  }
  const int64_t f = v.get<int64_t>();
  if (f > newest)
    throw file_error(path, what + " format " + std::to_string(f) + " is newer than this build reads (up to " +
                               std::to_string(newest) + "): it needs a newer build");
  return f;
}

}  // namespace pvm
