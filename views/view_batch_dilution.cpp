#include "views/view_batch_dilution.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "engine/base/fs_util.h"
#include "engine/base/log_sink.h"
#include "engine/base/paths.h"
#include "engine/base/version.h"
#include "imgui_stdlib.h"
#include "views/ui_util.h"

namespace pvm::studio {
namespace fs = std::filesystem;

namespace {

std::string fmt8(double v) {  // the CLI's number format in fits.csv
  char b[40];
  std::snprintf(b, sizeof b, "%.8g", v);
  return b;
}

int64_t layers_of(const BatchData& b, int side) {
  for (const BatchAnswer& a : b.answers)
    if (a.side == side && !a.mass.empty()) return int64_t(a.mass[0].size());
  return 0;
}

std::string default_out_dir() {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return (fs::path(pvm::default_runs_dir()).parent_path() / "batches" / (std::string("batch-") + stamp)).string();
}

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  char b[32];
  if (s >= 3600)
    std::snprintf(b, sizeof b, "%dh %02dm", int(s) / 3600, (int(s) / 60) % 60);
  else
    std::snprintf(b, sizeof b, "%dm %02ds", int(s) / 60, int(s) % 60);
  return b;
}

}  // namespace

DilutionCurves batch_curves(const BatchData& b, int side) {
  DilutionCurves cv(layers_of(b, side));
  for (const BatchAnswer& a : b.answers)
    if (a.side == side)
      for (size_t i = 0; i < a.mass.size(); ++i)
        cv.add(int64_t(i), a.mass[i], i < a.mass_nosink.size() ? a.mass_nosink[i] : a.mass[i]);
  return cv;
}

std::vector<DilutionCurve> batch_answer_curves(const BatchData& b, int side, int64_t layer, bool nosink) {
  std::vector<DilutionCurve> out;
  const int64_t L = layers_of(b, side);
  for (const BatchAnswer& a : b.answers) {
    if (a.side != side) continue;
    DilutionCurves cv(L);
    for (size_t i = 0; i < a.mass.size(); ++i)
      cv.add(int64_t(i), a.mass[i], i < a.mass_nosink.size() ? a.mass_nosink[i] : a.mass[i]);
    out.push_back(cv.curve(layer < 0 ? DilutionCurves::kMeanOfLayers : layer, nosink));
  }
  return out;
}

std::string batch_fits_csv(const BatchData& b, int side) {
  const DilutionCurves cv = batch_curves(b, side);
  const int64_t L = cv.layers();
  std::string out;
  for (int64_t l = 0; l <= L; ++l)
    for (int which = 0; which < 2; ++which) {
      const DilutionFit df = fit_dilution(cv.curve(l == L ? DilutionCurves::kMeanOfLayers : l, which == 1));
      const HyperbolicFit& h = df.hyperbolic;
      const PowerFit& p = df.power;
      out += std::string(side ? "pvm" : "baseline") + "," + (l == L ? std::string("mean") : std::to_string(l)) + "," +
             (which ? "mass_nosink" : "mass") + "," + fmt8(h.c) + "," + fmt8(h.t0) + "," + fmt8(h.r2) + "," + fmt8(p.a) +
             "," + fmt8(p.k) + "," + fmt8(p.r2) + "," + std::to_string(h.n) + "\n";
    }
  return out;
}

BatchDilutionView::BatchDilutionView(StudioContext& ctx)
    : View("Batch dilution", Slot::CenterBottom, true), ctx_(ctx), plot_("batch_dilution") {
  plot_.set_title("Visual attention mass vs position: mean over images, 95% band");
  plot_.set_axis_labels("generated token t", "attention mass on image tokens");
  form.out_dir = default_out_dir();
}

bool BatchDilutionView::start(std::string* why) {
  BatchSettings s = form;
  s.images.clear();
  if (use_folder) {
    if (folder.empty()) {
      if (why) *why = "batch: choose a folder of images";
      log_error("batch: choose a folder of images");
      return false;
    }
    s.images = {folder};
  }
  std::string err;
  if (!ctx_.engine->run_batch(s, &err)) {
    log_error("%s", err.c_str());
    if (why) *why = err;
    return false;
  }
  built_id_ = ~0ull;
  return true;
}

