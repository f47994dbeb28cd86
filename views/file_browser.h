// In-app file browser (no native dialog on our dependency list): a modal listing a folder (folders
// first, then files matching the extensions), a path field that accepts typed paths, parent/home
// buttons. Modes: pick a file, pick a folder, or name a file/folder to save. The accept callback
// validates; returning false keeps the browser open with its error shown.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pvm::studio {

class FileBrowser {
 public:
  enum class Mode { OpenFile, OpenDir, Save };
  using Accept = std::function<bool(const std::string& path, std::string* error)>;

  // extensions: lower case with the dot (".png"); empty = all files.
  void open(std::string title, Mode mode, std::string start, std::vector<std::string> extensions, Accept accept);
  void draw();  // every frame, inside or outside a window
  bool is_open() const { return !title_.empty(); }

  struct Entry {
    std::string name;
    bool dir = false;
    uintmax_t size = 0;
  };
  // Folders first, then files with a matching extension; hidden entries skipped. Sorted by name.
  static std::vector<Entry> list(const std::string& dir, const std::vector<std::string>& extensions,
                                 std::string* error);

 private:
  void go(const std::string& dir);
  bool finish(const std::string& path);

  std::string title_, dir_, path_, error_;
  Mode mode_ = Mode::OpenFile;
  std::vector<std::string> ext_;
  std::vector<Entry> entries_;
  Accept accept_;
  int selected_ = -1;
  bool request_ = false;
};

}  // namespace pvm::studio
