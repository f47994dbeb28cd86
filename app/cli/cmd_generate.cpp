// pvm generate: stream an answer for an image + prompt, then report prefill and decode speed.
#include <atomic>
#include <memory>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/sampling.h"
#include "engine/device.h"
#include "engine/pipeline.h"
#include "engine/probes.h"
#include "engine/pvm.h"
#include "engine/vismem.h"

namespace {

std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel = true; }

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv,
                   {"--model", "--image", "--prompt", "--system", "--max-new-tokens", "--temperature", "--top-p",
                    "--top-k", "--min-p", "--repetition-penalty", "--seed", "--dtype", "--device", "--threads", "--tokenizer",
                    "--num-sequences", "--pvm", "--trace", "--vismem", "--vismem-invoke", "--vismem-max", "--visual-scale", "--visual-restore", "--history-window"},
                   {"--json", "--quiet", "--probe", "--no-pvm", "--no-vismem"});
  const bool json = a.has("--json"), quiet = a.has("--quiet") || json;
  // Sampling options are checked before the (slow) model load: a bad one fails at once.
  double temp = a.get_double("--temperature", 0.0);
  if (!(temp >= 0)) throw pvm::Error("--temperature must be >= 0 (0 = greedy)");
  pvm::SamplingParams sampling;
  sampling.do_sample = temp > 0;
  sampling.temperature = temp > 0 ? temp : 1.0;
  sampling.top_p = a.get_double("--top-p", 1.0);
  sampling.top_k = a.get_int("--top-k", 0, 0, 1 << 30);
  sampling.min_p = a.get_double("--min-p", 0.0);
  sampling.repetition_penalty = a.get_double("--repetition-penalty", 1.0);
  sampling.seed = uint64_t(a.get_int("--seed", 0, 0, INT64_MAX));
  sampling.validate();
  const int64_t max_new = a.get_int("--max-new-tokens", 256, 1, 1 << 20);
  const int64_t num_sequences = a.get_int("--num-sequences", 1, 1, 256);
  if (a.has("--trace")) pvm::check_output_file(a.get("--trace"), "trace");
  const std::string invoke = a.get("--vismem-invoke", "model");
  if (invoke != "model" && invoke != "separators")
    throw pvm::Error("option --vismem-invoke: must be model or separators, got '" + invoke + "'");
  const int64_t vismem_max = a.get_int("--vismem-max", 4, 0, 1 << 20);
  const auto visual = pvm::cli::visual_intervention(a, a.has("--vismem") && !a.has("--no-vismem"));
  auto pipe = pvm::open_pipeline(pvm::cli::open_options(a, quiet));

  pvm::PromptSpec spec;
  spec.text = a.require("--prompt");
  spec.system = a.get("--system");
  spec.image_paths = a.all("--image");
  auto prep = pipe.prepare(spec);
  auto& req = prep.request;
  req.max_new_tokens = max_new;
  req.sampling = sampling;
  req.num_sequences = num_sequences;
  req.sampling.validate();
  req.cancel = &g_cancel;
  req.pvm = !a.has("--no-pvm");
  // VisMem: on when an adapter is loaded (--no-vismem: the baseline on the same loaded model)
  req.vismem.enabled = a.has("--vismem") && !a.has("--no-vismem");
  req.vismem.invoke = invoke;
  req.vismem.max_invocations = vismem_max;
  req.vismem.seed = sampling.seed;
  req.visual_attention_scale = visual.scale;
  req.visual_attention_restore = visual.restore;
  req.history_window = visual.window;
  std::signal(SIGINT, on_sigint);

  // Stream sequence 0 as text: decode the growing id list and print the new suffix (a token may
  // end inside a UTF-8 character, so printing per token would split characters).
  std::vector<int64_t> shown;
  std::string printed;
  if (!json)
    req.on_token = [&](int64_t seq, int64_t tok, int64_t) {
      if (seq != 0) return true;
      shown.push_back(tok);
      std::string text = pipe.decode_marked(shown, true);
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0 &&
          (unsigned char)text.back() < 0x80) {
        std::fwrite(text.data() + printed.size(), 1, text.size() - printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
      return true;
    };
  // Probes (visual mass per layer, PVM activity): sequence 0, one record per generated token.
  const bool probe = a.has("--probe") || a.has("--trace");
  std::unique_ptr<pvm::ProbeRecorder> rec;
  if (probe) {
    auto& mc = pipe.model.model->config();
    pvm::ProbeOptions po;
    po.pvm = req.pvm;
    rec = std::make_unique<pvm::ProbeRecorder>(pipe.model.model, pvm::visual_positions(req.prompt_ids, mc.image_token_id),
                                               po, req.grids, mc.vision.spatial_merge_size);
    rec->attach(req);
  }
  auto res = pvm::generate(pipe.model.model, req);
  // Ids with no token (the embedding table is larger than the vocabulary) print as nothing: say so.
  int64_t unknown = 0;
  for (auto& seq : res.tokens)
    for (auto id : seq) unknown += !pipe.tokenizer.has_id(int32_t(id)) && pvm::vismem_token_of(pipe.model.config, id) < 0;
  if (unknown)
    std::fprintf(stderr, "warning: %lld generated ids have no token in %s and print as nothing\n", (long long)unknown,
                 pipe.tokenizer_path.c_str());
  if (rec && a.has("--trace")) rec->write_jsonl(a.get("--trace"));
  std::vector<double> mean_mass;
  if (rec && !rec->tokens().empty()) {
    for (auto& t : rec->tokens()) {
      mean_mass.resize(t.mass.size(), 0.0);
      for (size_t l = 0; l < t.mass.size(); ++l) mean_mass[l] += t.mass[l] / rec->tokens().size();
    }
  }
  if (!json) {
    std::string text = pipe.decode_marked(res.tokens[0], true);
    if (text.size() > printed.size()) std::fwrite(text.data() + printed.size(), 1, text.size() - printed.size(), stdout);
    std::printf("\n");
    std::fflush(stdout);
    for (size_t g = 1; g < res.tokens.size(); ++g) std::printf("--- sequence %zu ---\n%s\n", g, pipe.decode_marked(res.tokens[g]).c_str());
    std::fprintf(stderr, "prefill: %lld tokens in %.1f ms (%.1f tokens/s); decode: %zu tokens, %.2f tokens/s; finish: %s\n",
                 (long long)res.prompt_tokens, res.prefill_ms, res.prefill_tokens_per_s(), res.tokens[0].size(),
                 res.decode_tokens_per_s(), res.finish[0].c_str());
    if (req.vismem.enabled)
      std::fprintf(stderr, "vismem: %zu memories inserted in sequence 0\n", res.insertions[0].size());
    if (rec) {
      std::fprintf(stderr, "visual attention mass per layer (mean over %zu tokens):", rec->tokens().size());
      for (double v : mean_mass) std::fprintf(stderr, " %.4f", v);
      std::fprintf(stderr, "\n");
      if (a.has("--trace")) std::fprintf(stderr, "probe trace: %s\n", a.get("--trace").c_str());
    }
  } else {
    nlohmann::json j;
    j["text"] = pipe.decode_marked(res.tokens[0], true);
    if (req.vismem.enabled) {
      auto& inv = j["invocations"] = nlohmann::json::array();
      for (auto& mi : res.insertions[0])
        inv.push_back({{"token_index", mi.token_index}, {"type", mi.type}, {"rows", mi.rows}});
    }
    j["ids"] = res.tokens[0];
    j["finish"] = res.finish[0];
    j["prompt_tokens"] = res.prompt_tokens;
    j["prefill_ms"] = res.prefill_ms;
    j["decode_tokens_per_s"] = res.decode_tokens_per_s();
    if (rec) j["visual_mass_mean"] = mean_mass;
    if (res.tokens.size() > 1) {
      auto& seqs = j["sequences"] = nlohmann::json::array();
      for (size_t g = 0; g < res.tokens.size(); ++g)
        seqs.push_back(nlohmann::json{{"text", pipe.decode_marked(res.tokens[g], true)}, {"ids", res.tokens[g]}, {"finish", res.finish[g]}});
    }
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace

PVM_COMMAND("generate", "stream an answer for images + a prompt (greedy by default)",
            "[--model DIR] --prompt TEXT [--image FILE ...] [--system TEXT] [--max-new-tokens N] "
            "[--temperature T --top-p P --top-k K --min-p M --repetition-penalty R --seed S] [--num-sequences G] "
            "[--dtype f32|bf16|f16|auto] [--device cpu|cuda|auto] [--threads N] [--tokenizer FILE] [--pvm ADAPTER] [--no-pvm] "
            "[--vismem ADAPTER [--vismem-invoke model|separators] [--vismem-max N] [--no-vismem]] "
            "[--visual-scale S] [--visual-restore K] [--history-window N] [--probe] [--trace FILE.jsonl] [--json]",
            run);
