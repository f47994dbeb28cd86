// Format numbers of the files this tool writes and reads back (studio sessions, trainer states,
// PVM adapters, eval logs). A reader knows the newest format it understands; a file of a newer
// format is refused with one line (it may mean something this build cannot know), while an older
// one, or one written before the number existed, is read as before.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace pvm {

// Returns the format of `j` (the value of `key`; `absent` when it has none). Throws pvm::Error
// "<path>: <what> format 3 is newer than this build reads (up to 1): it needs a newer build" for a newer
// one, "<path>: <key> must be a positive integer, got ..." for anything but a positive integer.
int64_t check_file_format(const nlohmann::json& j, const char* key, int64_t newest, const std::string& path,
                          const std::string& what, int64_t absent = 1);

}  // namespace pvm
