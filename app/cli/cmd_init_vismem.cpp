// pvm init-vismem: a fresh (untrained) VisMem adapter for a model, the starting point of stage 1.
#include <cstdio>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/vismem.h"

namespace {

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv,
                   {"--model", "--out", "--tokenizer", "--device", "--dtype", "--threads", "--query-len", "--short-len",
                    "--long-len", "--long-layers", "--lora-rank", "--lora-alpha", "--qc-layers", "--qc-heads",
                    "--qc-ff-mult", "--max-text-rows", "--separators", "--init-token", "--seed"},
                   {"--quiet"});
  const std::string out = a.require("--out");
  pvm::VismemConfig c;
  c.query_len = a.get_int("--query-len", c.query_len, 1, 4096);
  c.short_len = a.get_int("--short-len", c.short_len, 1, 4096);
  c.long_len = a.get_int("--long-len", c.long_len, 1, 4096);
  c.lora_rank = a.get_int("--lora-rank", c.lora_rank, 1, 1024);
  c.lora_alpha = a.get_double("--lora-alpha", c.lora_alpha);
  c.qc_layers = a.get_int("--qc-layers", c.qc_layers, 1, 64);
  c.qc_heads = a.get_int("--qc-heads", c.qc_heads, 1, 1024);
  c.qc_ff_mult = a.get_int("--qc-ff-mult", c.qc_ff_mult, 1, 16);
  c.max_text_rows = a.get_int("--max-text-rows", c.max_text_rows, 0, 1 << 20);
  const uint64_t seed = uint64_t(a.get_int("--seed", 0, 0, INT64_MAX));
  auto o = pvm::cli::open_options(a, a.has("--quiet"));
  o.vismem.clear();
  auto pipe = pvm::open_pipeline(o);
  auto& m = *pipe.model.model;
  const int64_t L = m.cfg.text.num_hidden_layers;
  c.long_layers = a.get_int("--long-layers", std::max<int64_t>(1, std::min<int64_t>(4, L / 4)), 1, 1 << 20);
  // Separators: the delimiters after which stage 1 invokes memories, each one token of the
  // tokenizer (a string that encodes to several tokens is an error).
  const std::string seps = a.get("--separators", ".|,|;|:|\n");
  size_t from = 0;
  while (from <= seps.size()) {
    size_t bar = seps.find('|', from);
    std::string s = seps.substr(from, bar == std::string::npos ? std::string::npos : bar - from);
    from = bar == std::string::npos ? seps.size() + 1 : bar + 1;
    if (s.empty()) continue;
    auto ids = pipe.tokenizer.encode(s);
    if (ids.size() != 1) {
      // given: each must be one token; the default list keeps those the tokenizer has
      if (a.has("--separators"))
        throw pvm::Error("option --separators: '" + s + "' is " + std::to_string(ids.size()) + " tokens in " +
                         pipe.tokenizer_path + " (each separator must be one token)");
      continue;
    }
    c.separator_ids.push_back(ids[0]);
  }
  if (c.separator_ids.empty()) throw pvm::Error("no separator is one token in " + pipe.tokenizer_path + " (give --separators)");
  const std::string init = a.get("--init-token", ".");
  auto init_ids = pipe.tokenizer.encode(init);
  if (init_ids.size() != 1) {
    if (a.has("--init-token"))
      throw pvm::Error("option --init-token: '" + init + "' is not one token in " + pipe.tokenizer_path);
    init_ids = {int32_t(c.separator_ids[0])};  // the first separator instead of '.'
  }
  c.init_token_id = init_ids[0];
  pvm::attach_vismem(m, c, seed);
  pvm::save_vismem_adapter(m, out);
  int64_t n = 0;
  for (auto& p : m.named_parameters(true))
    if (p.key().rfind("vismem.", 0) == 0) n += p.value().numel();
  std::fprintf(stderr, "pvm init-vismem: %lld parameters (K=%lld, N_s=%lld, N_l=%lld, long-term LoRA on the last %lld layers), %zu separators; wrote %s\n",
               (long long)n, (long long)c.query_len, (long long)c.short_len, (long long)c.long_len,
               (long long)c.long_layers, c.separator_ids.size(), out.c_str());
  return 0;
}

}  // namespace

PVM_COMMAND("init-vismem", "write a fresh VisMem adapter for a model (stage-1 starting point)",
            "[--model DIR] --out DIR [--query-len 8] [--short-len 8] [--long-len 16] [--long-layers N] "
            "[--lora-rank 16] [--lora-alpha 32] [--qc-layers 2] [--qc-heads 8] [--qc-ff-mult 4] [--max-text-rows 1024] "
            "[--separators '.|,|;|:|<newline>'] [--init-token .] [--seed S] [--tokenizer FILE] [--device D] [--dtype T]",
            run);
