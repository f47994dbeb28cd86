// pvm-studio: the Dear ImGui desktop studio. Everything lives in app/studio/ and views/; this
// file only turns the command line into options and errors into exit codes.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "app/studio/options.h"
#include "app/studio/studio_app.h"
#include "engine/base/error.h"

int main(int argc, char** argv) {
  pvm::studio::StudioOptions opt;
  try {
    opt = pvm::studio::parse_options(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const pvm::Error& e) {
    std::fprintf(stderr, "pvm-studio: error: %s\n\n%s", e.what(), pvm::studio::usage_text());
    return 2;
  }
  if (opt.help) {
    std::printf("%s", pvm::studio::usage_text());
    return 0;
  }
  try {
    return pvm::studio::run_studio(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pvm-studio: error: %s\n", e.what());
    return 1;
  }
}
