// Small helpers shared by the views: colours for values, byte counts, tooltips, the plot toolbar.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imgui.h"

namespace pvm::studio {

class Plot;

// Colours of the sides (baseline, PVM, VisMem), used in every view so they read the same everywhere.
ImU32 side_color(int side, int alpha = 255);
// Colour of a VisMem memory's invocation marker: "short" or "long".
ImU32 memory_color(const std::string& type, int alpha = 255);
// Value in [0,1] on the heat colour map (dark blue -> cyan -> yellow -> red), with alpha.
ImU32 heat_color(float t, float alpha = 1.0f);
std::string format_bytes(int64_t bytes);
std::string format_count(int64_t n);  // 8,767,123,696
void help_marker(const char* text);   // "(?)" with a tooltip
// Tooltip on the last item (also when disabled).
void item_tooltip(const char* text);
// A "CSV" and a "PNG" button that export `plot` to <base>.csv / <base>.png (logged).
void plot_export_buttons(Plot& plot, const std::string& base, const char* id);
// Moving average over a centred window of `window` points (1 = none); NaN inputs are skipped.
std::vector<float> smooth(const std::vector<float>& y, int window);
// Mean of a set of rows (vectors of equal length); NaN where no row has a value.
std::vector<float> mean_of(const std::vector<const std::vector<float>*>& rows, size_t n);

}  // namespace pvm::studio
