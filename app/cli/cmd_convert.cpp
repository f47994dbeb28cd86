// pvm convert: re-write a checkpoint in another dtype, optionally with a PVM adapter merged in as
// official in-checkpoint PVM weights (config fields pvm_hidden_size / pvm_layers). The tokenizer
// and processor files travel with it.
#include <cstdio>
#include <filesystem>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/device.h"
#include "engine/loader.h"
#include "engine/pvm.h"

namespace {

int run(const std::vector<std::string>& argv) {
  namespace fs = std::filesystem;
  pvm::cli::Args a(argv, {"--model", "--pvm", "--out", "--dtype", "--shard-mb"}, {});
  const std::string src = a.require("--model"), out = a.require("--out");
  std::error_code ec;
  if (fs::equivalent(fs::path(src), fs::path(out), ec))
    throw pvm::Error("--out " + out + ": is the source checkpoint; write to another folder");
  auto dtype = pvm::parse_dtype(a.get("--dtype", "bf16"), torch::Device("cpu"));
  const int64_t shard_mb = a.get_int("--shard-mb", 4096, 1, 1 << 30);
  pvm::LoadOptions lo;  // f32 in memory: the conversion rounds once, on write
  auto lm = pvm::load_model(src, lo);
  if (a.has("--pvm")) pvm::load_pvm_adapter(*lm.model, a.get("--pvm"));
  pvm::save_model(lm.model, out, dtype, (uint64_t)shard_mb << 20);
  for (auto f : {"tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "chat_template.jinja"}) {
    auto from = fs::path(src) / f;
    if (fs::is_regular_file(from)) fs::copy_file(from, fs::path(out) / f, fs::copy_options::overwrite_existing);
  }
  std::fprintf(stderr, "pvm convert: %s -> %s (%s%s)\n", src.c_str(), out.c_str(), pvm::dtype_name(dtype).c_str(),
               a.has("--pvm") ? ", PVM adapter merged" : "");
  return 0;
}

}  // namespace

PVM_COMMAND("convert", "re-write a checkpoint in another dtype, optionally merging a PVM adapter into it",
            "--model DIR --out DIR [--dtype bf16|f32|f16] [--pvm ADAPTER] [--shard-mb MB]", run);
