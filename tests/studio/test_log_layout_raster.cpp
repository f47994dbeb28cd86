// Log sink (thread safety, order), the default layout's tiling, the CPU line rasterizer.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "app/studio/layout.h"
#include "views/line_raster.h"
#include "engine/base/log_sink.h"

using namespace pvm;
using namespace pvm::studio;

TEST(LogSink, ConcurrentPushesKeepOrderAndCount) {
  LogSink& s = LogSink::instance();
  const uint64_t before = s.last().seq;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([t] {
      for (int i = 0; i < 500; ++i) log_info("thread %d line %d", t, i);
    });
  for (auto& t : ts) t.join();
  auto lines = LogSink::instance().since(before);
  ASSERT_EQ(lines.size(), 2000u);
  for (size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(lines[i].seq, lines[i - 1].seq + 1);
}

TEST(LogSink, MultiLineTextBecomesLines) {
  const uint64_t before = LogSink::instance().last().seq;
  LogSink::instance().push(LogLevel::Warn, "one\ntwo\nthree");
  auto lines = LogSink::instance().since(before);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].text, "two");
  EXPECT_EQ(lines[2].level, LogLevel::Warn);
}

TEST(LogSink, SinceAfterClearReturnsOnlyNewLines) {
  LogSink::instance().clear();
  const uint64_t before = LogSink::instance().last().seq;
  EXPECT_EQ(before, 0u);  // empty sink
  log_error("after clear");
  auto lines = LogSink::instance().since(before);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "after clear");
}

TEST(Layout, SlotsTileTheWorkArea) {
  ImGui::CreateContext();
  ImGui::GetIO().Fonts->Build();
  const float fs = 15.0f;
  for (ImVec2 ws : {ImVec2(1280, 760), ImVec2(1920, 1040), ImVec2(640, 400), ImVec2(3840, 2100)}) {
    for (LayoutFractions f : {LayoutFractions{}, LayoutFractions{0.9f, 0.0f, 1.0f}, LayoutFractions{0.05f, 0.5f, 0.1f}}) {
      const ImVec2 wp(0, 20);
      LayoutRects r = compute_layout(wp, ws, f, fs);
      float area = 0;
      for (const SlotRect& s : r.slot) {
        area += s.size.x * s.size.y;
        EXPECT_GT(s.size.x, 0);
        EXPECT_GT(s.size.y, 0);
      }
      EXPECT_FLOAT_EQ(area, ws.x * ws.y);  // with the adjacency below: an exact tiling
      const SlotRect &lt = r[Slot::LeftTop], &lb = r[Slot::LeftBottom], &ct = r[Slot::CenterTop],
                     &cb = r[Slot::CenterBottom];
      EXPECT_FLOAT_EQ(lt.pos.x, wp.x);
      EXPECT_FLOAT_EQ(lt.pos.y, wp.y);
      EXPECT_FLOAT_EQ(lt.pos.y + lt.size.y, lb.pos.y);
      EXPECT_FLOAT_EQ(lb.pos.y + lb.size.y, wp.y + ws.y);
      EXPECT_FLOAT_EQ(lt.pos.x + lt.size.x, ct.pos.x);
      EXPECT_FLOAT_EQ(ct.pos.y + ct.size.y, cb.pos.y);
      EXPECT_FLOAT_EQ(cb.pos.x + cb.size.x, wp.x + ws.x);
      EXPECT_FLOAT_EQ(cb.pos.y + cb.size.y, wp.y + ws.y);
      EXPECT_LE(lt.size.x, ws.x * 0.45f + 0.5f);   // the left column never eats the centre
      EXPECT_LE(lt.size.x, 40 * fs + 0.5f);
      EXPECT_GE(std::min(lt.size.y, lb.size.y), std::min(6 * fs, ws.y * 0.3f) - 0.5f);  // no slot collapses
    }
  }
  ImGui::DestroyContext();
}

TEST(LineRaster, HorizontalLineIsCrispAndJointsAreNotDoubled) {
  LineRaster r;
  r.reset(20, 10, IM_COL32(0, 0, 0, 255));
  // A polyline with a joint in the middle, on pixel centres of row 4.
  ImVec2 pts[3] = {ImVec2(2.5f, 4.5f), ImVec2(10.5f, 4.5f), ImVec2(17.5f, 4.5f)};
  r.polyline(pts, 3, IM_COL32(200, 100, 50, 255), 1.0f, false);
  const uint32_t* px = r.pixels();
  for (int x = 2; x <= 17; ++x) {
    EXPECT_EQ(px[4 * 20 + x], IM_COL32(200, 100, 50, 255)) << x;
    EXPECT_EQ(px[3 * 20 + x], IM_COL32(0, 0, 0, 255)) << x;
    EXPECT_EQ(px[5 * 20 + x], IM_COL32(0, 0, 0, 255)) << x;
  }
  // Half-transparent colour: the joint pixel is blended once, like its neighbours.
  r.reset(20, 10, IM_COL32(0, 0, 0, 255));
  r.polyline(pts, 3, IM_COL32(200, 200, 200, 128), 1.0f, false);
  EXPECT_EQ(px[4 * 20 + 10], px[4 * 20 + 9]);
}

TEST(LineRaster, OffCanvasSegmentsAreClipped) {
  LineRaster r;
  r.reset(8, 8, IM_COL32(0, 0, 0, 255));
  ImVec2 pts[2] = {ImVec2(-1e6f, -5e5f), ImVec2(1e6f, 5e5f)};
  r.polyline(pts, 2, IM_COL32(255, 255, 255, 255), 1.0f, false);
  int lit = 0;
  for (int i = 0; i < 64; ++i) lit += r.pixels()[i] != IM_COL32(0, 0, 0, 255);
  EXPECT_GT(lit, 0);
}

TEST(LineRaster, BandsDoNotChangeThePicture) {
  // Zig-zag lines crossing every band boundary, dashed and solid, drawn with 1 and 4 threads.
  std::vector<ImVec2> a, b;
  for (int i = 0; i < 200; ++i) {
    a.push_back(ImVec2(i * 1.6f, 20.0f + (i % 7) * 37.3f));
    b.push_back(ImVec2(i * 1.6f + 0.3f, 250.0f - (i % 5) * 41.1f));
  }
  std::vector<RasterLine> lines = {{a.data(), int(a.size()), IM_COL32(255, 0, 0, 200), 1.0f, false},
                                   {b.data(), int(b.size()), IM_COL32(0, 255, 0, 255), 2.0f, true}};
  LineRaster one, four;
  one.reset(320, 300, IM_COL32(10, 10, 10, 255));
  four.reset(320, 300, IM_COL32(10, 10, 10, 255));
  one.draw(lines, 1);
  four.draw(lines, 4);
  int lit = 0;
  for (int i = 0; i < 320 * 300; ++i) {
    ASSERT_EQ(one.pixels()[i], four.pixels()[i]) << "pixel " << i;
    lit += one.pixels()[i] != IM_COL32(10, 10, 10, 255);
  }
  EXPECT_GT(lit, 1000);
}
