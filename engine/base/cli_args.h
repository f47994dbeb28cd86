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
  long long get_int(const std::string& name, long long def) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_set_;
  std::vector<std::string> positional_;
};

}  // namespace pvm::cli
