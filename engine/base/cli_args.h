// Minimal option parser: --key value, --key=value, --flag. Unknown options are an error.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/base/error.h"

namespace pvm::cli {

class Args {
 public:
  // `options` take a value, `flags` do not; names include the leading "--".
  Args(const std::vector<std::string>& argv, const std::set<std::string>& options,
       const std::set<std::string>& flags = {});
  bool has(const std::string& name) const;
  std::string get(const std::string& name, const std::string& def = "") const;
  std::string require(const std::string& name) const;  // throws "missing --name"
  std::vector<std::string> all(const std::string& name) const;  // repeated options
  double get_double(const std::string& name, double def) const;  // range errors name the option
  // Every integer option states its range, so one message covers them all: text that is no integer
  // is "option --seed: not an integer: 'x'"; a value outside [lo, hi] (or beyond 64 bits) is
  // "option --seed: out of range: '-1' (must be in 0..9223372036854775807)".
  long long get_int(const std::string& name, long long def, long long lo, long long hi) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_set_;
  std::vector<std::string> positional_;
};

// The integer parser behind get_int, for values that do not come as one option (comma lists, id
// lists): `what` names the source in errors ("option --pvm-layers", "--ids").
long long parse_int(const std::string& text, const std::string& what, long long lo, long long hi);
// "1,5,9" -> {1, 5, 9}, each checked by parse_int; empty items are errors.
std::vector<long long> parse_int_list(const std::string& text, const std::string& what, long long lo, long long hi);

}  // namespace pvm::cli
