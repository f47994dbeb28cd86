#include "engine/train.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/proc.h"
#include "engine/base/version.h"
#include "engine/base/file_format.h"
#include "engine/train_state.h"
#include "engine/device.h"
#include "engine/loader.h"
#include "engine/optimizer.h"
#include "engine/pipeline.h"
#include "engine/pvm.h"
#include "engine/train_vismem.h"
#include "engine/vismem.h"
#include "engine/run_dir.h"
#include "engine/tensor_io.h"
#include "engine/train_grpo.h"
#include "engine/train_sft.h"

namespace pvm::train {

namespace fs = std::filesystem;
using nlohmann::json;

// ====================== model helpers ======================

namespace {

// Activation checkpointing of one decoder layer. Forward runs without building a graph; backward
// recomputes the layer with grad enabled and backpropagates through it (a reentrant backward, as
// torch.utils.checkpoint(use_reentrant=True) does). Inputs: h [B, S, H], the merger output that PVM
// reads (in.pvm.image_embeds; may be undefined) and a dummy that requires grad, so the output joins the
// graph even when only the layer's own parameters train.
struct LayerCheckpointFn : public torch::autograd::Function<LayerCheckpointFn> {
  // The recompute rebuilds what the layer reads from DecoderInputs (RoPE tables, masks, the PVM
  // source), so nothing points back into the caller's inputs after forward returns.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor h, torch::Tensor img,
                                                torch::Tensor dummy, Qwen3VLTextDecoderLayerImpl* layer,
                                                const DecoderInputs* in, KVCache* cache, const ForwardHooks* hooks) {
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);
    auto put = [&](const char* k, const torch::Tensor& t) {
      ctx->saved_data[std::string("has_") + k] = t.defined();
      if (t.defined()) ctx->saved_data[k] = t;
    };
    put("cos", in->rope.cos);
    put("sin", in->rope.sin);
    put("visual_mask", in->visual_mask);
    put("key_valid", in->key_valid);
    put("key_allowed", in->key_allowed);
    put("key_bias", in->key_bias);
    ctx->saved_data["pvm_enabled"] = in->pvm.enabled;
    ctx->saved_data["has_img"] = img.defined();
    ctx->save_for_backward({h, img.defined() ? img : torch::empty({0})});
    torch::NoGradGuard ng;
    return {layer->forward(h, *in, cache, *hooks)};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* layer = reinterpret_cast<Qwen3VLTextDecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto get = [&](const char* k) {
      return ctx->saved_data[std::string("has_") + k].toBool() ? ctx->saved_data[k].toTensor() : torch::Tensor();
    };
    DecoderInputs in;
    in.rope.cos = get("cos");
    in.rope.sin = get("sin");
    in.visual_mask = get("visual_mask");
    in.key_valid = get("key_valid");
    in.key_allowed = get("key_allowed");
    in.key_bias = get("key_bias");
    in.pvm.enabled = ctx->saved_data["pvm_enabled"].toBool();
    const bool has_img = ctx->saved_data["has_img"].toBool();
    auto saved = ctx->get_saved_variables();
    torch::Tensor h = saved[0].detach().requires_grad_(true);
    torch::Tensor img;
    if (has_img) img = saved[1].detach().requires_grad_(true);
    in.pvm.image_embeds = img;
    torch::Tensor out;
    {
      torch::AutoGradMode on(true);
      out = layer->forward(h, in, nullptr, {});
    }
    if (out.requires_grad()) torch::autograd::backward({out}, {grads[0]});
    return {h.grad(), has_img ? img.grad() : torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Positions (b, s) with s >= 1 where mask is true; hidden rows at s-1 predict ids[b, s].
struct Targets {
  torch::Tensor rows;     // [N] flat index into [B, S-1]
  torch::Tensor targets;  // [N] token ids
};

Targets target_positions(const TokenBatch& b, const torch::Tensor& mask, const torch::Device& dev) {
  auto m = mask.to(torch::kBool).narrow(1, 1, mask.size(1) - 1).reshape({-1});  // [B*(S-1)]
  auto rows = m.nonzero().squeeze(1);
  auto tgt = b.input_ids.narrow(1, 1, b.input_ids.size(1) - 1).reshape({-1}).index_select(0, rows);
  return {rows.to(dev), tgt.to(dev)};
}

// Log-probs [N] of the targets (f32), vocabulary projection only at the N target rows.
torch::Tensor target_logprobs(TrainContext& ctx, const TokenBatch& b, const Targets& t) {
  auto hidden = forward_hidden(ctx, b);  // [B, S, H]
  const int64_t H = hidden.size(2);
  auto prev = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, H}).index_select(0, t.rows);  // [N, H]
  auto logits = torch::matmul(prev, ctx.model->lm_head_weight().t()).to(torch::kFloat);          // [N, V]
  return torch::log_softmax(logits, -1).gather(1, t.targets.unsqueeze(1)).squeeze(1);
}

}  // namespace

