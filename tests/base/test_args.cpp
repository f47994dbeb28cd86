#include <gtest/gtest.h>

#include "engine/base/cli_args.h"

using pvm::cli::Args;

TEST(Args, ParsesOptionsFlagsAndRepeats) {
  Args a({"--model", "m", "--image=a.png", "--image", "b.png", "--json", "pos"}, {"--model", "--image"},
         {"--json"});
  EXPECT_EQ(a.get("--model"), "m");
  EXPECT_EQ(a.all("--image"), (std::vector<std::string>{"a.png", "b.png"}));
  EXPECT_TRUE(a.has("--json"));
  EXPECT_EQ(a.positional(), std::vector<std::string>{"pos"});
}

TEST(Args, RejectsUnknownAndMalformed) {
  EXPECT_THROW(Args({"--nope"}, {"--model"}), pvm::Error);
  EXPECT_THROW(Args({"--model"}, {"--model"}), pvm::Error);
  Args a({"--n", "12x"}, {"--n"});
  EXPECT_THROW(a.get_int("--n", 0, 0, 100), pvm::Error);
  EXPECT_EQ(a.get_int("--m", 7, 0, 100), 7);
}