void BatchDilutionView::rebuild() {
  const BatchData& b = ctx_.ui->batch;
  plot_.clear_series();
  fits_.clear();
  for (int side = 0; side < 2; ++side) {
    const auto curves = batch_answer_curves(b, side, layer, nosink);
    if (curves.empty()) continue;
    const char* sn = side ? "PVM" : "baseline";
    if (per_image) {
      // One thin line per image, faint: the spread behind the mean.
      size_t k = 0;
      for (const BatchAnswer& a : b.answers) {
        if (a.side != side) continue;
        const DilutionCurve& c = curves[k++];
        PlotSeries ps;
        const std::string img = a.image < b.images.size() ? fs::path(b.images[a.image]).filename().string() : std::to_string(a.image);
        ps.name = std::string(sn) + " " + img;
        ps.x.assign(c.t.begin(), c.t.end());
        ps.y.assign(c.y.begin(), c.y.end());
        ps.color = side_color(side, 90);
        ps.legend = false;
        plot_.add_series(std::move(ps));
      }
    }
    const DilutionBand band_data = dilution_band(curves, 0.95);
    auto series = [&](const std::string& name, const std::vector<double>& y, float th, bool dotted, bool legend) {
      PlotSeries ps;
      ps.name = name;
      ps.x.assign(band_data.t.begin(), band_data.t.end());
      ps.y.assign(y.begin(), y.end());
      ps.color = side_color(side);
      ps.thickness = th;
      ps.dotted = dotted;
      ps.legend = legend;
      return plot_.add_series(std::move(ps));
    };
    if (band && curves.size() > 1) {
      const int lo = series(std::string(sn) + " 95% lo", band_data.lo, 1, true, false);
      const int hi = series(std::string(sn) + " 95% hi", band_data.hi, 1, true, false);
      plot_.add_band(lo, hi, side_color(side, 60));
    }
    char name[96];
    std::snprintf(name, sizeof name, "%s mean of %zu image%s", sn, curves.size(), curves.size() == 1 ? "" : "s");
    series(name, band_data.mean, 2.5f, false, true);
  }
  // Per-layer fits of each side over every image (the CLI's fits.csv rows).
  if (!b.running || ImGui::GetTime() - built_time_ > 2.0 || fits_.empty()) {
    DilutionCurves cv[2] = {batch_curves(b, 0), batch_curves(b, 1)};
    const int64_t L = std::max(cv[0].layers(), cv[1].layers());
    for (int64_t l = -1; l < L; ++l) {
      FitRow r;
      r.layer = l;
      for (int side = 0; side < 2; ++side) {
        if (cv[side].layers() == 0) continue;
        r.fit[side] = fit_dilution(cv[side].curve(l < 0 ? DilutionCurves::kMeanOfLayers : l, nosink));
        r.has[side] = r.fit[side].hyperbolic.n > 0;
      }
      fits_.push_back(r);
    }
  }
  built_id_ = b.id;
  built_answers_ = b.answers.size();
}

