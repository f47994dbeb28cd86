// A modal asking for a file path (no native file dialog on our dependency list). The accept
// callback validates: returning false keeps the prompt open with its error shown.
#pragma once
#include <functional>
#include <string>

namespace pvm::studio {

class PathPrompt {
 public:
  using Accept = std::function<bool(const std::string& path, std::string* error)>;

  void open(std::string title, std::string hint, std::string initial, Accept accept);
  void draw();  // once per frame, after the views

 private:
  std::string title_, hint_, path_, error_;
  Accept accept_;
  bool request_ = false, focus_ = false;
};

}  // namespace pvm::studio