torch::Tensor checkpointed_layer(Qwen3VLTextDecoderLayerImpl& layer, const torch::Tensor& h, const DecoderInputs& in,
                                 KVCache* cache, const ForwardHooks& hooks) {
  if (!torch::GradMode::is_enabled()) return layer.forward(h, in, cache, hooks);
  const auto& img = in.pvm.image_embeds;
  bool any = h.requires_grad() || (img.defined() && img.requires_grad());
  for (auto& p : layer.parameters())
    if (p.requires_grad()) any = true;
  if (!any) return layer.forward(h, in, cache, hooks);  // nothing to differentiate: no graph either way
  auto dummy = torch::zeros({}, torch::TensorOptions().requires_grad(true));
  return LayerCheckpointFn::apply(h, img, dummy, &layer, &in, cache, &hooks)[0];
}

torch::Tensor forward_hidden(TrainContext& ctx, const TokenBatch& b) {
  ForwardInput in;
  in.input_ids = b.input_ids.to(ctx.device);
  if (b.pixel_values.defined()) in.pixel_values = b.pixel_values.to(ctx.device);
  in.grids = b.grids;
  in.all_logits = false;
  if (ctx.cfg.history_window > 0 || ctx.cfg.visual_restore != 0) {
    // The answer starts at each row's first labelled token (S when a row has none).
    const int64_t S = b.input_ids.size(1);
    auto idx = torch::arange(S, torch::kLong).view({1, S}).expand({b.input_ids.size(0), S});
    auto start = std::get<0>(torch::where(b.labels != kIgnoreIndex, idx, torch::full_like(idx, S)).min(1));  // [B]
    if (ctx.cfg.history_window > 0) in.key_allowed = history_window_mask(start, S, ctx.cfg.history_window).to(ctx.device);
    if (ctx.cfg.visual_restore != 0) {
      const auto& mc = ctx.model->config();
      auto image_keys = (b.input_ids == mc.image_token_id) | (b.input_ids == mc.video_token_id);
      in.key_bias = visual_restore_bias(image_keys, start, ctx.cfg.visual_restore).to(ctx.device);
    }
  }
  ForwardHooks hooks;
  if (ctx.cfg.grad_checkpointing) hooks.layer_runner = checkpointed_layer;
  auto out = ctx.model->forward(in, nullptr, hooks);
  return out.hidden;
}

torch::Tensor token_logprobs(TrainContext& ctx, const TokenBatch& b, const torch::Tensor& mask) {
  auto t = target_positions(b, mask, ctx.device);
  auto lp = target_logprobs(ctx, b, t);
  const int64_t B = b.input_ids.size(0), S = b.input_ids.size(1);
  auto out = torch::zeros({B * (S - 1)}, lp.options());
  out = out.index_put({t.rows}, lp).view({B, S - 1});
  return torch::cat({torch::zeros({B, 1}, lp.options()), out}, 1);
}

torch::Tensor masked_logprobs(TrainContext& ctx, const TokenBatch& b, const torch::Tensor& mask) {
  return target_logprobs(ctx, b, target_positions(b, mask, ctx.device));
}


// ====================== trainable set ======================

