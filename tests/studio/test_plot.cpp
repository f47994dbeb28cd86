// The plot widget under a headless ImGui context: no window and no GL, so lines go through the
// ImDrawList path (set_raster(false)) and input is injected through ImGuiIO.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include "views/plot.h"

using namespace pvm::studio;

namespace {

class Headless : public ::testing::Test {
 protected:
  void SetUp() override {
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = ImVec2(1000, 700);
    io.DeltaTime = 1.0f / 60.0f;
    io.IniFilename = nullptr;
    unsigned char* px;
    int w, h;
    io.Fonts->GetTexDataAsRGBA32(&px, &w, &h);  // fonts must be built before NewFrame
  }
  void TearDown() override { ImGui::DestroyContext(); }

  // One frame with the plot filling a fixed window.
  void frame(Plot& p, std::function<void(ImGuiIO&)> input = {}) {
    ImGuiIO& io = ImGui::GetIO();
    io.MouseWheel = 0;
    if (input) input(io);
    ImGui::NewFrame();
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(ImVec2(1000, 700));
    ImGui::Begin("host", nullptr, ImGuiWindowFlags_NoDecoration);
    p.draw();
    ImGui::End();
    ImGui::Render();
  }

  static PlotSeries line(const std::string& name, int n, std::function<float(int)> y) {
    PlotSeries s;
    s.name = name;
    for (int i = 0; i < n; ++i) {
      s.x.push_back(float(i + 1));
      s.y.push_back(y(i));
    }
    return s;
  }

};

ImVec2 center(const Plot& p) {
  return ImVec2((p.area_min().x + p.area_max().x) * 0.5f, (p.area_min().y + p.area_max().y) * 0.5f);
}

}  // namespace

TEST(PlotTicks, LinearStepsAreNice) {
  auto t = compute_ticks(AxisScale::Linear, 0.0, 100.0, 500.0f, 100.0f);
  std::vector<std::string> labels;
  for (auto& k : t)
    if (k.major) labels.push_back(k.label);
  ASSERT_EQ(labels, (std::vector<std::string>{"0", "20", "40", "60", "80", "100"}));
  for (size_t i = 1; i < t.size(); ++i) EXPECT_LT(t[i - 1].t, t[i].t);
}

TEST(PlotTicks, SmallAndHugeLinearLabels) {
  auto t = compute_ticks(AxisScale::Linear, 0.0012, 0.0018, 300.0f, 100.0f);
  ASSERT_FALSE(t.empty());
  bool saw = false;
  for (auto& k : t)
    if (k.major && k.label == "0.0014") saw = true;
  EXPECT_TRUE(saw);
  auto big = compute_ticks(AxisScale::Linear, 0.0, 3e7, 300.0f, 100.0f);
  for (auto& k : big)
    if (k.major && k.t > 0) {
      EXPECT_NE(k.label.find('e'), std::string::npos) << k.label;
    }
}

TEST(PlotTicks, LogDecadesAndMinors) {
  auto t = compute_ticks(AxisScale::Log10, 0.0, 4.0, 800.0f, 80.0f);  // 1 .. 10^4
  std::vector<std::string> majors;
  int minors = 0;
  for (auto& k : t) {
    if (k.major)
      majors.push_back(k.label);
    else
      ++minors;
  }
  EXPECT_EQ(majors, (std::vector<std::string>{"1", "10", "100", "1000", "10000"}));
  EXPECT_EQ(minors, 4 * 8);
}

TEST(PlotTicks, CrowdedLogDecadesAreThinned) {
  auto t = compute_ticks(AxisScale::Log10, -20.0, 20.0, 400.0f, 80.0f);
  int majors = 0;
  for (auto& k : t) majors += k.major;
  EXPECT_LE(majors, 6);
  EXPECT_GE(majors, 3);
}

TEST(PlotTicks, NarrowLogRangeFallsBackToLinearValues) {
  auto t = compute_ticks(AxisScale::Log10, std::log10(200.0), std::log10(700.0), 400.0f, 80.0f);
  int labelled = 0;
  for (auto& k : t) labelled += !k.label.empty();
  EXPECT_GE(labelled, 2);
}

