#include "engine/base/proc.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace pvm {

int64_t process_rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return int64_t(resident) * sysconf(_SC_PAGESIZE);
}

int64_t process_peak_rss_bytes() {
  long long kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmHWM:", 6) == 0) {
        if (std::sscanf(line + 6, "%lld", &kb) != 1) kb = 0;
        break;
      }
    std::fclose(f);
  }
  return int64_t(kb) * 1024;
}

}  // namespace pvm