std::vector<std::string> select_trainable(Qwen3VLForConditionalGenerationImpl& m, const std::string& set) {
  std::vector<std::string> names;
  for (auto& p : m.named_parameters(true)) {
    const std::string& n = p.key();
    const bool is_pvm = n.find(".pvm_block.") != std::string::npos;
    const bool is_llm = n.rfind("model.language_model.", 0) == 0 || n.rfind("lm_head.", 0) == 0;
    bool on = false;
    if (set == "pvm") on = is_pvm;
    else if (set == "pvm+llm" || set == "llm") on = is_pvm || is_llm;
    else if (set == "all") on = true;
    // VisMem stage 1: the constructor and formers; the four token rows stay (docs/VISMEM.md)
    else if (set == "vismem") on = n.rfind("vismem.", 0) == 0 && n.rfind("vismem.token_", 0) != 0;
    // VisMem stage 2: the invocation policy, i.e. the four token rows (token_embed, token_head)
    else if (set == "vismem-policy") on = n.rfind("vismem.token_", 0) == 0;
    else throw Error("trainable: unknown set \"" + set + "\" (pvm, pvm+llm, llm, all, vismem, vismem-policy)");
    if (on) names.push_back(n);
  }
  if (names.empty())
    throw Error("trainable: the set \"" + set + "\" selects no parameter" +
                (set == "pvm" ? std::string(" (the model has no PVM blocks: give pvm.layers or an adapter)")
                 : set.rfind("vismem", 0) == 0 ? std::string(" (the model has no VisMem adapter: give vismem.adapter)") : ""));
  return names;
}

// ====================== the run ======================

namespace {

std::atomic<bool> g_stop{false};
extern "C" void pvm_train_on_signal(int) { g_stop.store(true); }

}  // namespace

std::atomic<bool>& stop_flag() { return g_stop; }

namespace {

struct Runner {
  TrainConfig cfg;
  RunOptions opt;
  std::unique_ptr<Distributed> dist;
  std::unique_ptr<TrainContext> ctx;
  std::unique_ptr<Objective> obj;
  AdamW adam;
  std::unique_ptr<RunDir> rd;
  std::string run_dir, base_model_dir, data_hash;
  bool pvm_only = false;
  int64_t step = 0, total = 0;
  double elapsed_before = 0;  // seconds of earlier sessions (resume)
  std::ofstream metrics;

  bool main() const { return dist->is_main(); }

  // The run folder as setup found it (device and inode, and an open descriptor): a folder moved
  // while training is followed (the run goes on where it now is, and says so), a removed one is an
  // error, instead of the next save silently re-creating an empty folder at the old path.
  int dir_fd = -1;
  dev_t dir_dev = 0;
  ino_t dir_ino = 0;
  std::string moved_from;  // the path the run started in, once it has moved
  std::string end_state;   // "finished" | "stopped", once the loop has ended

  void pin_run_dir() {
    dir_fd = ::open(run_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat sb {};
    if (dir_fd >= 0 && ::fstat(dir_fd, &sb) == 0) dir_dev = sb.st_dev, dir_ino = sb.st_ino;
  }
  void follow_run_dir() {
    if (!main() || dir_fd < 0) return;
    struct stat sb {};
    if (::stat(run_dir.c_str(), &sb) == 0 && sb.st_dev == dir_dev && sb.st_ino == dir_ino) return;
    // /proc/self/fd names the folder we still hold open, wherever it went.
    char buf[4096];
    const ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(dir_fd)).c_str(), buf, sizeof buf - 1);
    const std::string now = n > 0 ? std::string(buf, size_t(n)) : "";
    struct stat nb {};
    if (now.empty() || ::stat(now.c_str(), &nb) != 0 || nb.st_dev != dir_dev || nb.st_ino != dir_ino)
      throw file_error(run_dir, "the run folder was removed while training (at step " + std::to_string(step) +
                                    "); nothing more can be saved");
    std::fprintf(stderr, "note: the run folder %s was moved to %s while training; the run goes on there\n", run_dir.c_str(),
                 now.c_str());
    if (moved_from.empty()) moved_from = run_dir;
    run_dir = now;
    ctx->run_dir = now;
    rd->moved_to(now);  // the lock file moved with the folder
  }

  void status(const std::string& state, const std::string& message = "") {
    if (!main()) return;
    follow_run_dir();
    rd->write_status(state, step, total, message);
  }