TEST_F(Headless, DecimationKeepsEveryColumnsEnvelope) {
  Plot p("test");
  p.set_raster(false);
  // Spiky data: one outlier per 97 points must survive decimation.
  p.add_series(line("spiky", 16384, [](int i) { return i % 97 == 0 ? 10.0f : std::sin(i * 0.01f); }));
  frame(p);
  const auto& pts = p.decimated(0);
  const float w = p.area_max().x - p.area_min().x;
  EXPECT_LT(pts.size(), size_t(5 * w));  // bounded by the width, not the 16k points
  double x0, x1, y0, y1;
  p.view(&x0, &x1, &y0, &y1);
  const float h = p.area_max().y - p.area_min().y;
  const float spike_y = float(h - (10.0 - y0) / (y1 - y0) * h);
  // Every spike's column still reaches the spike height.
  int spikes_seen = 0, spikes = 0;
  for (int i = 0; i < 16384; i += 97) {
    ++spikes;
    const float sx = float((i + 1 - x0) / (x1 - x0) * w);
    for (const ImVec2& q : pts)
      if (std::fabs(q.x - sx) <= 1.5f && std::fabs(q.y - spike_y) < 1.0f) {
        ++spikes_seen;
        break;
      }
  }
  EXPECT_EQ(spikes_seen, spikes);
}

TEST_F(Headless, WheelZoomsAboutTheMouse) {
  Plot p("test");
  p.set_raster(false);
  p.add_series(line("a", 1000, [](int i) { return float(i); }));
  frame(p);
  double a0, a1, b0, b1;
  p.view(&a0, &a1, &b0, &b1);
  const ImVec2 c = center(p);
  frame(p, [&](ImGuiIO& io) { io.MousePos = c; });
  frame(p, [&](ImGuiIO& io) { io.MouseWheel = 1.0f; });
  double x0, x1, y0, y1;
  p.view(&x0, &x1, &y0, &y1);
  EXPECT_NEAR((x1 - x0) * 1.2, a1 - a0, 1e-6 * (a1 - a0));
  EXPECT_NEAR((x0 + x1) * 0.5, (a0 + a1) * 0.5, 0.01 * (a1 - a0));  // zoom centre stays put
  EXPECT_NEAR((y1 - y0) * 1.2, b1 - b0, 1e-6 * (b1 - b0));
}

TEST_F(Headless, WheelOverXAxisZoomsXOnly) {
  Plot p("test");
  p.set_raster(false);
  p.add_series(line("a", 1000, [](int i) { return float(i); }));
  frame(p);
  double a0, a1, b0, b1;
  p.view(&a0, &a1, &b0, &b1);
  const ImVec2 below(center(p).x, p.area_max().y + 8);
  frame(p, [&](ImGuiIO& io) { io.MousePos = below; });
  frame(p, [&](ImGuiIO& io) { io.MouseWheel = 1.0f; });
  double x0, x1, y0, y1;
  p.view(&x0, &x1, &y0, &y1);
  EXPECT_LT(x1 - x0, a1 - a0);
  EXPECT_DOUBLE_EQ(y0, b0);
  EXPECT_DOUBLE_EQ(y1, b1);
}

TEST_F(Headless, DragPansAndDoubleClickFits) {
  Plot p("test");
  p.set_raster(false);
  p.add_series(line("a", 1000, [](int i) { return float(i); }));
  frame(p);
  double a0, a1, b0, b1;
  p.view(&a0, &a1, &b0, &b1);
  const float w = p.area_max().x - p.area_min().x;
  ImVec2 m = center(p);
  frame(p, [&](ImGuiIO& io) { io.MousePos = m; });
  frame(p, [&](ImGuiIO& io) { io.MouseDown[0] = true; });
  for (int k = 0; k < 10; ++k) {  // 100 px to the right in 10 steps
    m.x += 10;
    frame(p, [&](ImGuiIO& io) { io.MousePos = m; });
  }
  frame(p, [&](ImGuiIO& io) { io.MouseDown[0] = false; });
  double x0, x1, y0, y1;
  p.view(&x0, &x1, &y0, &y1);
  // Dragging starts after a 2 px threshold; the first step's delta is partly eaten by it.
  const double moved = (a0 - x0) / (a1 - a0) * w;
  EXPECT_GT(moved, 85.0);
  EXPECT_LT(moved, 101.0);
  EXPECT_NEAR(x1 - x0, a1 - a0, 1e-9 * (a1 - a0));

  // Double-click: two clicks a few frames apart.
  for (int k = 0; k < 30; ++k) frame(p);
  for (int click = 0; click < 2; ++click) {
    frame(p, [&](ImGuiIO& io) { io.MouseDown[0] = true; });
    frame(p, [&](ImGuiIO& io) { io.MouseDown[0] = false; });
  }
  p.view(&x0, &x1, &y0, &y1);
  EXPECT_DOUBLE_EQ(x0, a0);
  EXPECT_DOUBLE_EQ(x1, a1);
}