bool BatchDilutionView::export_files(const std::string& base, std::string* error) {
  rebuild();
  if (!plot_.save_csv(base + ".csv", error)) return false;
  std::string fits = "run,layer,series,c,t0,r2_hyperbolic,power_a,power_k,r2_power,points\n";
  for (int side = 0; side < 2; ++side)
    if (layers_of(ctx_.ui->batch, side) > 0) fits += batch_fits_csv(ctx_.ui->batch, side);
  try {
    pvm::atomic_write_file(base + "_fits.csv", fits);
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
  plot_.request_png(base + ".png");
  log_info("batch plot exported to %s.csv / .png, fits to %s_fits.csv", base.c_str(), base.c_str());
  return true;
}

void BatchDilutionView::draw_form() {
  const UiState& ui = *ctx_.ui;
  const BatchData& b = ui.batch;
  const float fs = ImGui::GetFontSize();
  int src = use_folder ? 1 : 0;
  ImGui::SetNextItemWidth(fs * 7);
  if (ImGui::Combo("##src", &src, "new scenes\0image folder\0")) use_folder = src == 1;
  ImGui::SameLine();
  if (use_folder) {
    ImGui::SetNextItemWidth(fs * 16);
    ImGui::InputTextWithHint("##folder", "folder of .png/.jpg images", &folder);
    ImGui::SameLine();
    if (ImGui::SmallButton("...##folder"))
      browser_.open("Folder of images", FileBrowser::Mode::OpenDir, folder.empty() ? pvm::source_dir() : folder, {},
                    [this](const std::string& p, std::string*) {
                      folder = p;
                      return true;
                    });
  } else {
    ImGui::SetNextItemWidth(fs * 5);
    ImGui::InputInt("scenes", &form.scenes, 1, 10);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(fs * 5);
    ImGui::InputScalar("seed", ImGuiDataType_S64, &form.scene_seed);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(fs * 6);
    int objs[2] = {form.min_objects, form.max_objects};
    if (ImGui::InputInt2("objects", objs)) form.min_objects = objs[0], form.max_objects = objs[1];
    item_tooltip("Objects per scene, min and max (1..16). Scene i has the held-out seed scene_seed(seed, 1, i), as in\n"
                 "'pvm dilution --scenes N --scene-seed S' and 'pvm eval --task scenes --seed S'.");
  }
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 5);
  ImGui::InputInt("tokens", &form.max_new_tokens, 16, 64);
  item_tooltip("New tokens per answer (greedy). Every answer runs to this length unless 'stop at EOS' is on.");
  ImGui::SameLine();
  ImGui::Checkbox("stop at EOS", &form.stop_at_eos);

  ImGui::SetNextItemWidth(fs * 22);
  ImGui::InputTextWithHint("prompt##batch", "(blind-painter preset, as pvm dilution)", &form.prompt);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(fs * 16);
  ImGui::InputText("out", &form.out_dir);
  item_tooltip("The engine writes here what 'pvm dilution --out' writes: mass_*.csv, fits.csv, probes, PNG plots.");
  ImGui::SameLine();
  if (b.running) {
    if (ImGui::Button("Cancel")) ctx_.engine->stop();
  } else {
    ImGui::BeginDisabled(ctx_.engine->busy() || !ui.model.loaded);
    if (ImGui::Button("Run batch")) start();
    ImGui::EndDisabled();
    item_tooltip(ui.model.loaded ? "Baseline and PVM on every image, on the model worker." : "Load a model first.");
  }

  if (b.id == 0) return;
  char over[256];
  if (b.running)
    std::snprintf(over, sizeof over, "%s  %lld / %lld tokens  %.1f tokens/s  ETA %s", b.current.c_str(),
                  (long long)b.tokens_done, (long long)b.tokens_total, b.tokens_per_s, format_seconds(b.eta_s).c_str());
  else
    std::snprintf(over, sizeof over, "%s: %zu answers, %zu images, %.1f s", b.finish.c_str(), b.answers.size(),
                  b.images.size(), b.elapsed_s);
  ImGui::ProgressBar(b.tokens_total > 0 ? float(double(b.tokens_done) / double(b.tokens_total)) : 0.0f,
                     ImVec2(-1, 0), over);
}

void BatchDilutionView::draw_fits() {
  if (fits_.empty()) return;
  const ImGuiTableFlags tf = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                             ImGuiTableFlags_SizingStretchSame;
  const float h = std::min(ImGui::GetContentRegionAvail().y, ImGui::GetTextLineHeightWithSpacing() * (fits_.size() + 1.5f));
  if (!ImGui::BeginTable("##fits", 9, tf, ImVec2(0, h))) return;
  ImGui::TableSetupScrollFreeze(0, 1);
  for (const char* c : {"layer", "base c", "base t0", "base R2", "base k", "PVM c", "PVM t0", "PVM R2", "PVM k"})
    ImGui::TableSetupColumn(c);
  ImGui::TableHeadersRow();
  for (const FitRow& r : fits_) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    if (r.layer < 0)
      ImGui::TextUnformatted("mean");
    else
      ImGui::Text("%lld", (long long)r.layer);
    for (int side = 0; side < 2; ++side) {
      const HyperbolicFit& hf = r.fit[side].hyperbolic;
      const PowerFit& pf = r.fit[side].power;
      for (int k = 0; k < 4; ++k) {
        ImGui::TableNextColumn();
        if (!r.has[side]) {
          ImGui::TextDisabled("-");
          continue;
        }
        const double v = k == 0 ? hf.c : k == 1 ? hf.t0 : k == 2 ? hf.r2 : pf.k;
        ImGui::Text("%.3g", v);
      }
    }
  }
  ImGui::EndTable();
}