  void setup() {
    auto dev = parse_device(cfg.device);
    if (cfg.threads > 0) torch::set_num_threads((int)cfg.threads);
    torch::manual_seed(cfg.seed);  // global RNG from the seed (saved and restored with checkpoints)
    dist = Distributed::from_env(dev);
    if (dev.is_cuda() && dist->world() > 1) dev = torch::Device(torch::kCUDA, (int8_t)dist->local_rank());
    const bool resume = !opt.resume_dir.empty();
    run_dir = resume ? opt.resume_dir : cfg.out;
    if (run_dir.empty()) {
      if (dist->world() > 1) throw Error("out: a run directory is required with several processes");
      run_dir = join_path(default_runs_dir(), cfg.mode + "-" + timestamp_name());
    }
    if (resume && !is_directory(run_dir)) throw file_error(run_dir, "no such run folder to resume");
    rd = std::make_unique<RunDir>(run_dir);
    if (main()) {
      rd->lock_for_training();
      pin_run_dir();
    }
    json state;
    std::string ckpt;
    if (resume) {
      ckpt = rd->latest_checkpoint();
      state = read_json(join_path(ckpt, "trainer_state.json"));
      // A newer format is refused before the (slow) model load; the rest is checked in restore().
      check_file_format(state, "pvm_trainer_state", kTrainerStateFormat, join_path(ckpt, "trainer_state.json"), "trainer state");
    } else if (rd->holds_run()) {
      throw file_error(run_dir, "already holds a run; resume it with --resume " + run_dir + " or choose another out");
    }

    // Model, tokenizer, processor.
    const auto dtype = cfg.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
    LoadOptions lo;
    lo.dtype = dtype;
    lo.device = dev;
    base_model_dir = cfg.model;
    const bool full_ckpt = resume && is_regular_file(join_path(ckpt, "config.json"));
    auto pipe = Pipeline::open(full_ckpt ? ckpt : cfg.model, lo);
    ctx = std::make_unique<TrainContext>(pipe.tokenizer);
    ctx->cfg = cfg;
    ctx->model = pipe.model.model;
    ctx->preprocessor = pipe.preprocessor;
    ctx->device = dev;
    ctx->compute_dtype = dtype;
    ctx->rank = dist->rank();
    ctx->world = dist->world();
    ctx->dist = dist.get();
    ctx->run_dir = run_dir;
    ctx->model_dir = base_model_dir;
    ctx->stop = &g_stop;
    auto& m = *ctx->model;
    if (resume && !full_ckpt && cfg.mode == "vismem") {
      if (!cfg.adapter.empty()) load_pvm_adapter(m, cfg.adapter);  // a fixed PVM beside VisMem
      load_vismem_adapter(m, ckpt);
    } else if (resume && !full_ckpt) {
      load_pvm_adapter(m, ckpt);
    } else if (!resume && cfg.mode == "vismem") {
      if (!cfg.adapter.empty()) load_pvm_adapter(m, cfg.adapter);
      load_vismem_adapter(m, cfg.vismem.adapter);
    } else if (!resume) {
      if (cfg.pvm.enabled()) {
        TextConfig f = m.cfg.text;
        f.pvm_layers = cfg.pvm.layers;
        f.pvm_hidden_size = cfg.pvm.hidden_size;
        f.pvm_variant = cfg.pvm.variant;
        f.pvm_source = cfg.pvm.source;
        attach_pvm(m, f, cfg.seed);
      } else if (!cfg.adapter.empty()) {
        load_pvm_adapter(m, cfg.adapter);
      }
    }

    // Trainable set; everything else frozen.
    ctx->trainable_names = select_trainable(m, cfg.trainable);
    std::set<std::string> on(ctx->trainable_names.begin(), ctx->trainable_names.end());
    pvm_only = true;
    for (auto& p : m.named_parameters(true)) {
      bool t = on.count(p.key()) > 0;
      p.value().set_requires_grad(t);
      if (t) ctx->trainable.push_back(p.value());
      if (t && p.key().find(".pvm_block.") == std::string::npos) pvm_only = false;
    }
    if (dist->world() > 1) {  // identical starting point on every rank
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> ts = ctx->trainable;
      dist->broadcast(ts, 0);
    }
    adam = AdamW({cfg.betas[0], cfg.betas[1], cfg.eps, cfg.weight_decay});
    for (size_t i = 0; i < ctx->trainable.size(); ++i) {
      const std::string& name = ctx->trainable_names[i];
      const torch::Tensor& p = ctx->trainable[i];
      // Weight decay on matrices only; the vision tower and its mergers at their own rate.
      adam.add(name, p, p.dim() >= 2, name.rfind("model.visual.", 0) == 0 ? cfg.visual_lr_scale : 1.0);
    }

    obj = cfg.mode == "grpo" ? make_grpo_objective(*ctx) : cfg.mode == "vismem" ? make_vismem_objective(*ctx) : make_sft_objective(*ctx);
    total = cfg.steps > 0 ? cfg.steps : obj->steps_per_epoch();
    if (total <= 0) throw Error(cfg.source + ": steps: 0 and the objective cannot tell the length of an epoch; set steps");
    ctx->total_steps = total;
    data_hash = file_hash(cfg.data);

    if (resume) restore(ckpt, state);
    if (main()) {
      fs::create_directories(rd->checkpoints());
      write_json(join_path(run_dir, "config.json"), cfg.to_json());
      if (!resume) write_manifest();
      metrics.open(join_path(run_dir, "metrics.jsonl"), std::ios::app | std::ios::binary);
      if (!metrics) throw file_error(join_path(run_dir, "metrics.jsonl"), "cannot open for writing");
    }
    status("running");
  }

