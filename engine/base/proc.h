// Facts about the running process (Linux /proc), for memory figures in logs and the studio.
#pragma once
#include <cstdint>

namespace pvm {

// Resident set size in bytes (/proc/self/statm), 0 when unreadable.
int64_t process_rss_bytes();
// Peak resident set size in bytes (VmHWM of /proc/self/status), 0 when unreadable.
int64_t process_peak_rss_bytes();

}  // namespace pvm
