// The Training view's defaults follow the loaded model: PVM layers from the adapter, else from the
// depth; the model folder; values the user edited stay. The scenes data folder is named by its settings.
#include <gtest/gtest.h>
#include <imgui.h>

#include "views/view_training.h"

using namespace pvm::studio;

TEST(TrainingDefaults, PvmLayersFromDepth) {
  EXPECT_EQ(default_pvm_layers(4), "1,2,3");
  EXPECT_EQ(default_pvm_layers(36), "9,18,27");
  EXPECT_EQ(default_pvm_layers(28), "7,14,21");
  EXPECT_EQ(default_pvm_layers(2), "0,1");
  EXPECT_EQ(default_pvm_layers(1), "0");
}

TEST(TrainingDefaults, FormFollowsTheLoadedModelUntilEdited) {
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  UiState ui;
  StudioContext ctx;
  ctx.ui = &ui;
  TrainingView v(ctx);
  auto& f = v.form().values;
  ModelInfo m;
  m.loaded = true, m.dir = "/models/deep", m.layers = 36, m.hidden = 2048;
  v.fit_to_model(m);
  EXPECT_EQ(f["pvm.layers"], "9,18,27");
  EXPECT_EQ(f["pvm.hidden_size"], 512);
  EXPECT_EQ(f["model"], "/models/deep");
  // An adapter: its layers and width.
  m.pvm_layers = {1, 2, 3}, m.pvm_hidden = 128, m.adapter = "/a";
  v.fit_to_model(m);
  EXPECT_EQ(f["pvm.layers"], "1,2,3");
  EXPECT_EQ(f["pvm.hidden_size"], 128);
  // Edited by the user: kept when the model changes; the others still follow.
  f["pvm.layers"] = "2";
  m = ModelInfo{};
  m.loaded = true, m.dir = "/models/small", m.layers = 4, m.hidden = 256;
  v.fit_to_model(m);
  EXPECT_EQ(f["pvm.layers"], "2");
  EXPECT_EQ(f["pvm.hidden_size"], 128);
  EXPECT_EQ(f["model"], "/models/small");
  ScenesDataForm s;
  s.count = 12, s.seed = 3, s.min_objects = 2, s.max_objects = 5;
  EXPECT_EQ(s.dir("/r"), "/r/.data/scenes-n12-s3-o2-5");
  ImGui::DestroyContext();
}