  void write_manifest() {
    json j;
    j["base_model"] = base_model_dir;
    j["base_model_hash"] = model_hash(base_model_dir);
    j["data"] = cfg.data;
    j["data_hash"] = data_hash;
    j["eval_data_hash"] = cfg.eval_data.empty() ? "" : file_hash(cfg.eval_data);
    j["seed"] = cfg.seed;
    j["git_commit"] = git_commit();
    j["versions"] = {{"pvm", version()},
                     {"libtorch", std::string(TORCH_VERSION)},
                     {"nlohmann_json", std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                           std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                           std::to_string(NLOHMANN_JSON_VERSION_PATCH)},
                     {"compiler", __VERSION__}};
    j["world_size"] = dist->world();
    j["backend"] = dist->backend();
    j["trainable"] = cfg.trainable;
    j["trainable_params"] = [&] {
      int64_t n = 0;
      for (auto& t : ctx->trainable) n += t.numel();
      return n;
    }();
    j["created"] = now_s();
    write_json(join_path(run_dir, "manifest.json"), j);
  }

  int64_t metrics_size() {
    auto mp = join_path(run_dir, "metrics.jsonl");
    metrics.flush();
    return fs::exists(mp) ? (int64_t)fs::file_size(mp) : 0;
  }

  // ---- checkpoints ----
  // checkpoints/step-NNNNNN (resumable) or, with final, final/ in the run folder.
  void save(bool final) {
    if (!main()) return;
    follow_run_dir();
    auto fill = [&](const std::string& dir) { write_checkpoint(dir); };
    if (final) rd->save_final(fill);
    else rd->save_checkpoint(step, cfg.keep_checkpoints, fill);
  }

  void write_checkpoint(const std::string& tmp) {
    auto& m = *ctx->model;
    if (cfg.mode == "vismem") {
      save_vismem_adapter(m, tmp);  // only VisMem trains: the checkpoint is its adapter
    } else if (pvm_only) {
      save_pvm_adapter(m, tmp);
    } else {
      save_model(ctx->model, tmp, torch::kFloat);
      for (auto f : {"tokenizer.json", "preprocessor_config.json", "tokenizer_config.json"})
        if (is_regular_file(join_path(base_model_dir, f))) fs::copy_file(join_path(base_model_dir, f), join_path(tmp, f));
    }
    // Optimizer state (and f32 masters) by parameter name; RNG state.
    auto ts = adam.state();
    ts.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
    save_tensors(join_path(tmp, "optimizer.safetensors"), ts, {{"format", "pt"}});
    metrics.flush();
    json st{{"pvm_trainer_state", kTrainerStateFormat},
            {"step", step},
            {"total_steps", total},
            {"optimizer_steps", adam.steps()},
            {"objective", obj->state()},
            {"metrics_bytes", metrics_size()},
            {"elapsed_s", elapsed_before + (now_s() - session_start)},
            {"pvm_only", pvm_only},
            {"trainable", ctx->trainable_names},
            {"world_size", dist->world()},
            {"time", now_s()}};
    write_json(join_path(tmp, "trainer_state.json"), st);
  }

