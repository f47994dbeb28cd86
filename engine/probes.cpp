#include "engine/probes.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/base/version.h"
#include "engine/nn.h"

namespace pvm {

std::vector<bool> visual_positions(const std::vector<int64_t>& prompt_ids, int64_t image_token_id) {
  std::vector<bool> v(prompt_ids.size());
  for (size_t i = 0; i < prompt_ids.size(); ++i) v[i] = prompt_ids[i] == image_token_id;
  return v;
}

ProbeRecorder::ProbeRecorder(Qwen3VLForConditionalGeneration model, std::vector<bool> visual, ProbeOptions opt,
                             std::vector<std::array<int64_t, 3>> grids, int64_t merge)
    : model_(std::move(model)), visual_(std::move(visual)), opt_(opt), grids_(std::move(grids)), merge_(merge) {
  if (opt_.sink_k < 0) throw Error("probes: sink_k must be >= 0");
  for (size_t i = 0; i < visual_.size(); ++i)
    if (visual_[i]) vis_idx_.push_back((int64_t)i);
  vis_idx_t_ = torch::tensor(vis_idx_, torch::kLong).to(model_->device());
  if (opt_.heatmap && !grids_.empty()) {
    int64_t n = 0;
    for (auto& g : grids_) n += g[0] * g[1] * g[2] / (merge_ * merge_);
    if (n != (int64_t)vis_idx_.size())
      throw Error("probes: the image grids give " + std::to_string(n) + " visual tokens, the prompt has " +
                  std::to_string(vis_idx_.size()));
  }
}

namespace {
// Adds the scope's wall time to `ns` when `on` (decode steps only).
struct ScopeTimer {
  int64_t* ns;
  std::chrono::steady_clock::time_point t0;
  ScopeTimer(int64_t& acc, bool on) : ns(on ? &acc : nullptr), t0(on ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{}) {}
  ~ScopeTimer() {
    if (ns) *ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  }
};
}  // namespace

void ProbeRecorder::attach(GenerationRequest& req) {
  if (!opt_.any()) return;
  req.configure = [this](ForwardHooks& hooks, bool prefill) { configure(hooks, prefill); };
  req.after_forward = [this](const ForwardOutput& out, bool prefill) { after_forward(out, prefill); };
  auto prev_insert = req.on_insert;
  req.on_insert = [this, prev_insert](const MemoryInsertion& mi) {
    if (mi.seq == 0 && opt_.vismem) {
      if (!tokens_.empty()) tokens_.back().invoked = mi.type;  // the start token, recorded just before
      f_insert_ = std::make_unique<MemoryInsertion>(mi);
    }
    if (prev_insert) prev_insert(mi);
  };
  auto prev = req.on_token;
  req.on_token = [this, prev](int64_t seq, int64_t tok, int64_t step) {
    if (seq == 0 && pending_) {
      pending_->step = step;
      pending_->token = tok;
      tokens_.push_back(std::move(*pending_));
      pending_.reset();
      if (on_probe) on_probe(tokens_.back());
    }
    return prev ? prev(seq, tok, step) : true;
  };
}

bool ProbeRecorder::pvm_probe_on_host(const PvmProbe& p) {
  for (auto* t : {&p.attn, &p.injection, &p.residual})
    if (!t->defined() || !t->is_cpu() || t->scalar_type() != torch::kFloat) return false;
  return true;
}

void ProbeRecorder::host_observe(int64_t layer, const torch::Tensor& p, bool mass) {
  // p: [Hq, T] f32 on the CPU, unit stride along T. Same sums as the selection-matrix GEMM.
  const int64_t Hq = p.size(0), rs = p.stride(0);
  const float* d = p.data_ptr<float>();
  const bool sinks = opt_.sink_excluded && (size_t)layer < sinks_.size();
  if (mass) {
    auto& m = h_mass_[layer];
    m.assign(Hq * 2, 0.f);
    for (int64_t h = 0; h < Hq; ++h) {
      const float* row = d + h * rs;
      double v = 0, sk = 0;
      for (int64_t j : vis_idx_) v += row[j];
      if (sinks)
        for (int64_t j : sinks_[layer]) sk += row[j];
      m[h * 2] = float(v), m[h * 2 + 1] = float(sk);
    }
  }
  if (opt_.heatmap && !vis_idx_.empty()) {
    auto& v = h_vis_[layer];
    v.assign(vis_idx_.size(), 0.f);
    for (int64_t h = 0; h < Hq; ++h) {
      const float* row = d + h * rs;
      for (size_t j = 0; j < vis_idx_.size(); ++j) v[j] += row[vis_idx_[j]];
    }
    for (auto& x : v) x /= Hq;
  }
}

void ProbeRecorder::configure(ForwardHooks& hooks, bool prefill) {
  const int64_t L = model_->config().text.num_hidden_layers;
  const int64_t Nv = (int64_t)vis_idx_.size();
  const bool mass = opt_.visual_mass || opt_.per_head || opt_.sink_excluded;
  f_mass_heads_.assign(L, torch::Tensor());
  f_vis_attn_.assign(L, torch::Tensor());
  f_lens_logp_.assign(L, torch::Tensor());
  f_pvm_.clear();
  h_mass_.assign(L, {});
  h_vis_.assign(L, {});
  f_mem_mass_.assign(L, torch::Tensor());
  f_ins_.assign(L, torch::Tensor());
  if (prefill) {
    mem_slots_.clear();
    mem_slots_t_ = torch::Tensor();
    f_insert_.reset();
  }
  if (f_insert_) {
    // this forward inserts a memory in row 0: its latent rows count as memory from now on (the
    // token this forward produces reads them), and what the rows themselves attend to is summed
    for (int64_t j = 1; j <= f_insert_->rows; ++j) mem_slots_.push_back(f_insert_->first_slot + j);
    mem_slots_t_ = torch::tensor(mem_slots_, torch::kLong).to(model_->device());
    const MemoryInsertion mi = *f_insert_;
    hooks.attention_rows = [this, mi, Nv](int64_t layer, int64_t s0, const torch::Tensor& probs) {
      torch::NoGradGuard ng;
      const int64_t a = std::max(s0, mi.chunk_offset + 1), b = std::min(s0 + probs.size(2), mi.chunk_offset + 1 + mi.rows);
      if (a >= b) return;
      auto p = probs[0].narrow(1, a - s0, b - a).to(torch::kFloat).sum(std::vector<int64_t>{0, 1});  // [T], summed over heads and rows
      auto self = p.narrow(0, mi.first_slot, std::min<int64_t>(mi.rows + 1, p.size(0) - mi.first_slot)).sum();
      auto vis = Nv > 0 ? p.index_select(0, vis_idx_t_).sum() : torch::zeros({}, p.options());
      auto v = torch::stack({vis, self, p.sum()}) / double(probs.size(1) * mi.rows);
      f_ins_[layer] = f_ins_[layer].defined() ? f_ins_[layer] + v : v;
    };
  }
  const bool memory = opt_.vismem && mem_slots_t_.defined();
  if (prefill) {
    sinks_.assign(L, {});
    sink_t_.assign(L, torch::Tensor());
    sel_.assign(L, torch::Tensor());
  }
  if (mass || opt_.heatmap || memory) {
    hooks.attention = [this, prefill, mass, Nv, memory](int64_t layer, const torch::Tensor& probs) {
      ScopeTimer timer(probe_ns_, !prefill);
      torch::NoGradGuard ng;
      auto p = probs[0].to(torch::kFloat);  // [Hq, T]
      const int64_t T = p.size(1);
      f_keys_ = T;
      if (memory) f_mem_mass_[layer] = p.index_select(1, mem_slots_t_).sum(1).mean(0);
      if (opt_.host && !prefill && p.is_cpu() && p.stride(1) == 1) {
        host_observe(layer, p, mass);
        return;
      }
      torch::Tensor vis;  // [Hq, Nv], only where needed
      if (opt_.sink_excluded && Nv > 0 && prefill) {
        vis = p.index_select(1, vis_idx_t_);
        int64_t k = opt_.sink_k > 0 ? opt_.sink_k : std::max<int64_t>(1, (int64_t)std::ceil(0.01 * Nv));
        k = std::min(k, Nv);
        auto idx = std::get<1>(vis.mean(0).topk(k));
        sink_t_[layer] = vis_idx_t_.index_select(0, idx);
        auto c = sink_t_[layer].to(torch::kCPU).contiguous();
        sinks_[layer].assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
        sel_[layer] = torch::Tensor();  // rebuilt below with the sink column
      }
      if (mass) {
        auto& sel = sel_[layer];
        if (!sel.defined() || sel.size(0) < T) {
          sel = torch::zeros({std::max<int64_t>(2 * T, 256), 2}, p.options());
          if (Nv > 0) sel.select(1, 0).index_fill_(0, vis_idx_t_, 1.0);
          if (opt_.sink_excluded && sink_t_[layer].defined()) sel.select(1, 1).index_fill_(0, sink_t_[layer], 1.0);
        }
        f_mass_heads_[layer] = torch::mm(p, sel.narrow(0, 0, T));  // [Hq, 2]: visual, sink
      }
      if (opt_.heatmap && Nv > 0) f_vis_attn_[layer] = p.mean(0);  // [T]; visual columns picked once per token
    };
  }
  if (opt_.pvm) hooks.pvm = &f_pvm_;
  if (opt_.logit_lens) {
    hooks.layer_output = [this, L, prefill](int64_t layer, const torch::Tensor& h) {
      ScopeTimer timer(probe_ns_, !prefill);
      torch::NoGradGuard ng;
      auto last = h.select(0, 0).select(0, h.size(1) - 1);  // [H], a view
      if (opt_.host && last.is_cpu() && last.scalar_type() == torch::kFloat) {
        // a copy into a reused [L, H] buffer instead of a clone per layer and a cat
        const int64_t H = last.size(0);
        if (!h_lens_.defined() || h_lens_.size(0) != L || h_lens_.size(1) != H) h_lens_ = torch::empty({L, H}, torch::kFloat);
        float* dst = h_lens_.data_ptr<float>() + layer * H;
        const float* src = last.data_ptr<float>();
        const int64_t st1 = last.stride(0);
        for (int64_t i = 0; i < H; ++i) dst[i] = src[i * st1];
        f_lens_logp_[layer] = h_lens_.narrow(0, layer, 1);  // [1, H]
        return;
      }
      // the last position of sequence 0, [1, H]; the final norm is applied to all layers at once
      f_lens_logp_[layer] = last.unsqueeze(0).clone();
    };
  }
}

namespace {
std::vector<float> to_vec(const torch::Tensor& x) {
  auto c = x.to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Logit lens from the logits rows a: [L+1, V] f32 (the L layers, then the model's own): KL(final ||
// layer l) and the first layer whose top-1 is the final one, on the host.
void lens_on_host(const float* a, int64_t L, int64_t V, TokenProbe& t) {
  // KL(f || l) = sum_v p_f (log p_f - x_l + lse_l) = A - <p_f, x_l> + lse_l with A = <p_f, log p_f>:
  // one exp per logit (for the log-sum-exps), the rest dot products.
  std::vector<double> lse(L + 1);
  std::vector<int64_t> top(L + 1);
  std::vector<float> pf(V);
  for (int64_t r = 0; r <= L; ++r) {
    const float* x = a + r * V;
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (x[v] > x[best]) best = v;
    const float mx = x[best];
    double s = 0;
    for (int64_t v = 0; v < V; ++v) {
      const float e = std::exp(x[v] - mx);
      if (r == L) pf[v] = e;
      s += e;
    }
    lse[r] = mx + std::log(s);
    top[r] = best;
  }
  const float* f = a + L * V;
  const double zf = std::exp(double(f[top[L]]) - lse[L]);  // 1 / sum of the final row's exps
  double A = 0;
  for (int64_t v = 0; v < V; ++v) {
    pf[v] = float(pf[v] * zf);
    A += pf[v] * (double(f[v]) - lse[L]);
  }
  t.lens_kl.assign(L, 0.f);
  for (int64_t l = 0; l < L; ++l) {
    const float* x = a + l * V;
    double dot = 0;
    for (int64_t v = 0; v < V; ++v) dot += double(pf[v]) * x[v];
    t.lens_kl[l] = float(std::max(0.0, A - dot + lse[l]));
  }
  for (int64_t l = 0; l < L; ++l)
    if (top[l] == top[L]) {
      t.lens_first_layer = l;
      break;
    }
}
}  // namespace

// The forward is over: each probe family reduces what its hooks collected into the token's probe.
void ProbeRecorder::after_forward(const ForwardOutput& out, bool prefill) {
  ScopeTimer timer(probe_ns_, !prefill);
  torch::NoGradGuard ng;
  auto t = std::make_unique<TokenProbe>();
  t->keys = f_keys_;
  reduce_mass(*t);
  reduce_heatmap(*t);
  reduce_pvm(*t);
  reduce_logit_lens(out, *t);
  reduce_vismem(*t);
  pending_ = std::move(t);
}

void ProbeRecorder::reduce_mass(TokenProbe& t) const {
  const bool mass = opt_.visual_mass || opt_.per_head || opt_.sink_excluded;
  const bool host_mass = mass && !h_mass_.empty() && !h_mass_[0].empty();
  if (!host_mass && !(mass && f_mass_heads_[0].defined())) return;
  const int64_t L = model_->config().text.num_hidden_layers;
  // one copy of [L, Hq, 2] (visual, sink mass per head), or the host sums; the means are taken here
  torch::Tensor all;
  std::vector<float> flat;
  const float* a = nullptr;
  int64_t Hq = 0;
  if (host_mass) {
    Hq = (int64_t)h_mass_[0].size() / 2;
    for (auto& m : h_mass_) flat.insert(flat.end(), m.begin(), m.end());
    a = flat.data();
  } else {
    all = torch::stack(f_mass_heads_).to(torch::kCPU, torch::kFloat).contiguous();
    Hq = all.size(1);
    a = all.data_ptr<float>();
  }
  const bool sinks = opt_.sink_excluded && sink_t_.size() == (size_t)L && sink_t_[0].defined();
  t.mass.assign(L, 0.f);
  if (opt_.sink_excluded) t.mass_nosink.assign(L, 0.f);
  if (opt_.per_head) t.mass_heads.assign(L, std::vector<float>(Hq));
  for (int64_t l = 0; l < L; ++l) {
    double m = 0, ns = 0;
    for (int64_t h = 0; h < Hq; ++h) {
      const float v = a[(l * Hq + h) * 2], sk = a[(l * Hq + h) * 2 + 1];
      m += v;
      ns += sinks ? std::max(0.f, v - sk) : v;
      if (opt_.per_head) t.mass_heads[l][h] = v;
    }
    t.mass[l] = float(m / Hq);
    if (opt_.sink_excluded) t.mass_nosink[l] = float(ns / Hq);
  }
}

void ProbeRecorder::reduce_vismem(TokenProbe& t) {
  if (!f_mem_mass_.empty() && f_mem_mass_[0].defined()) t.memory_mass = to_vec(torch::stack(f_mem_mass_));
  if (f_insert_ && !f_ins_.empty() && f_ins_[0].defined()) {
    auto v = to_vec(torch::stack(f_ins_));  // [L * 3]: visual, self, all
    InsertedMemoryProbe ip;
    ip.type = f_insert_->type;
    ip.rows = f_insert_->rows;
    ip.first_slot = f_insert_->first_slot;
    ip.token_index = f_insert_->token_index;
    for (size_t l = 0; l < v.size() / 3; ++l) {
      ip.visual.push_back(v[3 * l]);
      ip.self.push_back(v[3 * l + 1]);
      ip.other.push_back(std::max(0.f, v[3 * l + 2] - v[3 * l] - v[3 * l + 1]));
    }
    t.inserted.push_back(std::move(ip));
  }
  f_insert_.reset();
}

void ProbeRecorder::reduce_heatmap(TokenProbe& t) const {
  if (!opt_.heatmap) return;
  if (!h_vis_.empty() && !h_vis_[0].empty()) {
    t.visual_attn = h_vis_;
  } else if (f_vis_attn_[0].defined()) {
    auto va = torch::stack(f_vis_attn_).index_select(1, vis_idx_t_).to(torch::kCPU, torch::kFloat).contiguous();  // [L, Nv]
    const float* v = va.data_ptr<float>();
    const int64_t L = va.size(0), nv = va.size(1);
    for (int64_t l = 0; l < L; ++l) t.visual_attn.emplace_back(v + l * nv, v + (l + 1) * nv);
  }
}

void ProbeRecorder::reduce_pvm(TokenProbe& t) const {
  for (auto& [layer, p] : f_pvm_) {
    if (!p.attn.defined()) continue;
    PvmLayerProbe q;
    q.layer = layer;
    q.gate = std::abs(p.gate.is_cpu() && p.gate.scalar_type() == torch::kFloat ? *p.gate.data_ptr<float>()
                                                                                 : p.gate.item<float>());
    // [injection norm, residual norm, head-mean attention over Nv]: host sums for f32 CPU tensors,
    // else one copy per PVM layer
    std::vector<float> v;
    if (opt_.host && pvm_probe_on_host(p)) {
      auto norm = [](const torch::Tensor& x) {  // x: [B, H] f32 CPU, row 0
        const float* d = x.data_ptr<float>();
        double s2 = 0;
        for (int64_t i = 0; i < x.size(1); ++i) s2 += double(d[i * x.stride(1)]) * d[i * x.stride(1)];
        return float(std::sqrt(s2));
      };
      v.push_back(norm(p.injection));
      v.push_back(norm(p.residual));
      const auto& at = p.attn;  // [B, heads, Nv]
      const int64_t heads = at.size(1), N = at.size(2);
      const float* d = at.data_ptr<float>();
      v.resize(2 + N, 0.f);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < N; ++j) v[2 + j] += d[h * at.stride(1) + j * at.stride(2)] / heads;
    } else {
      auto inj = p.injection.narrow(0, 0, 1).to(torch::kFloat).norm(2, -1);
      auto res = p.residual.narrow(0, 0, 1).to(torch::kFloat).norm(2, -1);
      v = to_vec(torch::cat({inj, res, p.attn[0].to(torch::kFloat).mean(0)}));
    }
    q.injection_norm = v[0];
    q.residual_norm = v[1];
    q.ratio = q.residual_norm > 0 ? q.injection_norm / q.residual_norm : 0.f;
    std::vector<float> att(v.begin() + 2, v.end());
    double ent = 0;
    for (float x : att) ent -= double(x) * std::log(std::max(double(x), 1e-30));
    q.entropy = std::max(0.f, float(ent));
    const int64_t k = std::min<int64_t>(opt_.pvm_top, (int64_t)att.size());
    std::vector<int64_t> order(att.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = (int64_t)j;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t x, int64_t y) { return att[x] > att[y] || (att[x] == att[y] && x < y); });
    for (int64_t j = 0; j < k; ++j) q.top.push_back(order[j]), q.top_p.push_back(att[order[j]]);
    if (opt_.heatmap) q.attn = std::move(att);
    t.pvm.push_back(std::move(q));
  }
}

void ProbeRecorder::reduce_logit_lens(const ForwardOutput& out, TokenProbe& t) {
  if (!opt_.logit_lens || !f_lens_logp_[0].defined()) return;
  const int64_t L = model_->config().text.num_hidden_layers;
  // one GEMM for all layers: the lm_head weight is read once, not once per layer
  auto& norm = model_->model->language_model->norm;
  const auto w = model_->lm_head_weight();  // [V, H]
  auto fin_row = out.logits[0][-1];         // [V]
  const bool host = opt_.host && h_lens_.defined() && f_lens_logp_[0].data_ptr() == h_lens_.data_ptr() &&
                    (L + 1) * w.size(0) <= (int64_t)1 << 22 && w.is_cpu() && w.scalar_type() == torch::kFloat &&
                    norm->weight.scalar_type() == torch::kFloat && fin_row.is_cpu() &&
                    fin_row.scalar_type() == torch::kFloat;
  torch::Tensor layer_logits;  // [L, V]
  if (host) {
    // f32 CPU: the final RMSNorm on the host into a reused buffer, one mm_out, then log-softmax,
    // KL and argmax on the host (a dozen tensor ops per token would cost more than the arithmetic)
    const int64_t H = h_lens_.size(1), V = w.size(0);
    if (!n_lens_.defined() || n_lens_.sizes() != h_lens_.sizes()) n_lens_ = torch::empty_like(h_lens_);
    if (!l_lens_.defined() || l_lens_.size(0) != L + 1 || l_lens_.size(1) != V) l_lens_ = torch::empty({L + 1, V}, torch::kFloat);
    const auto nw = norm->weight.contiguous();
    const float *src = h_lens_.data_ptr<float>(), *g = nw.data_ptr<float>();
    float* dst = n_lens_.data_ptr<float>();
    for (int64_t l = 0; l < L; ++l) {
      double s2 = 0;
      for (int64_t i = 0; i < H; ++i) s2 += double(src[l * H + i]) * src[l * H + i];
      const float r = float(1.0 / std::sqrt(s2 / H + norm->eps));
      for (int64_t i = 0; i < H; ++i) dst[l * H + i] = g[i] * (src[l * H + i] * r);
    }
    auto top_rows = l_lens_.narrow(0, 0, L);
    torch::mm_out(top_rows, n_lens_, w.t());
    float* fin = l_lens_.data_ptr<float>() + L * V;
    const float* fr = fin_row.data_ptr<float>();
    for (int64_t v = 0; v < V; ++v) fin[v] = fr[v * fin_row.stride(0)];
    layer_logits = l_lens_;
  } else {
    auto normed = norm(torch::cat(f_lens_logp_, 0));  // [L, H]
    layer_logits = torch::mm(normed, w.t());         // [L, V]
  }
  const int64_t V = layer_logits.size(1);
  if (host || (layer_logits.is_cpu() && (L + 1) * V <= (int64_t)1 << 22)) {
    // Small vocabularies on the CPU: one copy, then log-softmax, KL and argmax on the host.
    auto all = host ? l_lens_
                    : torch::cat({layer_logits, fin_row.unsqueeze(0).to(layer_logits.scalar_type())}, 0)
                          .to(torch::kFloat)
                          .contiguous();  // [L+1, V]
    lens_on_host(all.data_ptr<float>(), L, V, t);
    return;
  }
  auto fin = torch::log_softmax(fin_row.to(torch::kFloat), 0);        // [V]
  auto layers = torch::log_softmax(layer_logits.to(torch::kFloat), 1);  // [L, V]
  auto kl = (fin.exp().unsqueeze(0) * (fin.unsqueeze(0) - layers)).sum(1).clamp_min(0);
  t.lens_kl = to_vec(kl);
  auto top = layers.argmax(1).to(torch::kCPU).contiguous();
  const int64_t* tp = top.data_ptr<int64_t>();
  int64_t ftop = fin.argmax().item<int64_t>();
  for (int64_t l = 0; l < L; ++l)
    if (tp[l] == ftop) {
      t.lens_first_layer = l;
      break;
    }
}

namespace {
// Lays out one image's share of a per-visual-token vector on its merged grid [t*h/merge, w/merge].
torch::Tensor grid_of(const std::vector<float>& v, const std::vector<std::array<int64_t, 3>>& grids, int64_t merge,
                      size_t image) {
  if (image >= grids.size()) throw Error("probes: no image " + std::to_string(image));
  int64_t off = 0;
  for (size_t g = 0; g < image; ++g) off += grids[g][0] * grids[g][1] * grids[g][2] / (merge * merge);
  const auto& g = grids[image];
  const int64_t rows = g[0] * g[1] / merge, cols = g[2] / merge;
  if (off + rows * cols > (int64_t)v.size()) throw Error("probes: the attention vector is shorter than the image grids");
  auto out = torch::empty({rows, cols}, torch::kFloat);
  std::copy(v.begin() + off, v.begin() + off + rows * cols, out.data_ptr<float>());
  return out;
}
}  // namespace

torch::Tensor ProbeRecorder::heatmap(size_t i, int64_t layer, size_t image) const {
  if (i >= tokens_.size()) throw Error("probes: token " + std::to_string(i) + " was not recorded");
  const auto& va = tokens_[i].visual_attn;
  if (va.empty()) throw Error("probes: no heatmap was recorded (ProbeOptions::heatmap is off)");
  if (layer == -1) {
    std::vector<float> mean(va[0].size(), 0.f);
    for (auto& l : va)
      for (size_t j = 0; j < mean.size(); ++j) mean[j] += l[j] / va.size();
    return grid_of(mean, grids_, merge_, image);
  }
  if (layer < 0 || layer >= (int64_t)va.size()) throw Error("probes: no heatmap for layer " + std::to_string(layer));
  return grid_of(va[layer], grids_, merge_, image);
}

torch::Tensor ProbeRecorder::pvm_heatmap(size_t i, int64_t pvm_layer, size_t image) const {
  if (i >= tokens_.size()) throw Error("probes: token " + std::to_string(i) + " was not recorded");
  std::vector<float> acc;
  int n = 0;
  for (auto& p : tokens_[i].pvm) {
    if (p.attn.empty() || (pvm_layer != -1 && p.layer != pvm_layer)) continue;
    if (acc.empty()) acc.assign(p.attn.size(), 0.f);
    for (size_t j = 0; j < acc.size(); ++j) acc[j] += p.attn[j];
    ++n;
  }
  if (n == 0)
    throw Error("probes: no PVM attention recorded for token " + std::to_string(i) +
                (pvm_layer == -1 ? std::string() : " at layer " + std::to_string(pvm_layer)));
  for (auto& v : acc) v /= n;
  return grid_of(acc, grids_, merge_, image);
}

std::string ProbeRecorder::to_json(const TokenProbe& t) {
  nlohmann::json j;
  j["step"] = t.step;
  j["token"] = t.token;
  j["keys"] = t.keys;
  if (!t.mass.empty()) j["mass"] = t.mass;
  if (!t.mass_nosink.empty()) j["mass_nosink"] = t.mass_nosink;
  if (!t.mass_heads.empty()) j["mass_heads"] = t.mass_heads;
  if (!t.pvm.empty()) {
    auto& a = j["pvm"] = nlohmann::json::array();
    for (auto& p : t.pvm)
      a.push_back({{"layer", p.layer}, {"gate", p.gate}, {"injection_norm", p.injection_norm},
                   {"residual_norm", p.residual_norm}, {"ratio", p.ratio}, {"entropy", p.entropy},
                   {"top", p.top}, {"top_p", p.top_p}});
    for (size_t k = 0; k < t.pvm.size(); ++k)
      if (!t.pvm[k].attn.empty()) a[k]["attn"] = t.pvm[k].attn;
  }
  if (!t.visual_attn.empty()) j["visual_attn"] = t.visual_attn;
  if (!t.lens_kl.empty()) {
    j["lens_first_layer"] = t.lens_first_layer;
    j["lens_kl"] = t.lens_kl;
  }
  if (!t.invoked.empty()) j["invoked"] = t.invoked;
  if (!t.memory_mass.empty()) j["memory_mass"] = t.memory_mass;
  if (!t.inserted.empty()) {
    auto& a = j["inserted"] = nlohmann::json::array();
    for (auto& ip : t.inserted)
      a.push_back({{"type", ip.type}, {"rows", ip.rows}, {"first_slot", ip.first_slot}, {"token_index", ip.token_index},
                   {"visual", ip.visual}, {"self", ip.self}, {"other", ip.other}});
  }
  return j.dump();
}

void ProbeRecorder::write_jsonl(const std::string& path) const {
  std::string s;
  for (auto& t : tokens_) s += to_json(t) + "\n";
  atomic_write_file(path, s);
}

std::string load_prompt_preset(const std::string& name) {
  if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos)
    throw Error("--prompt-preset '" + name + "': use lower-case letters, digits, '-' or '_'");
  std::string file = name;
  std::replace(file.begin(), file.end(), '-', '_');
  auto path = std::filesystem::path(source_dir()) / "assets" / "prompts" / (file + ".txt");
  if (!path_exists(path.string())) throw Error("unknown prompt preset '" + name + "': " + path.string() + " not found");
  std::string s = read_file_to_string(path.string(), 1 << 20, "prompt preset");
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.empty()) throw Error("prompt preset " + path.string() + " is empty");
  return s;
}

}  // namespace pvm