void BatchDilutionView::draw() {
  const UiState& ui = *ctx_.ui;
  const BatchData& b = ui.batch;
  const float fs = ImGui::GetFontSize();
  draw_form();
  ImGui::Separator();
  bool changed = false;
  int64_t L = std::max(layers_of(b, 0), layers_of(b, 1));
  ImGui::SetNextItemWidth(fs * 8);
  const std::string lname = layer < 0 ? "mean of layers" : "layer " + std::to_string(layer);
  if (ImGui::BeginCombo("##blayer", lname.c_str())) {
    if (ImGui::Selectable("mean of layers", layer < 0)) layer = -1, changed = true;
    for (int64_t l = 0; l < L; ++l)
      if (ImGui::Selectable(("layer " + std::to_string(l)).c_str(), layer == l)) layer = int(l), changed = true;
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  changed |= ImGui::Checkbox("no sinks##b", &nosink);
  ImGui::SameLine();
  changed |= ImGui::Checkbox("95% band", &band);
  item_tooltip("mean +- t(0.975, n-1) * sd / sqrt(n) over the images at each position");
  ImGui::SameLine();
  changed |= ImGui::Checkbox("per image", &per_image);
  item_tooltip("Every image's curve, faint, behind the means.");
  ImGui::SameLine();
  if (ImGui::Checkbox("log x##b", &log_x)) plot_.set_x_scale(log_x ? AxisScale::Log10 : AxisScale::Linear);
  ImGui::SameLine();
  if (ImGui::Checkbox("log y##b", &log_y)) plot_.set_y_scale(log_y ? AxisScale::Log10 : AxisScale::Linear);
  ImGui::SameLine();
  const std::string base = (form.out_dir.empty() ? std::string("batch") : form.out_dir + "/studio_batch");
  if (ImGui::SmallButton("Export")) {
    std::string err;
    if (!export_files(base, &err)) log_error("%s", err.c_str());
  }
  item_tooltip(("Plot as " + base + ".png / .csv, fits as " + base + "_fits.csv").c_str());

  const double now = ImGui::GetTime();
  if (changed || b.id != built_id_ || (b.answers.size() != built_answers_ && (!b.running || now - built_time_ > 0.5))) {
    rebuild();
    built_time_ = now;
  }
  if (b.answers.empty()) {
    ImGui::TextDisabled(b.id ? "Waiting for the first answer ..." : "Run a batch: every image answered by the baseline and by PVM.");
    browser_.draw();
    return;
  }
  // Wide: plot and fits side by side; narrower: the fits below the plot.
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const bool side_by_side = avail.x > fs * 75;
  const float table_w = side_by_side ? fs * 34 : 0;
  const float plot_h = side_by_side ? 0 : std::floor(avail.y * 0.64f);
  ImGui::BeginChild("##bplot", ImVec2(side_by_side ? avail.x - table_w - ImGui::GetStyle().ItemSpacing.x : 0, plot_h),
                    false, ImGuiWindowFlags_NoScrollbar);
  plot_.draw();
  ImGui::EndChild();
  if (side_by_side) ImGui::SameLine();
  ImGui::BeginChild("##bfits", ImVec2(0, 0), false);
  ImGui::TextDisabled("Fits over all images, %s", nosink ? "sinks excluded" : "all visual tokens");
  draw_fits();
  ImGui::EndChild();
  browser_.draw();
}

}  // namespace pvm::studio