  void restore(const std::string& ckpt, const json& st) {
    // Nothing in a trainer state is believed unchecked: a state claiming step 999 of 8, a field of
    // the wrong type or an optimizer tensor of the wrong shape is an error naming the file, before
    // any of it is applied.
    const std::string sp = join_path(ckpt, "trainer_state.json");
    const TrainerState saved = parse_trainer_state(st, sp);  // types and format; then: does it fit this run?
    const int64_t s_step = saved.step, s_opt = saved.optimizer_steps;
    if (s_step > total)
      throw file_error(sp, "step " + std::to_string(s_step) + " is beyond the " + std::to_string(total) +
                               " steps of this run (config " + cfg.source + "): the state does not belong to this run");
    if (saved.total_steps && *saved.total_steps != total)
      throw file_error(sp, "total_steps " + std::to_string(*saved.total_steps) + " differs from the " +
                               std::to_string(total) + " steps this run's config and data give (were they changed?)");
    const int64_t s_metrics = saved.metrics_bytes;
    if (saved.pvm_only && *saved.pvm_only != pvm_only)
      throw file_error(sp, std::string("pvm_only is ") + (*saved.pvm_only ? "true" : "false") + " but this run trains " +
                               (pvm_only ? "only PVM" : "more than PVM"));
    if (saved.trainable && *saved.trainable != ctx->trainable_names)
      throw file_error(sp, "lists " + std::to_string(saved.trainable->size()) + " trainable tensors but this run trains " +
                               std::to_string(ctx->trainable_names.size()) + " others (trainable changed?)");
    const int world_before = saved.world_size;
    auto opt_path = join_path(ckpt, "optimizer.safetensors");
    auto ts = load_tensors(opt_path);
    adam.check_state(ts, opt_path);  // every optimizer tensor before copying any
    if (ts.count("rng.cpu") && ts["rng.cpu"].scalar_type() != torch::kByte)
      throw file_error(opt_path, "rng.cpu is not a byte tensor");
    step = s_step;
    elapsed_before = saved.elapsed_s;
    if (world_before != dist->world() && main())
      std::fprintf(stderr, "warning: resuming a %d-process run on %d processes (batches stay the same)\n", world_before,
                   dist->world());
    adam.load_state(ts, s_opt);
    if (ts.count("rng.cpu")) {
      try {
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        gen.set_state(ts["rng.cpu"]);
      } catch (...) {
        rethrow_with_context(opt_path, "restoring the random generator state rng.cpu");
      }
    }
    try {
      obj->restore(saved.objective);
    } catch (const json::exception& e) {
      throw file_error(sp, std::string("bad \"objective\" state: ") + e.what());
    } catch (const Error& e) {
      throw file_error(sp, std::string("bad \"objective\" state: ") + e.what());
    }
    if (main()) {
      auto mp = join_path(run_dir, "metrics.jsonl");
      int64_t len = s_metrics;
      if (fs::exists(mp) && (int64_t)fs::file_size(mp) > len) fs::resize_file(mp, len);
    }
  }

  // ---- the loop ----
  double session_start = now_s();

