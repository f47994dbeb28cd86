// pvm plot: line plots of CSV columns as PNG, so experiments/ scripts can draw their figures with
// the same renderer as pvm dilution (no Python plotting stack needed).
//   pvm plot --series FILE:XCOL:YCOL[:LABEL] [--series ...] --out PNG [--title T] [--xlabel X]
//            [--ylabel Y] [--logx] [--logy] [--ymin A --ymax B] [--width W --height H]
#include <cmath>
#include <cstdio>
#include <sstream>

#include "app/cli/command.h"
#include "engine/base/cli_args.h"
#include "engine/base/error.h"
#include "engine/base/fs_util.h"
#include "engine/plot_png.h"

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

// Columns of a plain CSV (header row; no quoted fields). Empty or non-numeric cells read as NaN
// (the plot breaks the line there).
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<double>> cols;
  int column(const std::string& name, const std::string& path) const {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return (int)i;
    std::string have;
    for (auto& h : header) have += (have.empty() ? "" : ", ") + h;
    throw pvm::file_error(path, "no column '" + name + "' (columns: " + have + ")");
  }
};

Csv read_csv(const std::string& path) {
  const std::string text = pvm::read_file_to_string(path, 256ull << 20);
  std::istringstream in(text);
  std::string line;
  Csv c;
  long lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = trim(line);
    if (line.empty()) continue;
    if (line.find('"') != std::string::npos)
      throw pvm::file_error(path, "line " + std::to_string(lineno) + ": quoted CSV fields are not supported");
    auto cells = split(line, ',');
    if (c.header.empty()) {
      for (auto& h : cells) c.header.push_back(trim(h));
      c.cols.resize(c.header.size());
      continue;
    }
    if (cells.size() != c.header.size())
      throw pvm::file_error(path, "line " + std::to_string(lineno) + ": " + std::to_string(cells.size()) + " cells, header has " +
                                      std::to_string(c.header.size()));
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string v = trim(cells[i]);
      char* end = nullptr;
      double d = v.empty() ? NAN : std::strtod(v.c_str(), &end);
      if (!v.empty() && end && *end) d = NAN;
      c.cols[i].push_back(d);
    }
  }
  if (c.header.empty()) throw pvm::file_error(path, "empty CSV (no header row)");
  return c;
}

int run(const std::vector<std::string>& argv) {
  pvm::cli::Args a(argv,
                   {"--series", "--out", "--title", "--xlabel", "--ylabel", "--ymin", "--ymax", "--xmin", "--xmax", "--width",
                    "--height"},
                   {"--logx", "--logy"});
  const std::string out = a.require("--out");
  auto specs = a.all("--series");
  if (specs.empty()) throw pvm::Error("missing --series FILE:XCOL:YCOL[:LABEL]");
  static const std::array<std::array<uint8_t, 3>, 8> palette{{{31, 119, 180},
                                                             {214, 39, 40},
                                                             {44, 160, 44},
                                                             {255, 127, 14},
                                                             {148, 103, 189},
                                                             {140, 86, 75},
                                                             {227, 119, 194},
                                                             {23, 190, 207}}};
  pvm::PlotSpec p;
  p.title = a.get("--title");
  p.xlabel = a.get("--xlabel");
  p.ylabel = a.get("--ylabel");
  p.logx = a.has("--logx");
  p.logy = a.has("--logy");
  p.width = (int)a.get_int("--width", 800, 64, 16384);
  p.height = (int)a.get_int("--height", 500, 64, 16384);
  p.ymin = a.get_double("--ymin", 0);
  p.ymax = a.get_double("--ymax", 0);
  p.xmin = a.get_double("--xmin", 0);
  p.xmax = a.get_double("--xmax", 0);
  for (size_t k = 0; k < specs.size(); ++k) {
    auto parts = split(specs[k], ':');
    if (parts.size() < 3 || parts.size() > 4)
      throw pvm::Error("--series " + specs[k] + ": expected FILE:XCOL:YCOL[:LABEL]");
    auto csv = read_csv(parts[0]);
    pvm::PlotSeries s;
    const auto& xs = csv.cols[csv.column(parts[1], parts[0])];
    const auto& ys = csv.cols[csv.column(parts[2], parts[0])];
    s.x.assign(xs.begin(), xs.end());
    s.y.assign(ys.begin(), ys.end());
    s.name = parts.size() == 4 ? parts[3] : parts[2];
    const auto& c = palette[k % palette.size()];
    s.color = pvm::rgb(c[0], c[1], c[2]);
    s.dashed = k >= palette.size();
    p.series.push_back(std::move(s));
  }
  pvm::write_line_plot(out, p);
  std::fprintf(stderr, "pvm plot: wrote %s (%zu series)\n", out.c_str(), p.series.size());
  return 0;
}

}  // namespace

PVM_COMMAND("plot", "line plot of CSV columns as PNG (for experiment scripts)",
            "--series FILE:XCOL:YCOL[:LABEL] [--series ...] --out PNG [--title T] [--xlabel X] [--ylabel Y] [--logx] "
            "[--logy] [--xmin A --xmax B] [--ymin A --ymax B] [--width W --height H]",
            run);