TEST_F(Headless, LegendClickTogglesSeries) {
  Plot p("test");
  p.set_raster(false);
  p.add_series(line("first", 100, [](int i) { return float(i); }));
  p.add_series(line("second", 100, [](int i) { return float(-i); }));
  frame(p);
  // The legend's first row sits right of the plot area, level with its top.
  const ImVec2 entry(p.area_max().x + 30, p.area_min().y + 5);
  frame(p, [&](ImGuiIO& io) { io.MousePos = entry; });
  frame(p, [&](ImGuiIO& io) { io.MouseDown[0] = true; });
  frame(p, [&](ImGuiIO& io) { io.MouseDown[0] = false; });
  EXPECT_FALSE(p.series(0).visible);
  EXPECT_TRUE(p.series(1).visible);
}

TEST_F(Headless, HoverReportsDataX) {
  Plot p("test");
  p.set_raster(false);
  p.add_series(line("a", 101, [](int i) { return float(i); }));  // x = 1..101
  frame(p);
  EXPECT_FALSE(p.hovered_x());
  const ImVec2 c = center(p);
  frame(p, [&](ImGuiIO& io) { io.MousePos = c; });
  frame(p);
  ASSERT_TRUE(p.hovered_x());
  EXPECT_NEAR(*p.hovered_x(), 51.0, 1.0);
}

TEST_F(Headless, LogAxesSkipNonPositiveValues) {
  Plot p("test");
  p.set_raster(false);
  p.set_x_scale(AxisScale::Log10);
  p.set_y_scale(AxisScale::Log10);
  PlotSeries s;
  s.name = "gappy";
  s.x = {-1, 0, 1, 10, 100, 1000};
  s.y = {1, 1, 1, 0, 0.01f, 0.001f};  // y = 0 at x = 10 breaks the line
  p.add_series(s);
  frame(p);
  double x0, x1, y0, y1;
  p.view(&x0, &x1, &y0, &y1);
  EXPECT_NEAR(x0, 1.0, 1e-6);
  EXPECT_NEAR(x1, 1000.0, 1e-3);
  EXPECT_GT(y0, 0.0);
  EXPECT_FALSE(p.decimated(0).empty());
}

TEST_F(Headless, CsvWideWhenXIsShared) {
  Plot p("test");
  p.set_raster(false);
  p.set_axis_labels("t", "y");
  p.add_series(line("a", 3, [](int i) { return float(i); }));
  p.add_series(line("b, quoted", 3, [](int i) { return float(10 * i); }));
  const std::string path = ::testing::TempDir() + "plot_wide.csv";
  std::string err;
  ASSERT_TRUE(p.save_csv(path, &err)) << err;
  std::ifstream f(path);
  std::string header, row1;
  std::getline(f, header);
  std::getline(f, row1);
  EXPECT_EQ(header, "t,a,\"b, quoted\"");
  EXPECT_EQ(row1, "1,0,0");
}

TEST_F(Headless, CsvLongWhenXDiffers) {
  Plot p("test");
  p.set_raster(false);
  p.add_series(line("a", 2, [](int i) { return float(i); }));
  PlotSeries b;
  b.name = "b";
  b.x = {5};
  b.y = {7};
  p.add_series(b);
  const std::string path = ::testing::TempDir() + "plot_long.csv";
  ASSERT_TRUE(p.save_csv(path));
  std::ifstream f(path);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "series,x,y\na,1,0\na,2,1\nb,5,7\n");
}

TEST_F(Headless, CsvUnwritablePathIsAnError) {
  Plot p("test");
  p.set_raster(false);
  std::string err;
  EXPECT_FALSE(p.save_csv("/nonexistent-dir/x.csv", &err));
  EXPECT_NE(err.find("/nonexistent-dir/x.csv"), std::string::npos);
}