  double grad_norm_and_clip() {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> grads;
    for (auto& t : ctx->trainable) {
      if (!t.grad().defined()) t.mutable_grad() = torch::zeros_like(t);
      grads.push_back(t.grad());
    }
    if (dist->world() > 1) dist->all_reduce_sum(grads);
    std::vector<torch::Tensor> norms;
    for (auto& g : grads) norms.push_back(g.to(torch::kFloat).norm(2));
    double norm = torch::stack(norms).norm(2).item<double>();
    if (cfg.max_grad_norm > 0) {
      double coef = cfg.max_grad_norm / (norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
      if (coef < 1)
        for (auto& g : grads) g.mul_(coef);
    }
    return norm;
  }

  json gate_alphas() {
    json g = json::object();
    auto& layers = ctx->model->model->language_model->layer_list;
    for (auto& l : layers)
      if (l->pvm_block) g[std::to_string(l->layer_idx)] = l->pvm_block->gate_alpha.item<double>();
    return g;
  }

  int loop() {
    std::vector<std::pair<void (*)(int), int>> old;
    if (opt.install_signal_handlers) {
      g_stop.store(false);
      std::signal(SIGINT, pvm_train_on_signal);
      std::signal(SIGTERM, pvm_train_on_signal);
    }
    struct Restore {
      bool on;
      ~Restore() {
        if (on) {
          std::signal(SIGINT, SIG_DFL);
          std::signal(SIGTERM, SIG_DFL);
        }
      }
    } restore_signals{opt.install_signal_handlers};
    // A resumed run already at its --stop-after step takes no further step (the checkpoint holds).
    if (opt.stop_after >= 0 && step >= opt.stop_after && step < total) {
      status("stopped", "stopped at step " + std::to_string(step) + "; resume with --resume " + run_dir);
      end_state = "stopped";
      dist->barrier();
      return 0;
    }
    const int64_t first = step;
    double loop_start = now_s();
    while (step < total) {
      const double t0 = now_s();
      for (auto& t : ctx->trainable) t.mutable_grad() = torch::Tensor();
      StepStats s = obj->compute(step);
      const double gnorm = grad_norm_and_clip();
      const double lr = cfg.lr_at(step, total);
      adam.step(lr);
      ++step;
      const double t1 = now_s();
      const double tokens = dist->all_reduce_sum((double)s.tokens);
      if (main() && (step % cfg.log_every == 0 || step == total)) {
        json line = json::object();
        line["step"] = step;
        line["total_steps"] = total;
        line["time"] = t1;
        line["elapsed_s"] = elapsed_before + (t1 - session_start);
        line["loss"] = s.loss;
        line["lr"] = lr;
        line["grad_norm"] = gnorm;
        line["tokens"] = (int64_t)tokens;
        line["tokens_per_s"] = tokens / std::max(1e-9, t1 - t0);
        const double per_step = (t1 - loop_start) / (double)(step - first);
        line["step_time_s"] = t1 - t0;
        line["eta_s"] = per_step * (double)(total - step);
        line["mem_bytes"] = process_rss_bytes();
        line["gate_alpha"] = gate_alphas();
        for (auto& [k, v] : s.metrics.items())
          if (!line.contains(k)) line[k] = v;
        metrics << line.dump() << "\n";
        metrics.flush();
        if (opt.on_step) opt.on_step(line);
      }
      if (cfg.eval_every > 0 && !cfg.eval_data.empty() && (step % cfg.eval_every == 0 || step == total)) {
        double el = obj->evaluate();
        if (main() && !std::isnan(el)) {
          json line{{"step", step}, {"eval_loss", el}, {"time", now_s()}};
          metrics << line.dump() << "\n";
          metrics.flush();
          if (opt.on_step) opt.on_step(line);
        }
      }
      bool stop = g_stop.load() || (opt.stop_after >= 0 && step >= opt.stop_after);
      stop = dist->any(stop);
      if (stop && step < total) {
        save(false);
        status("stopped", "stopped at step " + std::to_string(step) + "; resume with --resume " + run_dir);
        end_state = "stopped";
        dist->barrier();
        return 0;
      }
      if (cfg.save_every > 0 && step % cfg.save_every == 0 && step < total) {
        save(false);
        status("running");
      } else if (main() && step % cfg.log_every == 0) {
        status("running");
      }
    }
    save(false);  // the last step is resumable like any other
    save(true);
    status("finished");
    end_state = "finished";
    dist->barrier();
    return 0;
  }
};

}  // namespace

int run(const TrainConfig& cfg, const RunOptions& opt, RunOutcome* outcome) {
  Runner r;
  r.cfg = cfg;
  r.opt = opt;
  struct CloseDir {
    Runner& r;
    ~CloseDir() {
      if (r.dir_fd >= 0) ::close(r.dir_fd);
    }
  } close_dir{r};
  r.setup();
  try {
    const int rc = r.loop();
    if (outcome) {
      outcome->state = r.end_state;
      outcome->step = r.step, outcome->total = r.total;
      outcome->run_dir = r.run_dir, outcome->moved_from = r.moved_from;
    }
    return rc;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    try {
      r.status("failed", msg);
    } catch (...) {
    }
    throw;
  }
}

int run(const TrainConfig& cfg, const std::string& resume_dir) {
  RunOptions o;
  o.resume_dir = resume_dir;
  return run(cfg, o);
}

}  // namespace pvm::train
