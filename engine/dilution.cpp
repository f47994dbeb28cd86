#include "engine/dilution.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "engine/base/dilution.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/image.h"
#include "engine/image_write.h"
#include "engine/plot_png.h"
#include "engine/probes.h"

namespace pvm {

namespace fs = std::filesystem;

namespace {

struct Row {
  size_t image;
  int64_t step, layer;
  float mass, nosink;
};

std::string fmt(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.8g", v);
  return b;
}

// Where the model looks at a few positions (1, 4, 16, 64, ... and the last token): the backbone's
// attention (mean over layers) and, in the PVM run, the PVM read-out (mean over PVM layers).
void write_heatmaps(const ProbeRecorder& rec, const ImageRGB& img, const std::string& out_dir,
                    const std::string& run_name, size_t ii) {
  std::vector<size_t> picks;
  for (size_t s = 1; s <= rec.tokens().size(); s *= 4) picks.push_back(s - 1);
  if (picks.back() != rec.tokens().size() - 1) picks.push_back(rec.tokens().size() - 1);
  for (size_t i : picks) {
    auto save = [&](const torch::Tensor& g, const std::string& kind, const std::string& what) {
      auto c = g.contiguous();
      std::vector<float> v(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
      auto png = render_heatmap_overlay(img, v, (int)g.size(0), (int)g.size(1),
                                        run_name + " " + what + " t=" + std::to_string(i + 1));
      write_png((fs::path(out_dir) / (kind + "_" + run_name + "_" + std::to_string(ii) + "_t" +
                                      std::to_string(i + 1) + ".png")).string(), png);
    };
    save(rec.heatmap(i, -1, 0), "heatmap", "backbone attn");
    if (!rec.tokens()[i].pvm.empty() && !rec.tokens()[i].pvm[0].attn.empty())
      save(rec.pvm_heatmap(i, -1, 0), "pvm_heatmap", "PVM attn");
  }
}

}  // namespace

std::vector<std::string> collect_images(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  auto is_image = [](const fs::path& p) {
    auto e = p.extension().string();
    std::transform(e.begin(), e.end(), e.begin(), ::tolower);
    return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".gif" || e == ".ppm" || e == ".pgm";
  };
  for (auto& a : args) {
    if (fs::is_directory(a)) {
      std::vector<std::string> d;
      for (auto& e : fs::directory_iterator(a))
        if (e.is_regular_file() && is_image(e.path())) d.push_back(e.path().string());
      std::sort(d.begin(), d.end());
      if (d.empty()) throw Error("--images " + a + ": the folder holds no .png/.jpg/.bmp/.gif/.ppm images");
      out.insert(out.end(), d.begin(), d.end());
    } else if (fs::is_regular_file(a)) {
      out.push_back(a);
    } else {
      throw Error("--images " + a + (fs::exists(a) ? ": is not a regular file or folder (a FIFO or device?)" : ": no such file or folder"));
    }
  }
  if (out.empty()) throw Error("missing --images DIR|FILE");
  return out;
}

std::vector<std::string> write_scene_images(const std::string& dir, int64_t count, uint64_t seed,
                                            const scenes::SceneOptions& opt) {
  opt.validate("scenes");
  if (count < 1) throw Error("scenes: the count must be at least 1");
  make_dirs(dir, "scene images");
  std::vector<std::string> files;
  for (int64_t i = 0; i < count; ++i) {
    const auto img = scenes::render(scenes::generate(scenes::scene_seed(seed, 1, uint64_t(i)), opt));
    ImageRGB out;
    out.width = img.width, out.height = img.height, out.rgb = img.rgb;
    char name[32];
    std::snprintf(name, sizeof name, "scene_%03lld.png", (long long)i);
    files.push_back((fs::path(dir) / name).string());
    write_png(files.back(), out);
  }
  return files;
}

DilutionResult run_dilution(Pipeline& pipe, const DilutionOptions& o) {
  auto& m = pipe.model.model;
  const auto& images = o.images;
  const int64_t max_new = o.max_new_tokens;
  const std::string& out_dir = o.out_dir;
  // Every image is decoded (and size-checked) before the first generation: a corrupt one is an
  // error now, not after the images before it have run.
  for (const auto& p : images) (void)load_image(p);
  DilutionResult res;
  std::vector<std::string>& runs = res.runs;
  runs = {"baseline"};
  if (m->config().has_pvm()) runs.push_back("pvm");
  fs::create_directories(out_dir);
  auto cancelled = [&] { return o.cancel && o.cancel->load(); };

  const int64_t L = m->config().text.num_hidden_layers;
  std::map<std::string, std::vector<Row>> rows;  // per-token mass, for mass_<run>.csv
  std::map<std::string, DilutionCurves> curves;
  // logit lens per run: "image,step,first_layer,kl_0..kl_{L-1}" lines, and sums per step
  std::map<std::string, std::string> lens_csv;
  std::map<std::string, std::vector<double>> lens_sum, lens_cnt;
  for (auto& run_name : runs) {
    DilutionCurves& cv = curves.emplace(run_name, DilutionCurves(L)).first->second;
    for (size_t ii = 0; ii < images.size() && !cancelled(); ++ii) {
      PromptSpec spec;
      spec.text = o.prompt;
      spec.image_paths = {images[ii]};
      auto prep = pipe.prepare(spec);
      auto& req = prep.request;
      req.max_new_tokens = max_new;
      req.sampling = SamplingParams{};  // greedy
      req.pvm = run_name == "pvm";
      if (!o.stop_at_eos) req.stop_ids = {-1};  // measure the full length
      req.cancel = o.cancel;
      req.history_window = o.history_window;
      req.visual_attention_restore = o.visual_attention_restore;
      ProbeOptions opt;
      opt.pvm = req.pvm;
      opt.sink_k = o.sink_k;
      opt.heatmap = o.heatmaps;
      opt.logit_lens = o.logit_lens;
      ProbeRecorder rec(m, visual_positions(req.prompt_ids, m->config().image_token_id), opt, req.grids,
                        m->config().vision.spatial_merge_size);
      rec.on_probe = [&](const TokenProbe& t) {
        if (o.on_token) o.on_token(run_name, ii, t.step);
      };
      rec.attach(req);
      generate(m, req);
      if (o.on_answer) {
        std::vector<std::vector<float>> mass, nosink;
        for (auto& t : rec.tokens()) mass.push_back(t.mass), nosink.push_back(t.mass_nosink.empty() ? t.mass : t.mass_nosink);
        o.on_answer(run_name, ii, mass, nosink);
      }
      for (auto& t : rec.tokens()) {
        cv.add(t.step, t.mass, t.mass_nosink);
        for (int64_t l = 0; l < (int64_t)t.mass.size(); ++l)
          rows[run_name].push_back({ii, t.step, l, t.mass[l], t.mass_nosink.empty() ? t.mass[l] : t.mass_nosink[l]});
      }
      if (o.logit_lens) {
        auto& sum = lens_sum[run_name];
        auto& cnt = lens_cnt[run_name];
        sum.resize(max_new, 0.0), cnt.resize(max_new, 0.0);
        for (auto& t : rec.tokens()) {
          std::string line = fs::path(images[ii]).filename().string() + "," + std::to_string(t.step) + "," +
                             std::to_string(t.lens_first_layer);
          for (float k : t.lens_kl) line += "," + fmt(k);
          lens_csv[run_name] += line + "\n";
          if (t.step < max_new && t.lens_first_layer >= 0) sum[t.step] += (double)t.lens_first_layer, cnt[t.step] += 1;
        }
      }
      rec.write_jsonl((fs::path(out_dir) / ("probes_" + run_name + "_" + std::to_string(ii) + ".jsonl")).string());
      if (o.heatmaps && !rec.tokens().empty()) write_heatmaps(rec, load_image(images[ii]), out_dir, run_name, ii);
    }
  }

  // CSVs, per-step means (over images) per layer, fits
  std::string& fits = res.fits_csv;
  fits = "run,layer,series,c,t0,r2_hyperbolic,power_a,power_k,r2_power,points\n";
  std::vector<PlotSeries> plot_series, plot_nosink, plot_loglog;
  std::vector<std::vector<PlotSeries>> plot_layers(runs.size());
  const uint32_t colors[2] = {rgb(31, 119, 180), rgb(214, 39, 40)};
  for (size_t r = 0; r < runs.size(); ++r) {
    auto& rs = rows[runs[r]];
    std::string csv = "image,step,layer,mass,mass_nosink\n";
    for (auto& x : rs)
      csv += fs::path(images[x.image]).filename().string() + "," + std::to_string(x.step) + "," +
             std::to_string(x.layer) + "," + fmt(x.mass) + "," + fmt(x.nosink) + "\n";
    atomic_write_file((fs::path(out_dir) / ("mass_" + runs[r] + ".csv")).string(), csv);
    const DilutionCurves& cv = curves.at(runs[r]);
    for (int64_t l = 0; l <= L; ++l) {
      for (int which = 0; which < 2; ++which) {
        const DilutionCurve c = cv.curve(l == L ? DilutionCurves::kMeanOfLayers : l, which == 1);
        const std::vector<double>& t = c.t;
        const std::vector<double>& y = c.y;
        const DilutionFit df = fit_dilution(c);
        const HyperbolicFit& h = df.hyperbolic;
        const PowerFit& p = df.power;
        fits += runs[r] + "," + (l == L ? std::string("mean") : std::to_string(l)) + "," +
                (which ? "mass_nosink" : "mass") + "," + fmt(h.c) + "," + fmt(h.t0) + "," + fmt(h.r2) + "," +
                fmt(p.a) + "," + fmt(p.k) + "," + fmt(p.r2) + "," + std::to_string(h.n) + "\n";
        if (l < L && which == 0 && !t.empty()) {
          PlotSeries s;
          s.name = "layer " + std::to_string(l);
          s.x.assign(t.begin(), t.end()), s.y.assign(y.begin(), y.end()), s.thickness = 1;
          // dark blue (first layer) to orange (last layer)
          double u = L > 1 ? (double)l / (L - 1) : 0;
          s.color = rgb((uint8_t)(20 + 220 * u), (uint8_t)(60 + 80 * u), (uint8_t)(160 - 140 * u));
          plot_layers[r].push_back(s);
        }
        if (l == L && which == 0 && !t.empty()) {
          PlotSeries s;
          s.name = runs[r];
          s.x.assign(t.begin(), t.end()), s.y.assign(y.begin(), y.end()), s.color = colors[r % 2];
          plot_loglog.push_back(s);
          PlotSeries f;
          f.name = runs[r] + " power law k=" + fmt(std::round(p.k * 1000) / 1000);
          f.x.assign(t.begin(), t.end()), f.color = colors[r % 2], f.dotted = true, f.thickness = 1;
          for (double v : t) f.y.push_back(p.a * std::pow(v, -p.k));
          plot_loglog.push_back(f);
          PlotSeries h2;
          h2.name = runs[r] + " c/(t+t0)";
          h2.x.assign(t.begin(), t.end()), h2.color = colors[r % 2], h2.dashed = true, h2.thickness = 1;
          for (double v : t) h2.y.push_back(h.c / (v + h.t0));
          plot_loglog.push_back(h2);
        }
        if (l == L && which == 1 && !t.empty()) {
          PlotSeries s;
          s.name = runs[r] + " (sinks excluded)";
          s.x.assign(t.begin(), t.end()), s.y.assign(y.begin(), y.end()), s.color = colors[r % 2];
          plot_nosink.push_back(s);
        }
        if (l == L && which == 0 && !t.empty()) {
          PlotSeries s;
          s.name = runs[r];
          s.x.assign(t.begin(), t.end()), s.y.assign(y.begin(), y.end()), s.color = colors[r % 2];
          plot_series.push_back(s);
          PlotSeries f;
          f.name = runs[r] + " fit c/(t+t0) c=" + fmt(std::round(h.c * 1000) / 1000) + " t0=" + fmt(std::round(h.t0 * 10) / 10);
          f.x.assign(t.begin(), t.end()), f.color = colors[r % 2], f.dashed = true, f.thickness = 1;
          for (double v : t) f.y.push_back(h.c / (v + h.t0));
          plot_series.push_back(f);
        }
      }
    }
  }
  atomic_write_file((fs::path(out_dir) / "fits.csv").string(), fits);
  PlotSpec ps;
  ps.title = "visual attention mass vs position";
  ps.xlabel = "generated token t";
  ps.ylabel = "mass (mean over layers, heads, images)";
  ps.width = 960, ps.height = 560;
  ps.series = plot_series;
  write_line_plot((fs::path(out_dir) / "mass_vs_position.png").string(), ps);
  ps.title = "visual mass without sink tokens";
  ps.series = plot_nosink;
  write_line_plot((fs::path(out_dir) / "mass_nosink_vs_position.png").string(), ps);
  ps.title = "visual mass, log-log, with fits";
  ps.series = plot_loglog;
  ps.logx = ps.logy = true;
  write_line_plot((fs::path(out_dir) / "mass_loglog.png").string(), ps);
  ps.logx = ps.logy = false;
  for (size_t r = 0; r < runs.size(); ++r) {
    ps.title = runs[r] + ": visual mass per layer";
    ps.ylabel = "mass (mean over heads, images)";
    ps.series = plot_layers[r];
    ps.height = std::max(560, 60 + 16 * (int)L + 120);  // room for the legend
    write_line_plot((fs::path(out_dir) / ("mass_by_layer_" + runs[r] + ".png")).string(), ps);
  }
  if (o.logit_lens) {
    // First layer whose top-1 equals the model's own (lower = earlier convergence), in bins of 16 tokens.
    ps.title = "logit lens: first agreeing layer vs position";
    ps.ylabel = "first layer agreeing with the output (mean, 16-token bins)";
    ps.height = 560;
    ps.series.clear();
    std::string& summary = res.lens_summary_csv;
    summary = "run,tokens,mean_first_layer\n";
    for (size_t r = 0; r < runs.size(); ++r) {
      std::string head = "image,step,first_layer";
      for (int64_t l = 0; l < L; ++l) head += ",kl_" + std::to_string(l);
      atomic_write_file((fs::path(out_dir) / ("lens_" + runs[r] + ".csv")).string(), head + "\n" + lens_csv[runs[r]]);
      auto& sum = lens_sum[runs[r]];
      auto& cnt = lens_cnt[runs[r]];
      PlotSeries s;
      s.name = runs[r];
      s.color = colors[r % 2];
      double all = 0, n_all = 0;
      for (int64_t b = 0; b * 16 < (int64_t)sum.size(); ++b) {
        double bs = 0, bn = 0;
        for (int64_t k = b * 16; k < std::min<int64_t>((b + 1) * 16, (int64_t)sum.size()); ++k) bs += sum[k], bn += cnt[k];
        if (bn > 0) s.x.push_back((double)b * 16 + 8), s.y.push_back(bs / bn);
        all += bs, n_all += bn;
      }
      summary += runs[r] + "," + fmt(n_all) + "," + fmt(n_all > 0 ? all / n_all : NAN) + "\n";
      ps.series.push_back(s);
    }
    atomic_write_file((fs::path(out_dir) / "lens_summary.csv").string(), summary);
    write_line_plot((fs::path(out_dir) / "lens_first_layer.png").string(), ps);
  }
  return res;
}

}  // namespace pvm
