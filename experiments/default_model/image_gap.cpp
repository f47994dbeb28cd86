// Does a model read its image? Teacher-forced loss per answer token on SFT items, with the item's
// own image and with the next item's image of another scene (same text), plus the merger output's
// row norm and how alike the image rows are (a collapsed merger gives one constant vector).
//   pvm-image-gap --model DIR --data SFT.jsonl [--count 20] [--threads 2]
#include <cstdio>

#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/pipeline.h"
#include "engine/train_data.h"

using namespace pvm;
using namespace pvm::train;

int main(int argc, char** argv) try {
  cli::Args a(std::vector<std::string>(argv + 1, argv + argc), {"--model", "--data", "--count", "--threads"});
  if (!a.has("--model") || !a.has("--data")) throw Error("usage: pvm-image-gap --model DIR --data SFT.jsonl [--count N] [--threads T]");
  torch::set_num_threads(a.get_int("--threads", 2, 1, 1024));
  auto p = Pipeline::open(a.get("--model"), LoadOptions{});
  auto& m = p.model.model;
  m->eval();
  torch::NoGradGuard ng;
  BadLinePolicy policy;
  auto recs = read_sft_jsonl(a.get("--data"), policy);
  const int64_t count = std::min<int64_t>(a.get_int("--count", 20, 1, 1 << 30), (int64_t)recs.size());
  if (count < 1) throw Error("--count must be >= 1");
  const int64_t pad = m->config().pad_token_id;
  double own = 0, other = 0, norm = 0, cos_in = 0;
  for (int64_t i = 0; i < count; ++i) {
    size_t j = i;  // the next item showing another scene
    do j = (j + 1) % recs.size(); while (recs[j].images == recs[i].images && j != (size_t)i);
    if (j == (size_t)i) throw Error(a.get("--data") + ": every item shows the same image");
    for (int swap = 0; swap < 2; ++swap) {
      auto imgs = load_images(recs[swap ? j : i].images, p.preprocessor);
      std::vector<int64_t> nt;
      for (auto& im : imgs) nt.push_back(im.num_tokens());
      auto b = collate({tokenize_sft(recs[i], p.tokenizer, nt)}, {imgs}, pad);
      ForwardInput in;
      in.input_ids = b.input_ids;
      in.pixel_values = b.pixel_values;
      in.grids = b.grids;
      in.all_logits = true;
      auto out = m->forward(in);
      auto lp = torch::log_softmax(out.logits[0], -1);  // [S, V]
      auto lab = b.labels[0].narrow(0, 1, b.labels.size(1) - 1);  // targets of rows 0..S-2
      auto keep = (lab != kIgnoreIndex).nonzero().squeeze(1);
      auto nll = -lp.index_select(0, keep).gather(1, lab.index_select(0, keep).unsqueeze(1)).mean().item<double>();
      (swap ? other : own) += nll / count;
      if (!swap) {
        auto e = out.image_embeds.to(torch::kFloat);  // [Nv, H]
        norm += e.norm(2, 1).mean().item<double>() / count;
        auto u = e / e.norm(2, 1, true);
        auto c = torch::mm(u, u.t());
        const int64_t n = c.size(0);
        cos_in += n > 1 ? ((c.sum() - c.diagonal().sum()) / (n * (n - 1))).item<double>() / count : 1.0 / count;
      }
    }
  }
  auto te = m->model->language_model->embed_tokens->weight.to(torch::kFloat).norm(2, 1).mean().item<double>();
  std::printf("%s on %lld items of %s\n", a.get("--model").c_str(), (long long)count, a.get("--data").c_str());
  std::printf("loss per answer token: own image %.4f, another scene's image %.4f, gap %.4f\n", own, other, other - own);
  std::printf("merger output row norm %.3f (text embedding rows %.3f); mean cosine between one image's rows %.3f\n", norm, te,
              cos_in);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pvm-image-gap: error: %s\n", e.what());
  return 1;
}
