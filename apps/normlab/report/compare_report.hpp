// apps/normlab/report/compare_report.hpp — report.html of `normlab compare`: one
// self-contained page (inline CSS and SVG; no script, no network access) that
// turns results.json (schema 2, experiments/results_json.hpp) into a page that
// teaches: a table of contents; each placement's equations and block diagram;
// the findings with their scale labels; the results table; for each of the
// four experiments a "what to look for" caption written from the theory, then
// its charts; the setup and the exact command to reproduce the run.
//
//   const json::Value results = json::parse_file("results.json");
//   std::ofstream("report.html") << render_compare_report(results);
//
// Conventions of the page: losses in bits per byte (nats / ln 2); every
// gradient-norm chart on a log y axis; training curves smoothed by an
// exponential moving average, with a zoomed view of the end of training.
// The charts are drawn by a small SVG line-chart helper (detail::report):
// linear or log axes with "nice" ticks, gaps where a value is null or not
// finite, and a y range taken from the finite values — capped, on loss
// charts, so that one diverging loss does not flatten every other curve;
// values above the range are drawn on the top edge.
// Output is a pure function of the JSON: the same document gives the same bytes.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "normlab/config.hpp"
#include "normlab/core/error.hpp"
#include "normlab/io/json.hpp"
#include "report/duration.hpp"

namespace normlab {
inline namespace v0 {

namespace detail::report {

/// `s` with & < > " ' written as entities: safe as HTML/SVG text and inside
/// quoted attribute values.
inline std::string escape_html(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// `v` for a reader: integers up to 1e15 exactly ("300"), anything else with
/// at most `digits` significant digits and a short exponent ("0.0003",
/// "1.5e-5", "2.5e7"); "n/a" when `v` is not finite, so that no "nan" or
/// "inf" ever reaches the page.
inline std::string format_number(double v, int digits = 4) {
  if (!std::isfinite(v)) return "n/a";
  if (v == 0) return "0";  // also -0
  char buf[48];
  if (std::abs(v) < 1e15 && v == std::trunc(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  std::string s = buf;
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;
  // "1e-05" -> "1e-5", "1e+07" -> "1e7"
  std::string exponent = s.substr(e + 1);
  const bool negative = exponent[0] == '-';
  if (exponent[0] == '-' || exponent[0] == '+') exponent.erase(0, 1);
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return s.substr(0, e + 1) + (negative ? "-" : "") + exponent;
}

/// An SVG coordinate with one decimal. Requires: `v` is finite.
inline std::string coord(double v) {
  normlab::detail::check(std::isfinite(v), "report: a chart coordinate is not finite");
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return std::string_view(buf) == "-0.0" ? "0.0" : buf;
}

/// 10^e, correctly rounded for |e| <= 22 (10^-3 is the double nearest 0.001).
inline double pow10(int e) {
  double p = 1;
  for (int i = 0; i < std::abs(e); ++i) p *= 10;
  return e >= 0 ? p : 1 / p;
}

/// One axis of a chart: its domain [lo, hi] in data units, the values at
/// which it has ticks, and whether it maps log10 of the values.
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;

  /// Where `v` lies between lo (0) and hi (1), on this axis' scale.
  /// Requires: v > 0 on a log axis.
  double fraction(double v) const {
    if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    return (v - lo) / (hi - lo);
  }
};

/// A linear axis covering [lo, hi] whose ticks are k * step for a step of 1,
/// 2 or 5 times a power of ten, chosen to give about `target` intervals; the
/// domain is widened to the ticks just outside the data. `integers` keeps the
/// step >= 1 (layer indices).
///
/// Requires: lo <= hi, both finite; target >= 1. A single value (lo == hi)
/// is widened by 10% of its size (by 1 when it is 0).
/// Ensures: ticks.front() == result.lo, ticks.back() == result.hi, and
/// [result.lo, result.hi] covers [lo, hi] up to rounding (5 * 2e29 < 1e30);
/// ticks are exact decimals where the double allows it (0.6, not 0.6000000000000001).
inline Axis linear_axis(double lo, double hi, int target = 5, bool integers = false) {
  normlab::detail::check(std::isfinite(hi - lo) && lo <= hi && target >= 1,
                         "report: linear_axis needs finite lo <= hi (and a finite span) and "
                         "target >= 1, got [",
                         lo, ", ", hi, "] and ", target);
  if (lo == hi) {
    const double d = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  // d3's tick increment: the step nearest (hi - lo) / target on a 1-2-5 scale.
  const double raw = (hi - lo) / target;
  int power = static_cast<int>(std::floor(std::log10(raw)));
  const double error = raw / std::pow(10.0, power);
  int factor = error >= std::sqrt(50.0)   ? 10
               : error >= std::sqrt(10.0) ? 5
               : error >= std::sqrt(2.0)  ? 2
                                          : 1;
  if (integers && power < 0) {
    factor = 1;
    power = 0;
  }
  // A negative power divides by an integer (k / 5 rather than k * 0.2) so that
  // tick values are the doubles nearest the decimals a reader expects.
  const double inverse = power < 0 ? pow10(-power) / factor : 0;
  const double step = power < 0 ? 1 / inverse : factor * pow10(power);
  const auto value = [&](double k) { return power < 0 ? k / inverse : k * step; };
  const double k0 = std::floor(lo / step + 1e-9), k1 = std::ceil(hi / step - 1e-9);
  Axis a;
  a.lo = value(k0);
  a.hi = value(k1);
  // Counted in integers: beyond 2^53 a double k would stop advancing.
  const auto intervals = static_cast<int64_t>(std::min(k1 - k0, 1000.0));
  for (int64_t i = 0; i <= intervals; ++i) {
    const double t = value(k0 + static_cast<double>(i));
    a.ticks.push_back(t == 0 ? 0.0 : t);  // no "-0"
  }
  return a;
}

/// A log axis from the power of ten at or below `lo` to the one at or above
/// `hi`, with a tick at each power of ten (every second or more decade when
/// there are over 6) and, when it spans at most 2 decades, at 2x and 5x too.
///
/// Requires: 0 < lo <= hi, both finite. A single power of ten is widened by a
/// decade each way.
inline Axis log_axis(double lo, double hi) {
  normlab::detail::check(std::isfinite(lo) && std::isfinite(hi) && 0 < lo && lo <= hi,
                         "report: log_axis needs finite 0 < lo <= hi, got [", lo, ", ", hi, "]");
  int e0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  int e1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  e0 = std::max(e0, -300);  // pow10 stays exact enough to label; no data lives beyond
  e1 = std::min(e1, 300);
  if (e1 <= e0) {
    --e0;
    ++e1;
  }
  const int stride = std::max(1, (e1 - e0 + 5) / 6);
  e1 = e0 + (e1 - e0 + stride - 1) / stride * stride;
  Axis a;
  a.log = true;
  a.lo = pow10(e0);
  a.hi = pow10(e1);
  for (int e = e0; e <= e1; e += stride) {
    a.ticks.push_back(pow10(e));
    if (e1 - e0 <= 2 && e < e1) {
      a.ticks.push_back(2 * pow10(e));
      a.ticks.push_back(5 * pow10(e));
    }
  }
  return a;
}

/// An axis for whole numbers lo..hi drawn as points (layer indices): the
/// domain has half a unit of room each side; ticks are whole multiples of a
/// 1-2-5 step within [lo, hi]. Requires: lo <= hi, both finite.
inline Axis integer_axis(double lo, double hi, int target = 6) {
  Axis a = linear_axis(lo, std::max(hi, lo + 1), target, /*integers=*/true);
  std::erase_if(a.ticks, [&](double t) { return t < lo || t > hi; });
  a.lo = lo - 0.5;
  a.hi = hi + 0.5;
  return a;
}

/// One line of a chart. Points pair x[i] with y[i] (up to the shorter of the
/// two); a point whose x or y is not finite, or not positive on a log axis,
/// is a gap that splits the line.
struct Series {
  std::vector<double> x, y;
  std::string color;  ///< CSS colour
  double width = 2;   ///< stroke width in px
  bool dashed = false;
  bool markers = false;   ///< a dot on every point
  std::string dash = {};  ///< an SVG dash pattern ("2 3"); overrides `dashed` when set
  /// Per point: drawn as an open ring (a failed run) instead of a dot.
  std::vector<bool> hollow = {};
};

/// One row of a legend: a short stroke in the style of a line, and its text.
struct LegendEntry {
  std::string label;
  std::string color;
  double width = 2;
  bool dashed = false;
  bool marker = false;
  std::string dash = {};  ///< as Series::dash
  bool hollow = false;    ///< an open ring on the line (the marker of a failed run)
};

/// What a chart shows and how its axes behave.
struct ChartSpec {
  std::string title, x_title, y_title;
  bool x_log = false, y_log = false;
  bool x_integer = false;    ///< x values are whole numbers such as layer indices
  bool y_from_zero = false;  ///< a linear y axis includes 0 (a flat profile then looks flat)
  /// > 0: the y range ends at most at y_cap times the largest first value of
  /// any line (a loss chart's guard against one diverging run).
  double y_cap = 0;
  /// > 0: the y range ends at most here (a fixed ceiling, e.g. above the unigram loss).
  double y_top = 0;
  /// Values the y range includes as well as the data's (charts that share a scale).
  std::vector<double> y_include;
  /// On a log x axis: ticks at exactly these values (depths 2, 4, 8, ...), the
  /// domain a quarter beyond the outer ones.
  std::vector<double> x_ticks;
  std::vector<LegendEntry> legend;  ///< in order, top to bottom
};

/// The axes of a chart and what they leave out.
struct ChartAxes {
  Axis x, y;
  bool any = false;      ///< some point can be drawn
  bool clipped = false;  ///< some point lies above y.hi and is drawn on the top edge
};

/// Whether (x, y) can be drawn on the spec's scales.
inline bool drawable(const ChartSpec& spec, double x, double y) {
  return std::isfinite(x) && std::isfinite(y) && (!spec.x_log || x > 0) && (!spec.y_log || y > 0);
}

/// The axes of a chart: x over every drawable point; y from the lowest (or 0,
/// per spec.y_from_zero) to the highest drawable value, the top capped per spec.y_cap.
inline ChartAxes chart_axes(const ChartSpec& spec, const std::vector<Series>& series) {
  double x0 = HUGE_VAL, x1 = -HUGE_VAL, y0 = HUGE_VAL, y1 = -HUGE_VAL, first_max = -HUGE_VAL;
  for (const Series& s : series) {
    bool first = true;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!drawable(spec, s.x[i], s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
      if (first) first_max = std::max(first_max, s.y[i]);
      first = false;
    }
  }
  ChartAxes a;
  a.any = x0 <= x1;
  if (!a.any) {  // an empty frame with a note
    x0 = y0 = 1;
    x1 = y1 = 10;
  }
  if (a.any)
    for (const double v : spec.y_include)
      if (std::isfinite(v) && (!spec.y_log || v > 0)) {
        y0 = std::min(y0, v);
        y1 = std::max(y1, v);
      }
  if (spec.y_from_zero && !spec.y_log) y0 = std::min(y0, 0.0);
  const double cap = spec.y_cap * first_max;
  if (a.any && spec.y_cap > 0 && first_max > 0 && cap > y0 && y1 > cap) y1 = cap;
  if (a.any && spec.y_top > y0 && y1 > spec.y_top) y1 = spec.y_top;
  a.x = spec.x_log ? log_axis(x0, x1) : spec.x_integer ? integer_axis(x0, x1) : linear_axis(x0, x1);
  if (spec.x_log && a.any && !spec.x_ticks.empty()) {
    const auto [t0, t1] = std::minmax_element(spec.x_ticks.begin(), spec.x_ticks.end());
    if (std::isfinite(*t0) && std::isfinite(*t1) && *t0 > 0) {
      a.x.lo = std::min(x0, *t0) / 1.25;
      a.x.hi = std::max(x1, *t1) * 1.25;
      a.x.ticks = spec.x_ticks;
    }
  }
  a.y = spec.y_log ? log_axis(y0, y1) : linear_axis(y0, y1);
  for (const Series& s : series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      // (a tolerance, so that a domain end a rounding below the data is no clipping)
      if (drawable(spec, s.x[i], s.y[i]) && s.y[i] - a.y.hi > 1e-9 * (a.y.hi - a.y.lo))
        a.clipped = true;
  return a;
}

/// Display width of `s` in px at the charts' 12px font: a rough 6.6 px per
/// character (code point), enough to lay out a legend.
inline double text_width(std::string_view s) {
  size_t chars = 0;
  for (const char c : s) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return 6.6 * static_cast<double>(chars);
}

/// The stroke attributes of a line style.
inline std::string stroke(const std::string& color, double width, bool dashed,
                          const std::string& dash = "") {
  const std::string pattern = !dash.empty() ? dash : dashed ? "6 4" : "";
  return "stroke=\"" + escape_html(color) + "\" stroke-width=\"" + format_number(width) + "\"" +
         (pattern.empty() ? "" : " stroke-dasharray=\"" + escape_html(pattern) + "\"");
}

/// An open ring at (x, y): the marker of a failed run.
inline std::string ring(double x, double y, const std::string& color) {
  return "<circle cx=\"" + coord(x) + "\" cy=\"" + coord(y) +
         "\" r=\"4.5\" fill=\"#fff\" stroke=\"" + escape_html(color) + "\" stroke-width=\"1.8\"/>";
}

/// An inline <svg> line chart: title, framed plot with grid lines, tick
/// labels and axis titles, one polyline per unbroken run of each series, the
/// legend on the right, and notes under the x axis when points are clipped
/// or a line breaks off at a value that is not finite (marked with an x on
/// the top edge).
///
/// Requires: every text in `spec` is plain text (it is escaped here).
/// Ensures: every number in the output is finite; the same input gives the same bytes.
inline std::string line_chart(const ChartSpec& spec, const std::vector<Series>& series) {
  const ChartAxes axes = chart_axes(spec, series);
  double legend_w = 0;
  for (const LegendEntry& e : spec.legend) legend_w = std::max(legend_w, 36 + text_width(e.label));
  legend_w = spec.legend.empty() ? 0 : std::clamp(legend_w, 110.0, 300.0);
  const double width = 900, left = 72, top = 40, plot_h = 260;
  const double right = width - 16 - (legend_w > 0 ? legend_w + 16 : 0);
  const double bottom = top + plot_h;
  const double legend_h = 18.0 * static_cast<double>(spec.legend.size()) + 8;
  const double height = std::max(bottom + 78, top + legend_h + 20);
  const double plot_w = right - left;
  const auto px = [&](double x) { return left + axes.x.fraction(x) * plot_w; };
  const auto py = [&](double y) {
    return bottom - std::clamp(axes.y.fraction(y), 0.0, 1.0) * plot_h;  // clipped to the edges
  };

  std::string o;
  o += "<svg class=\"chart\" viewBox=\"0 0 " + coord(width) + " " + coord(height) + "\" width=\"" +
       format_number(width) + "\" height=\"" + format_number(std::ceil(height)) +
       "\" role=\"img\" aria-label=\"" + escape_html(spec.title) + "\">\n";
  o += "<title>" + escape_html(spec.title) + "</title>\n";
  o += "<text class=\"title\" x=\"" + coord(left) + "\" y=\"22\">" + escape_html(spec.title) +
       "</text>\n";
  // Grid and tick labels.
  for (const double t : axes.y.ticks) {
    const std::string y = coord(py(t));
    o += "<line class=\"grid\" x1=\"" + coord(left) + "\" x2=\"" + coord(right) + "\" y1=\"" + y +
         "\" y2=\"" + y + "\"/>";
    o += "<text class=\"tick\" x=\"" + coord(left - 6) + "\" y=\"" + coord(py(t) + 4) +
         "\" text-anchor=\"end\">" + format_number(t) + "</text>\n";
  }
  for (const double t : axes.x.ticks) {
    const std::string x = coord(px(t));
    o += "<line class=\"grid\" x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + coord(top) + "\" y2=\"" +
         coord(bottom) + "\"/>";
    o += "<text class=\"tick\" x=\"" + x + "\" y=\"" + coord(bottom + 16) +
         "\" text-anchor=\"middle\">" + format_number(t) + "</text>\n";
  }
  o += "<rect class=\"frame\" x=\"" + coord(left) + "\" y=\"" + coord(top) + "\" width=\"" +
       coord(plot_w) + "\" height=\"" + coord(plot_h) + "\"/>\n";
  o += "<text class=\"axis-title\" x=\"" + coord(left + plot_w / 2) + "\" y=\"" +
       coord(bottom + 36) + "\" text-anchor=\"middle\">" + escape_html(spec.x_title) + "</text>\n";
  o += "<text class=\"axis-title\" transform=\"translate(16 " + coord(top + plot_h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + escape_html(spec.y_title) + "</text>\n";

  // Lines: one polyline per unbroken run; a lone point gets a dot.
  bool broke_off = false;
  for (const Series& s : series) {
    const std::string style = stroke(s.color, s.width, s.dashed, s.dash);
    const std::string fill = "fill=\"" + escape_html(s.color) + "\"";
    std::vector<std::pair<double, double>> run;
    std::string dots;
    const auto flush = [&] {
      if (run.size() > 1) {
        o += "<polyline fill=\"none\" " + style + " stroke-linejoin=\"round\" points=\"";
        for (size_t i = 0; i < run.size(); ++i)
          o += (i ? " " : "") + coord(run[i].first) + "," + coord(run[i].second);
        o += "\"/>\n";
      }
      if (run.size() == 1 && !s.markers)
        dots += "<circle cx=\"" + coord(run[0].first) + "\" cy=\"" + coord(run[0].second) +
                "\" r=\"2.5\" " + fill + "/>";
      run.clear();
    };
    const size_t n = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (drawable(spec, s.x[i], s.y[i])) {
        run.emplace_back(px(s.x[i]), py(s.y[i]));
        if (i < s.hollow.size() && s.hollow[i])
          dots += ring(run.back().first, run.back().second, s.color);
        else if (s.markers)
          dots += "<circle cx=\"" + coord(run.back().first) + "\" cy=\"" +
                  coord(run.back().second) + "\" r=\"2.5\" " + fill + "/>";
        continue;
      }
      // A line that breaks off at a non-finite value (a diverged loss), or a
      // point that is +infinity (a diverged run), gets an x on the top edge.
      if ((!run.empty() || s.y[i] == HUGE_VAL) && std::isfinite(s.x[i]) && !std::isfinite(s.y[i]) &&
          (!spec.x_log || s.x[i] > 0)) {
        const double x = px(s.x[i]);
        o += "<path fill=\"none\" " + stroke(s.color, 1.5, false) + " d=\"M" + coord(x - 4) + " " +
             coord(top - 4) + "L" + coord(x + 4) + " " + coord(top + 4) + "M" + coord(x - 4) + " " +
             coord(top + 4) + "L" + coord(x + 4) + " " + coord(top - 4) + "\"/>\n";
        broke_off = true;
      }
      flush();
    }
    flush();
    if (!dots.empty()) o += dots + "\n";
  }
  if (!axes.any)
    o += "<text class=\"note\" x=\"" + coord(left + plot_w / 2) + "\" y=\"" +
         coord(top + plot_h / 2) + "\" text-anchor=\"middle\">no finite values to plot</text>\n";

  // Legend.
  const double lx = right + 16;
  for (size_t i = 0; i < spec.legend.size(); ++i) {
    const LegendEntry& e = spec.legend[i];
    const double y = top + 10 + 18.0 * static_cast<double>(i);
    if (!e.color.empty()) {
      o += "<line x1=\"" + coord(lx) + "\" x2=\"" + coord(lx + 24) + "\" y1=\"" + coord(y) +
           "\" y2=\"" + coord(y) + "\" " + stroke(e.color, e.width, e.dashed, e.dash) + "/>";
      if (e.hollow)
        o += ring(lx + 12, y, e.color);
      else if (e.marker)
        o += "<circle cx=\"" + coord(lx + 12) + "\" cy=\"" + coord(y) + "\" r=\"2.5\" fill=\"" +
             escape_html(e.color) + "\"/>";
    }
    o += "<text class=\"legend\" x=\"" + coord(lx + 30) + "\" y=\"" + coord(y + 4) + "\">" +
         escape_html(e.label) + "</text>\n";
  }

  // Notes on what the chart does not show as it is.
  std::vector<std::string> notes;
  if (axes.clipped)
    notes.push_back("values above " + format_number(axes.y.hi) + " are drawn on the top edge");
  if (broke_off) notes.push_back("\xC3\x97 on the top edge: the value became non-finite there");
  for (size_t i = 0; i < notes.size(); ++i)
    o += "<text class=\"note\" x=\"" + coord(left) + "\" y=\"" +
         coord(bottom + 56 + 14 * static_cast<double>(i)) + "\">" + escape_html(notes[i]) +
         "</text>\n";
  o += "</svg>\n";
  return o;
}

/// The Okabe–Ito colours that read well on white, in the order policies get
/// them (cycled when there are more policies).
inline const std::vector<std::string>& palette() {
  static const std::vector<std::string> colors = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                  "#E69F00", "#56B4E9", "#000000"};
  return colors;
}

/// The numbers of a JSON array, null as NaN. Throws Error on another element.
inline std::vector<double> numbers(const json::Value& v) {
  std::vector<double> out;
  for (const json::Value& e : v.as_array()) {
    normlab::detail::check(e.is_null() || e.is_number(), "expected a number or null, found ",
                           e.describe());
    out.push_back(e.is_null() ? std::nan("") : e.as_double());
  }
  return out;
}

/// The numbers under `key` of `obj`, or none when the key is absent.
inline std::vector<double> numbers_at(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.find(key);
  if (v == nullptr || v->is_null()) return {};
  try {
    return numbers(*v);
  } catch (const Error& e) {
    throw Error(normlab::detail::concat("\"", key, "\": ", e.what()));
  }
}

/// A JSON value as table text: numbers per format_number(`digits`), arrays
/// as "[a, b]", objects as "{k: v}", null as an em dash.
inline std::string value_text(const json::Value& v, int digits) {
  switch (v.type()) {
    case json::Type::null:
      return "\xE2\x80\x94";
    case json::Type::boolean:
      return v.as_bool() ? "true" : "false";
    case json::Type::number:
      return v.is_int() ? std::to_string(v.as_int()) : format_number(v.as_double(), digits);
    case json::Type::string:
      return v.as_string();
    case json::Type::array: {
      std::string s = "[";
      for (const json::Value& e : v.as_array())
        s += (s.size() > 1 ? ", " : "") + value_text(e, digits);
      return s + "]";
    }
    case json::Type::object: {
      std::string s = "{";
      for (const auto& [k, e] : v.as_object())
        s += (s.size() > 1 ? ", " : "") + k + ": " + value_text(e, digits);
      return s + "}";
    }
  }
  return "";
}

/// Whether a table cell reads as a number (then it is right-aligned).
inline bool numeric_cell(const json::Value& v) {
  if (v.is_number()) return true;
  if (!v.is_string() || v.as_string().empty()) return false;
  const std::string& s = v.as_string();
  char* end = nullptr;
  (void)std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

/// ln 2: losses are stored in nats per byte and shown in bits per byte.
inline constexpr double kLn2 = 0.693147180559945309417;

/// `nats` in bits (NaN stays NaN).
inline double bits(double nats) {
  return nats / kLn2;
}

/// `v` with `decimals` fixed decimals ("2.340"), "n/a" when not finite.
inline std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  const std::string s = buf;
  return s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos ? s.substr(1) : s;
}

/// A slope with its interval: "-0.52 [-0.61, -0.43]"; "n/a" parts when unknown.
inline std::string slope_text(double slope, double lo, double hi) {
  const auto signed_text = [](double v) {
    if (!std::isfinite(v)) return std::string("n/a");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.2f", v);
    return std::string(buf) == "-0.00" ? std::string("+0.00") : std::string(buf);
  };
  std::string s = signed_text(slope);
  if (std::isfinite(lo) && std::isfinite(hi))
    s += " [" + signed_text(lo) + ", " + signed_text(hi) + "]";
  return s;
}

/// The centred moving average of `v`: each value the mean of the finite
/// values within `half` places either side (fewer at the ends), so that a
/// falling curve is smoothed without the lag of an exponential average; a
/// value that is not finite stays a gap (NaN).
inline std::vector<double> centered_average(const std::vector<double>& v, size_t half) {
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) {
    double sum = 0;
    int n = 0;
    for (size_t j = i > half ? i - half : 0; j <= std::min(v.size() - 1, i + half); ++j)
      if (std::isfinite(v[j])) {
        sum += v[j];
        ++n;
      }
    out.push_back(std::isfinite(v[i]) ? sum / n : std::nan(""));
  }
  return out;
}

/// `name` as an HTML id fragment: letters, digits, '_' and '-' kept, any
/// other byte written as '-'.
inline std::string slug(std::string_view name) {
  std::string s;
  for (const char c : name)
    s += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '-';
  return s;
}

/// The shape of one layer of a policy built from a placement and the
/// built-in extras the report can draw; `drawable` is false for anything
/// else (a registered extra, another placement or norm kind).
struct LayerShape {
  bool drawable = false;
  bool post = false;                 ///< Post-LN: LN on the stream after each add
  bool head_scale = false;           ///< a learned scale per attention head
  bool head_after_out_proj = false;  ///< fairseq's form: after W_O, on C/H channel groups
  bool attn_ln = false;              ///< LN_a on the attention output, before the add
  bool ffn_ln = false;               ///< LN_f after the FFN activation, before fc2
  bool resid_scale = false;          ///< lambda * x on the FFN's skip path
  bool final_ln = false;             ///< LN after the last layer
  std::string activation = "act";
};

/// The shape of policy `name` with config `config` (null: from the name alone).
inline LayerShape layer_shape(const std::string& name, const json::Value* config) {
  LayerShape s;
  if (config == nullptr || !config->is_object()) {
    s.drawable = name == "post_ln" || name == "pre_ln" || name == "normformer";
    s.post = name == "post_ln";
    s.final_ln = !s.post;
    s.head_scale = s.attn_ln = s.ffn_ln = name == "normformer";
    return s;
  }
  const auto text = [&](const char* key, const char* fallback) {
    const json::Value* v = config->find(key);
    return v && v->is_string() ? v->as_string() : std::string(fallback);
  };
  const auto flag = [&](const char* key, bool fallback) {
    const json::Value* v = config->find(key);
    return v && v->is_bool() ? v->as_bool() : fallback;
  };
  const std::string policy = text("policy", "");
  s.drawable =
      (policy == "pre_ln" || policy == "post_ln") && text("norm", "layer_norm") == "layer_norm";
  s.post = policy == "post_ln";
  s.final_ln = flag("final_norm", !s.post);
  s.resid_scale = flag("resid_scale", false);
  s.activation = text("activation", "act");
  const std::string where = text("head_scale", "before_out_proj");
  if (const json::Value* extras = config->find("extras"); extras && extras->is_array()) {
    for (const json::Value& e : extras->as_array()) {
      const std::string w = e.is_string() ? e.as_string() : "?";
      if (w == "head_scale" || w == "head_scale(before_out_proj)" ||
          w == "head_scale(after_out_proj)") {
        s.head_scale = true;
        s.head_after_out_proj =
            w == "head_scale(after_out_proj)" || (w == "head_scale" && where == "after_out_proj");
      } else if (w == "attn_ln") {
        s.attn_ln = true;
      } else if (w == "ffn_ln") {
        s.ffn_ln = true;
      } else if (w == "resid_scale") {
        s.resid_scale = true;
      } else {
        s.drawable = false;
      }
    }
  }
  return s;
}

/// The equations of one layer of `s` as HTML lines (fixed text: nothing to escape).
inline std::vector<std::string> layer_equations(const LayerShape& s) {
  const std::string z = s.post ? "x" : "LN(x)";
  std::string attn = s.head_scale && !s.head_after_out_proj ? "Attn<sub>&#947;</sub>(" + z + ")"
                                                            : "Attn(" + z + ")";
  if (s.head_scale && s.head_after_out_proj) attn = "&#947; &#8857; " + attn;
  if (s.attn_ln) attn = "LN<sub>a</sub>(" + attn + ")";
  std::string hidden = "act(W<sub>1</sub> " + z + " + b<sub>1</sub>)";
  if (s.ffn_ln) hidden = "LN<sub>f</sub>(" + hidden + ")";
  const std::string ffn = "W<sub>2</sub> " + hidden + " + b<sub>2</sub>";
  const std::string skip = s.resid_scale ? "&#955; &#8857; x" : "x";
  std::vector<std::string> lines;
  if (s.post) {
    lines.push_back("x &#8592; LN(x + " + attn + ")");
    lines.push_back("x &#8592; LN(" + skip + " + " + ffn + ")");
  } else {
    lines.push_back("x &#8592; x + " + attn);
    lines.push_back("x &#8592; " + skip + " + " + ffn);
  }
  if (s.head_scale && !s.head_after_out_proj)
    lines.push_back(
        "Attn<sub>&#947;</sub>(z) = Concat(&#947;<sub>1</sub> h<sub>1</sub>, &#8230;, "
        "&#947;<sub>H</sub> h<sub>H</sub>) W<sub>O</sub> + b<sub>O</sub>   (a learned scale per "
        "head, init 1, before the output projection: the paper's form)");
  if (s.head_scale && s.head_after_out_proj)
    lines.push_back(
        "&#947; &#8857; Attn(z): &#947;<sub>h</sub> scales head h's C/H channels of "
        "W<sub>O</sub> h + b<sub>O</sub>   (after the output projection: fairseq's form)");
  if (s.resid_scale)
    lines.push_back("&#955;: a learned per-channel scale of the FFN's skip path, init 1");
  lines.push_back(s.final_ln ? "after the last layer: y = LN<sub>final</sub>(x)"
                             : "no LayerNorm after the last layer");
  return lines;
}

/// Characters `s` shows as, counting an entity (&#947;) as one.
inline size_t shown_chars(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '&') {
      const size_t semi = s.find(';', i);
      if (semi != std::string_view::npos) i = semi;
    }
    n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  }
  return n;
}

/// A small inline-SVG block diagram of one layer of `s`: the residual stream
/// left to right, each sublayer a branch above it that rejoins at a +; norms
/// are yellow boxes, what the policy adds to plain Pre-LN / Post-LN has a
/// dashed outline. Labels are fixed text (entities allowed).
inline std::string layer_diagram(const LayerShape& s, const std::string& title) {
  struct Box {
    std::string label, cls;
  };
  const double stream = 112, branch = 44, h = 26;
  std::string body;
  const auto width_of = [](const std::string& label) {
    return 16 + 7.2 * static_cast<double>(shown_chars(label));
  };
  const auto box = [&](double x, double y, const Box& b) {
    const double w = width_of(b.label);
    body += "<rect class=\"" + b.cls + "\" x=\"" + coord(x) + "\" y=\"" + coord(y - h / 2) +
            "\" width=\"" + coord(w) + "\" height=\"" + coord(h) + "\" rx=\"4\"/>";
    body += "<text x=\"" + coord(x + w / 2) + "\" y=\"" + coord(y + 4.5) +
            "\" text-anchor=\"middle\">" + b.label + "</text>\n";
    return x + w;
  };
  const auto arrow_right = [&](double x, double y) {
    body += "<path class=\"head\" d=\"M" + coord(x - 6) + " " + coord(y - 3.5) + "L" + coord(x) +
            " " + coord(y) + "L" + coord(x - 6) + " " + coord(y + 3.5) + "Z\"/>";
  };
  const auto arrow_down = [&](double x, double y) {
    body += "<path class=\"head\" d=\"M" + coord(x - 3.5) + " " + coord(y - 6) + "L" + coord(x) +
            " " + coord(y) + "L" + coord(x + 3.5) + " " + coord(y - 6) + "Z\"/>";
  };
  const auto wire = [&](const std::string& d) { body += "<path class=\"wire\" d=\"" + d + "\"/>"; };

  const std::string ln = "ln", op = "op", ln_extra = "ln extra", op_extra = "op extra";
  std::vector<Box> attn, ffn;
  if (!s.post) attn.push_back({"LN", ln});
  attn.push_back({s.head_scale && !s.head_after_out_proj ? "Attn, &#947;&#8341; per head" : "Attn",
                  s.head_scale && !s.head_after_out_proj ? op_extra : op});
  if (s.head_scale && s.head_after_out_proj) attn.push_back({"&#215; &#947;&#8341;", op_extra});
  if (s.attn_ln) attn.push_back({"LN_a", ln_extra});
  if (!s.post) ffn.push_back({"LN", ln});
  ffn.push_back({"W1, " + escape_html(s.activation), op});
  if (s.ffn_ln) ffn.push_back({"LN_f", ln_extra});
  ffn.push_back({"W2", op});

  double cur = 28;
  body += "<text x=\"6\" y=\"" + coord(stream + 4.5) + "\">x</text>\n";
  const double start = cur;
  int k = 0;
  for (const std::vector<Box>* boxes : {&attn, &ffn}) {
    const double branch_x = cur + 14;
    double x = branch_x + 20;
    wire("M" + coord(branch_x) + " " + coord(stream) + "V" + coord(branch) + "H" + coord(x));
    arrow_right(x, branch);
    for (size_t i = 0; i < boxes->size(); ++i) {
      if (i > 0) {
        wire("M" + coord(x) + " " + coord(branch) + "H" + coord(x + 14));
        x += 14;
        arrow_right(x, branch);
      }
      x = box(x, branch, (*boxes)[i]);
    }
    const double plus = x + 22;
    wire("M" + coord(x) + " " + coord(branch) + "H" + coord(plus) + "V" + coord(stream - 9));
    arrow_down(plus, stream - 9);
    body += "<text class=\"sub\" x=\"" + coord((branch_x + plus) / 2) + "\" y=\"" +
            coord(stream + 34) + "\" text-anchor=\"middle\">" +
            (k == 0 ? "attention sublayer" : "feed-forward sublayer") + "</text>\n";
    if (k == 1 && s.resid_scale) {
      const Box b{"&#215; &#955;", op_extra};
      box((branch_x + plus) / 2 - width_of(b.label) / 2, stream, b);
    }
    body += "<circle class=\"plus\" cx=\"" + coord(plus) + "\" cy=\"" + coord(stream) +
            "\" r=\"9\"/><text x=\"" + coord(plus) + "\" y=\"" + coord(stream + 5) +
            "\" text-anchor=\"middle\">+</text>\n";
    cur = plus + 9;
    if (s.post) cur = box(cur + 16, stream, {"LN", ln});
    ++k;
  }
  if (s.final_ln) cur = box(cur + 22, stream, {"LN_final", ln});
  const double end = cur + 30;
  // The stream under everything, drawn first so that boxes and + cover it.
  std::string line = "<path class=\"wire\" d=\"M" + coord(start - 8) + " " + coord(stream) + "H" +
                     coord(end) + "\"/>";
  std::string head;
  head += "<path class=\"head\" d=\"M" + coord(end - 6) + " " + coord(stream - 3.5) + "L" +
          coord(end) + " " + coord(stream) + "L" + coord(end - 6) + " " + coord(stream + 3.5) +
          "Z\"/>\n";
  const double width = end + 10, height = 160;
  return "<svg class=\"diagram\" viewBox=\"0 0 " + coord(width) + " " + coord(height) +
         "\" width=\"" + format_number(std::ceil(width)) + "\" height=\"" + format_number(height) +
         "\" role=\"img\" aria-label=\"" + escape_html(title) + "\">\n" + "<title>" +
         escape_html(title) + "</title>\n" + line + head + body + "</svg>\n";
}

/// The page's sections, in order: id and heading (the table of contents).
inline const std::vector<std::pair<std::string, std::string>>& page_sections() {
  static const std::vector<std::pair<std::string, std::string>> s = {
      {"placements", "The placements"},
      {"findings", "Findings"},
      {"table", "Results table"},
      {"depth-sweep", "1. Depth sweep at initialization"},
      {"lr-sweep", "2. Learning-rate sweep, with and without warm-up"},
      {"tuned", "3. Tuned comparison"},
      {"lr-stress", "4. LR-stress test"},
      {"setup", "Setup and how to reproduce"},
  };
  return s;
}

/// Builds the page; one instance per render_compare_report call.
class ReportWriter {
 public:
  explicit ReportWriter(const json::Value& results) : r_(results) {
    normlab::detail::check(r_.is_object(),
                           "render_compare_report: results must be a JSON object, found ",
                           r_.describe());
    section("policies", [&](const json::Value& v) {
      for (const json::Value& p : v.as_array())
        add_policy(p.is_string() ? p.as_string() : p.at("name").as_string());
    });
    section("runs", [&](const json::Value& v) {
      for (const json::Value& run : v.as_array()) add_policy(run.at("policy").as_string());
      runs_ = &v.as_array();
    });
    // Policies that only appear inside a section still get a colour of their own.
    section("depth_sweep", [&](const json::Value& v) {
      if (const json::Value* p = v.find("policies"); p && !p->is_null())
        for (const auto& [name, data] : p->as_object()) add_policy(name);
    });
    for (const char* key : {"tuned", "mismatched"})
      section(key, [&](const json::Value& v) {
        for (const json::Value& e : v.as_array()) add_policy(e.at("policy").as_string());
      });
    section("lr_stress", [&](const json::Value& v) {
      for (const auto& [name, data] : v.as_object()) add_policy(name);
    });
  }

  std::string render() {
    const json::Value* title_v = r_.find("title");
    const std::string title =
        title_v && title_v->is_string() ? title_v->as_string() : "normlab compare";
    out_ += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    out_ += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    out_ += "<title>" + escape_html(title) + "</title>\n<style>\n" + css() + "</style>\n";
    out_ += "</head>\n<body>\n<h1>" + escape_html(title) + "</h1>\n";
    intro();
    contents();
    placements();
    findings();
    table();
    depth_sweep();
    lr_sweep();
    tuned();
    lr_stress();
    setup();
    out_ += "<footer><p>Made by normlab " + std::to_string(version_major) + "." +
            std::to_string(version_minor) + "." + std::to_string(version_patch) +
            " from results.json. A static page: no scripts, nothing loaded from the network. "
            "Gaps in a line mark missing or non-finite values.</p></footer>\n";
    out_ += "</body>\n</html>\n";
    return std::move(out_);
  }

 private:
  /// Runs `f` on section `key` when present and not null; rethrows a schema
  /// error with the section's name. Returns whether the section was present.
  template <class F>
  bool section(const char* key, F&& f) {
    const json::Value* v = r_.find(key);
    if (v == nullptr || v->is_null()) return false;
    try {
      f(*v);
    } catch (const Error& e) {
      throw Error(
          normlab::detail::concat("render_compare_report: section \"", key, "\": ", e.what()));
    }
    return true;
  }

  void add_policy(const std::string& name) {
    if (std::find(policies_.begin(), policies_.end(), name) == policies_.end())
      policies_.push_back(name);
  }

  std::string color(const std::string& policy) const {
    const size_t i = static_cast<size_t>(std::find(policies_.begin(), policies_.end(), policy) -
                                         policies_.begin());
    return palette()[i % palette().size()];
  }

  std::string swatch(const std::string& policy) const {
    return "<span class=\"swatch\" style=\"background:" + color(policy) + "\"></span>";
  }

  void skipped(const char* key, const char* what) {
    out_ += std::string("<p class=\"note\">Skipped: results.json has no \"") + key +
            "\" section, so there is no " + what + ".</p>\n";
  }

  void open_section(const std::string& id) {
    for (const auto& [sid, heading] : page_sections())
      if (sid == id) out_ += "<section id=\"" + sid + "\">\n<h2>" + heading + "</h2>\n";
  }

  /// The "what to look for" caption of an experiment: written from the
  /// theory before any run, not from this run's numbers.
  void look_for(const std::string& html) {
    out_ += "<div class=\"look\"><strong>What to look for.</strong> " + html + "</div>\n";
  }

  void figure(const std::string& id, const std::string& svg, const std::string& caption) {
    out_ += "<figure id=\"" + id + "\">\n" + svg + "<figcaption>" + caption +
            "</figcaption>\n</figure>\n";
  }

  /// The number under `key` of object `obj`, NaN when absent or null.
  static double number(const json::Value& obj, std::string_view key) {
    const json::Value* v = obj.find(key);
    if (v == nullptr || v->is_null()) return std::nan("");
    try {
      return v->as_double();
    } catch (const Error& e) {
      throw Error(normlab::detail::concat("\"", key, "\": ", e.what()));
    }
  }

  /// The string under `key` of object `obj`, `fallback` when absent or null.
  static std::string text(const json::Value& obj, std::string_view key,
                          const std::string& fallback = "") {
    const json::Value* v = obj.find(key);
    if (v == nullptr || v->is_null()) return fallback;
    return v->as_string();
  }

  /// The top-level "run" object's `key` (NaN when absent).
  double run_number(std::string_view key) const {
    const json::Value* run = r_.find("run");
    return run && run->is_object() ? number(*run, key) : std::nan("");
  }

  /// Run `i` of the "runs" section. Throws Error when that section is
  /// absent or has no run `i`.
  const json::Value& run_at(const json::Value& index) const {
    normlab::detail::check(runs_ != nullptr,
                           "refers to runs, but results.json has no \"runs\" section");
    const int64_t i = index.as_int();
    normlab::detail::check(i >= 0 && static_cast<size_t>(i) < runs_->size(), "run index ", i,
                           " is outside \"runs\" (", runs_->size(), " runs)");
    return (*runs_)[static_cast<size_t>(i)];
  }

  /// The names of `section` (an object keyed by policy), in colour order.
  std::vector<std::string> ordered(const json::Value& section) const {
    std::vector<std::string> out;
    for (const std::string& p : policies_)
      if (section.as_object().contains(p)) out.push_back(p);
    return out;
  }

  void intro() {
    out_ +=
        "<p class=\"intro\">Where a transformer's LayerNorms sit changes how its gradients "
        "scale with depth, which learning rates it survives and whether it needs warm-up. This "
        "page is one run of <code>normlab compare</code>: four experiments, each run in the "
        "regime where theory says its claim lives, every policy on the same data, sizes and "
        "seeds. Each experiment opens with what to look for, written from the theory before "
        "the run; the charts and the findings then say what this run shows. Losses are in bits "
        "per byte (nats / ln 2: 8 bits per byte is a uniform guess over bytes); gradient norms "
        "are on log axes. Claims that their papers measured at 125M&#8211;2.7B parameters are "
        "labelled so: a run this small neither confirms nor refutes them.";
    const json::Value* scale = r_.find("scale");
    if (scale && scale->is_string())
      out_ += " Scale preset: <code>" + escape_html(scale->as_string()) + "</code>.";
    if (const json::Value* e = r_.find("elapsed_s"); e && e->is_number())
      out_ += " The run took " + duration_text(e->as_double()) + ".";
    out_ += "</p>\n";
  }

  void contents() {
    out_ += "<nav class=\"toc\">\n<h2>Contents</h2>\n<ul>\n";
    for (const auto& [id, heading] : page_sections()) {
      out_ += "<li><a href=\"#" + id + "\">" + heading + "</a>";
      if (id == "placements" && !placement_ids().empty()) {
        out_ += "\n<ul>";
        for (const auto& [pid, name] : placement_ids())
          out_ += "<li><a href=\"#" + pid + "\">" + escape_html(name) + "</a></li>";
        out_ += "</ul>\n";
      }
      out_ += "</li>\n";
    }
    out_ += "</ul>\n</nav>\n";
  }

  /// (id, name) of each entry of "policies" that has a name.
  std::vector<std::pair<std::string, std::string>> placement_ids() const {
    std::vector<std::pair<std::string, std::string>> out;
    const json::Value* v = r_.find("policies");
    if (v == nullptr || !v->is_array()) return out;
    for (const json::Value& p : v->as_array()) {
      const json::Value* name = p.is_object() ? p.find("name") : &p;
      if (name && name->is_string())
        out.emplace_back(
            "placement-" + std::to_string(out.size() + 1) + "-" + slug(name->as_string()),
            name->as_string());
    }
    return out;
  }

  void placements() {
    open_section("placements");
    const auto ids = placement_ids();
    const bool present = section("policies", [&](const json::Value& v) {
      out_ +=
          "<p>Notation: <code>x</code> is the residual stream (B,T,C), <code>LN</code> an affine "
          "LayerNorm (eps 1e-5, &#947; = 1 and &#946; = 0 at init), <code>Attn</code> multi-head "
          "self-attention with its output projection W<sub>O</sub>, W<sub>1</sub> and "
          "W<sub>2</sub> (fc1, fc2) the feed-forward weights. In the diagrams the stream runs "
          "left to right; each sublayer branches off above it and is added back at the "
          "<b>+</b>; LayerNorms are yellow, and what a policy adds to plain Pre-LN or Post-LN has "
          "a dashed outline.</p>\n";
      size_t k = 0;
      for (const json::Value& p : v.as_array()) {
        const std::string name = p.is_string() ? p.as_string() : p.at("name").as_string();
        const json::Value* config = p.is_object() ? p.find("config") : nullptr;
        if (config && config->is_null()) config = nullptr;
        if (config) (void)config->as_object();  // a schema error, not a silent skip
        out_ += "<article class=\"placement\" id=\"" + ids[k++].first + "\">\n<h3>" + swatch(name) +
                "<code>" + escape_html(name) + "</code></h3>\n";
        const LayerShape shape = layer_shape(name, config);
        out_ += "<p>" + placement_text(name) + "</p>\n";
        if (shape.drawable) {
          out_ += "<div class=\"eq\">";
          for (const std::string& line : layer_equations(shape)) out_ += line + "\n";
          out_ += "</div>\n";
          out_ += layer_diagram(shape, "One layer of " + name);
        } else {
          out_ +=
              "<p class=\"note\">This composition uses an extra, placement or norm this page "
              "cannot draw; its config below says what it computes.</p>\n";
        }
        out_ += "<p class=\"config\">";
        if (const json::Value* n = p.is_object() ? p.find("parameters") : nullptr;
            n && !n->is_null())
          out_ += "<b>parameters</b> " + escape_html(value_text(*n, 6)) + " &#183; ";
        out_ += "<b>config</b> " + policy_config(config) + "</p>\n</article>\n";
      }
    });
    if (!present) skipped("policies", "description of the placements");
    out_ += "</section>\n";
  }

  /// What `name` is, in a sentence (HTML).
  static std::string placement_text(const std::string& name) {
    if (name == "post_ln")
      return "<b>Post-LN</b> (Vaswani et al. 2017): the LayerNorm sits on the residual stream, "
             "after each add, so every gradient that reaches an early layer passes through the "
             "norms of all the layers above it. Xiong et al. (2020) show its last layers get "
             "large gradients at initialization and that it needs learning-rate warm-up.";
    if (name == "pre_ln")
      return "<b>Pre-LN</b>: the LayerNorm sits at the entrance of each sublayer's branch, so "
             "the stream itself is a sum with an identity path from input to output; a final "
             "LayerNorm follows the last layer. Its last-layer gradient shrinks like "
             "L<sup>-1/2</sup> with the depth L at initialization (Xiong et al. 2020, Theorem 1).";
    if (name == "normformer")
      return "<b>NormFormer</b> (Shleifer, Weston &amp; Ott 2021): Pre-LN plus three operations "
             "per layer: a learned scale per attention head, a LayerNorm on the attention "
             "output before the residual add (LN<sub>a</sub>), and a LayerNorm after the FFN "
             "activation, before fc2 (LN<sub>f</sub>). It adds 2C + 2d<sub>ff</sub> + H "
             "parameters per layer.";
    return "A composition: the policy spec <code>" + escape_html(name) +
           "</code> names a placement and the extras added to it; its equations follow from "
           "its config.";
  }

  /// The keys of a policy's config that are its own (policy, extras, head
  /// scale, norm, final norm...) and those that differ from the shared
  /// "config", as "key value" pairs (HTML).
  std::string policy_config(const json::Value* config) const {
    if (config == nullptr) return "<span class=\"note\">not recorded</span>";
    const json::Value* shared = r_.find("config");
    if (shared && !shared->is_object()) shared = nullptr;
    static const std::vector<std::string> own = {"policy",      "extras", "head_scale",
                                                 "resid_scale", "norm",   "final_norm"};
    std::string s;
    const LayerShape shape = layer_shape("", config);
    for (const auto& [key, value] : config->as_object()) {
      if (key == "head_scale" && !shape.head_scale) continue;  // placed nothing
      const bool is_own = std::find(own.begin(), own.end(), key) != own.end();
      const json::Value* base = shared ? shared->find(key) : nullptr;
      if (!is_own && base && *base == value) continue;
      if (!s.empty()) s += ", ";
      s += "<code>" + escape_html(key) + "</code> " + escape_html(value_text(value, 6));
    }
    if (shared) s += " (the other keys as in the shared config under Setup)";
    return s;
  }

  void findings() {
    open_section("findings");
    const bool present = section("findings", [&](const json::Value& v) {
      out_ +=
          "<p>Each claim from the papers, judged on this run by a rule fixed before the run. "
          "The scale label says what a run this size can tell: <b>small</b>, real at this "
          "scale; <b>paper</b>, measured at 125M&#8211;2.7B parameters in the paper, so a small "
          "run neither confirms nor refutes it; <b>lesson</b>, about method.</p>\n"
          "<ul class=\"findings\">\n";
      for (const json::Value& f : v.as_array()) {
        const json::Value* shows = f.find("shows");
        const char* cls = "inconclusive";
        if (shows && shows->is_bool()) cls = shows->as_bool() ? "shown" : "not-shown";
        const std::string badge = std::string(cls) == "not-shown" ? "not shown" : cls;
        out_ +=
            std::string("<li class=\"") + cls + "\"><span class=\"badge\">" + badge + "</span> ";
        const std::string scale = text(f, "scale");
        if (!scale.empty()) {
          const char* meaning = scale == "small"    ? "real at this scale"
                                : scale == "paper"  ? "measured at 125M-2.7B parameters"
                                : scale == "lesson" ? "about method"
                                                    : "";
          const char* why = scale == "paper" ? "; a small run neither confirms nor refutes it" : "";
          out_ += "<span class=\"scale scale-" + slug(scale) + "\" title=\"" + meaning + why +
                  "\">" + escape_html(scale) + (*meaning ? std::string(": ") + meaning : "") +
                  "</span> ";
        }
        out_ += "<span class=\"claim\">" + escape_html(f.at("claim").as_string()) + "</span>";
        std::string experiment = text(f, "experiment");
        std::replace(experiment.begin(), experiment.end(), '_', '-');
        for (const auto& [id, heading] : page_sections())
          if (experiment == id && id != "placements" && id != "setup")
            out_ += " <a class=\"see\" href=\"#" + id + "\">(" + heading + ")</a>";
        if (const std::string source = text(f, "source"); !source.empty())
          out_ += "<div class=\"source\">Source: " + escape_html(source) + "</div>";
        if (const std::string rule = text(f, "rule"); !rule.empty())
          out_ += "<div class=\"rule\">Rule: " + escape_html(rule) + "</div>";
        if (const std::string detail = text(f, "detail"); !detail.empty())
          out_ += "<div class=\"detail\">Measured: " + escape_html(detail) + "</div>";
        out_ += "</li>\n";
      }
      out_ += "</ul>\n";
    });
    if (!present) skipped("findings", "list of findings");
    out_ += "</section>\n";
  }

  void table() {
    open_section("table");
    const bool present = section("table", [&](const json::Value& v) {
      out_ += "<table class=\"results\">\n<thead><tr>";
      for (const json::Value& c : v.at("columns").as_array())
        out_ += "<th>" + escape_html(value_text(c, 4)) + "</th>";
      out_ += "</tr></thead>\n<tbody>\n";
      for (const json::Value& row : v.at("rows").as_array()) {
        out_ += "<tr>";
        bool first = true;
        for (const json::Value& cell : row.as_array()) {
          const std::string t = value_text(cell, 4);
          out_ += numeric_cell(cell) ? "<td class=\"num\">" : "<td>";
          if (first && cell.is_string() &&
              std::find(policies_.begin(), policies_.end(), t) != policies_.end())
            out_ += swatch(t);
          out_ += escape_html(t) + "</td>";
          first = false;
        }
        out_ += "</tr>\n";
      }
      out_ += "</tbody>\n</table>\n";
    });
    if (!present) skipped("table", "results table");
    out_ += "</section>\n";
  }

  // ---- 1. Depth sweep -------------------------------------------------------

  void depth_sweep() {
    open_section("depth-sweep");
    look_for(
        "At initialization, before any update, the gradient of the last layer's fc2 weights is "
        "measured at depths L from shallow to deep. Xiong et al. (2020, Theorem 1) bound it by "
        "O(d &#8730;(ln d)) for Post-LN, independent of L, and by O(d &#8730;(ln d / L)) for "
        "Pre-LN. On log-log axes Pre-LN's points should fall along a line of slope about "
        "&#8722;1/2 and Post-LN's lie flat (slope about 0): the dashed lines are those slopes, "
        "anchored at the shallowest depth. So the Post/Pre ratio grows like &#8730;L: the two "
        "cross at small L, which is why a single 6-layer model can hide the effect. The fitted "
        "slope's 95% interval comes from every (seed, batch) sample. The per-layer profile "
        "(Xiong et al.'s Fig. 3) is drawn too, but the claim is judged by the slopes, not by "
        "that picture.");
    const bool present = section("depth_sweep", [&](const json::Value& v) {
      const std::vector<double> depths = numbers(v.at("depths"));
      const std::string group = text(v, "group", "fc2");
      const json::Value& pols = v.at("policies");
      const std::vector<std::string> names = ordered(pols);
      std::vector<double> all;  // every mean, so that both charts share one y range
      std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> means;
      for (const std::string& p : names) {
        const json::Value& d = pols.at(p);
        auto& [last, first] = means[p];
        try {
          last = numbers(d.at("last").at("mean"));
          first = numbers(d.at("first").at("mean"));
        } catch (const Error& e) {
          throw Error(normlab::detail::concat("policy \"", p, "\": ", e.what()));
        }
        all.insert(all.end(), last.begin(), last.end());
        all.insert(all.end(), first.begin(), first.end());
      }
      std::map<std::string, double> theory;
      if (const json::Value* t = v.find("theory_slopes"); t && !t->is_null())
        for (const auto& [p, slope] : t->as_object())
          if (slope.is_number()) theory[p] = slope.as_double();

      for (const bool last_layer : {true, false}) {
        ChartSpec spec;
        spec.title = std::string(last_layer ? "Last" : "First") + "-layer " + group +
                     " gradient norm against depth, at initialization";
        spec.x_title = "depth L (layers, log scale)";
        spec.y_title = "gradient norm (log scale)";
        spec.x_log = spec.y_log = true;
        spec.x_ticks = depths;
        spec.y_include = all;
        std::vector<Series> series;
        for (const std::string& p : names) {
          const std::vector<double>& y = last_layer ? means[p].first : means[p].second;
          const json::Value* fit = pols.at(p).find(last_layer ? "last_fit" : "first_fit");
          const bool has_fit = fit && fit->is_object();
          series.push_back({depths, y, color(p), 2, false, true});
          spec.legend.push_back({p + ": slope " +
                                     (has_fit ? slope_text(number(*fit, "slope"),
                                                           number(*fit, "lo"), number(*fit, "hi"))
                                              : "n/a"),
                                 color(p), 2, false, true});
          const auto it = theory.find(p);
          if (!last_layer || it == theory.end() || depths.empty()) continue;
          // The theory's slope through the first depth with a measured mean.
          for (size_t i = 0; i < std::min(depths.size(), y.size()); ++i)
            if (std::isfinite(y[i]) && y[i] > 0 && depths[i] > 0) {
              Series ref{{depths.front(), depths.back()}, {}, color(p), 1.5, true};
              for (const double d : ref.x)
                ref.y.push_back(y[i] * std::pow(d / depths[i], it->second));
              series.push_back(std::move(ref));
              spec.legend.push_back(
                  {p + " theory: slope " + format_number(it->second, 3), color(p), 1.5, true});
              break;
            }
        }
        figure(last_layer ? "fig-depth-last" : "fig-depth-first", line_chart(spec, series),
               last_layer
                   ? "Mean over seeds and batches of the gradient norm of the last layer's <code>" +
                         escape_html(group) +
                         "</code> weights, one line per policy; dashed: the slope Theorem 1 "
                         "predicts. The legend gives the fitted log-log slope with its 95% "
                         "interval."
                   : "The same for the first layer (same y scale as the chart above). The "
                     "theorem bounds the last layer; the first layer shows how the gradient "
                     "reaching the bottom of the stack changes with depth.");
      }
      fit_table(pols, names, theory);

      if (means.contains("post_ln") && means.contains("pre_ln") && !depths.empty()) {
        const std::vector<double>&post = means["post_ln"].first, &pre = means["pre_ln"].first;
        Series ratio{depths, {}, "#333333", 2, false, true};
        for (size_t i = 0; i < depths.size(); ++i)
          ratio.y.push_back(i < post.size() && i < pre.size() ? post[i] / pre[i] : std::nan(""));
        ChartSpec spec;
        spec.title = "Post-LN / Pre-LN last-layer gradient norm against depth";
        spec.x_title = "depth L (layers, log scale)";
        spec.y_title = "ratio (log scale)";
        spec.x_log = spec.y_log = true;
        spec.x_ticks = depths;
        spec.y_include = {1};
        std::vector<Series> series = {
            ratio, {{depths.front(), depths.back()}, {1, 1}, "#999999", 1, false, false, "2 3"}};
        spec.legend = {{"post_ln / pre_ln", "#333333", 2, false, true},
                       {"equal gradients (ratio 1)", "#999999", 1, false, false, "2 3"}};
        const double slope = theory.contains("post_ln") && theory.contains("pre_ln")
                                 ? theory["post_ln"] - theory["pre_ln"]
                                 : std::nan("");
        for (size_t i = 0; i < ratio.y.size() && std::isfinite(slope); ++i)
          if (std::isfinite(ratio.y[i]) && ratio.y[i] > 0 && depths[i] > 0) {
            Series ref{{depths.front(), depths.back()}, {}, "#333333", 1.5, true};
            for (const double d : ref.x)
              ref.y.push_back(ratio.y[i] * std::pow(d / depths[i], slope));
            series.push_back(std::move(ref));
            spec.legend.push_back(
                {"theory: slope " + format_number(slope, 3), "#333333", 1.5, true});
            break;
          }
        std::string values;
        for (size_t i = 0; i < ratio.y.size(); ++i)
          values += (i ? ", " : "") + std::string("L ") + format_number(depths[i]) + ": " +
                    format_number(ratio.y[i], 3);
        figure("fig-depth-ratio", line_chart(spec, series),
               "Post-LN's last-layer gradient norm divided by Pre-LN's (means), against depth. "
               "Above the dotted line Post-LN's last layer gets the larger gradient. Ratios: " +
                   escape_html(values) + ".");
      } else {
        out_ +=
            "<p class=\"note\">No Post-LN / Pre-LN ratio: the sweep needs both post_ln and "
            "pre_ln.</p>\n";
      }

      // Fig. 3 of Xiong et al.: the per-layer profile at the deepest depth.
      size_t deepest = 0;
      for (size_t i = 1; i < depths.size(); ++i)
        if (depths[i] > depths[deepest]) deepest = i;
      ChartSpec spec;
      spec.title = "Gradient norm of " + group + " per layer at L = " +
                   format_number(depths.empty() ? std::nan("") : depths[deepest]) +
                   ", at initialization";
      spec.x_title = "layer (1 = nearest the input)";
      spec.y_title = "gradient norm (log scale)";
      spec.x_integer = true;
      spec.y_log = true;
      std::vector<Series> series;
      for (const std::string& p : names) {
        const json::Value* profiles = pols.at(p).find("profiles");
        if (profiles == nullptr || profiles->is_null() || deepest >= profiles->size()) continue;
        const json::Value* g = profiles->at(deepest).find(group);
        if (g == nullptr || g->is_null()) continue;
        series.push_back(layer_series(numbers(*g), color(p)));
        spec.legend.push_back({p, color(p), 2, false, true});
      }
      figure("fig-depth-profile", line_chart(spec, series),
             "Gradient norm of each layer's <code>" + escape_html(group) +
                 "</code> weights in the deepest model of the sweep, mean over seeds and "
                 "batches (Xiong et al. 2020, Fig. 3). Post-LN's rise toward the output is the "
                 "picture the paper shows; at this width and init Pre-LN's profile need not be "
                 "flat.");
    });
    if (!present) skipped("depth_sweep", "depth-sweep chart");
    out_ += "</section>\n";
  }

  /// A per-layer series: x = 1..n.
  static Series layer_series(const std::vector<double>& y, const std::string& c) {
    Series s;
    s.y = y;
    for (size_t l = 0; l < y.size(); ++l) s.x.push_back(static_cast<double>(l + 1));
    s.color = c;
    s.markers = true;
    return s;
  }

  void fit_table(const json::Value& pols, const std::vector<std::string>& names,
                 const std::map<std::string, double>& theory) {
    out_ +=
        "<table class=\"fits\">\n<thead><tr><th>policy</th><th>last-layer slope [95% "
        "interval]</th><th>theory</th><th>first-layer slope [95% interval]</th><th>samples "
        "fitted</th></tr></thead>\n<tbody>\n";
    for (const std::string& p : names) {
      const json::Value& d = pols.at(p);
      const auto fit_text = [&](const char* key) {
        const json::Value* f = d.find(key);
        return f && f->is_object()
                   ? slope_text(number(*f, "slope"), number(*f, "lo"), number(*f, "hi"))
                   : std::string("n/a");
      };
      const json::Value* f = d.find("last_fit");
      const auto t = theory.find(p);
      out_ += "<tr><td>" + swatch(p) + escape_html(p) + "</td><td class=\"num\">" +
              fit_text("last_fit") + "</td><td class=\"num\">" +
              (t == theory.end() ? std::string("&#8212;") : format_number(t->second, 3)) +
              "</td><td class=\"num\">" + fit_text("first_fit") + "</td><td class=\"num\">" +
              (f && f->is_object() ? format_number(number(*f, "n")) : std::string("n/a")) +
              "</td></tr>\n";
    }
    out_ += "</tbody>\n</table>\n";
  }

  // ---- 2. LR sweep ----------------------------------------------------------

  /// The sweep's runs of one (policy, warm-up), by LR.
  struct SweepCurve {
    std::string policy;
    double warmup = 0;
    std::vector<const json::Value*> runs;  // sorted by lr
  };

  static std::string outcome(const json::Value& run) { return text(run, "outcome", "?"); }

  /// A run's final validation loss in bits; +inf for a diverged run (drawn
  /// as an x on the top edge).
  static double final_bits(const json::Value& run) {
    if (outcome(run) == "diverged") return HUGE_VAL;
    return bits(number(run, "final_val_loss"));
  }

  /// The gradient profile of `run` at the end of training (its last one).
  static const json::Value* end_profile(const json::Value& run) {
    const json::Value* ps = run.find("profiles");
    if (ps == nullptr || ps->is_null() || ps->size() == 0) return nullptr;
    const json::Value* found = &ps->as_array().back();
    for (const json::Value& p : ps->as_array())
      if (text(p, "moment") == "end of training") found = &p;
    return found;
  }

  std::string run_label(const json::Value& run) const {
    return text(run, "policy") + ", warm-up " + format_number(number(run, "warmup"));
  }

  void lr_sweep() {
    open_section("lr-sweep");
    look_for(
        "Each policy trains at each peak learning rate, with and without linear warm-up, on "
        "the first seed. Xiong et al. (2020, section 3) predict that Post-LN without warm-up "
        "fails above some LR at which Pre-LN still trains, that warm-up rescues it there, and "
        "that above a higher LR even warm-up does not. So look for Post-LN's solid curve "
        "(no warm-up) jumping up to the unigram line at a lower LR than its dashed curves and "
        "than Pre-LN's. A run <b>failed</b> when its final validation loss is not below the "
        "unigram loss (a model that learnt only byte frequencies) by the failure margin: open "
        "rings; a <b>diverged</b> run (a non-finite loss) is an &#215; on the top edge. The "
        "gradient profile of a failed Post-LN run should show vanishing gradients in its early "
        "layers.");
    const bool present = section("lr_sweep", [&](const json::Value& v) {
      if (runs_ == nullptr) return skipped("runs", "run to draw the sweep from");
      std::vector<SweepCurve> curves;
      std::vector<double> lrs, warmups;
      for (const json::Value& index : v.at("runs").as_array()) {
        const json::Value& run = run_at(index);
        const std::string p = run.at("policy").as_string();
        const double w = number(run, "warmup"), lr = number(run, "lr");
        lrs.push_back(lr);
        warmups.push_back(w);
        auto it = std::find_if(curves.begin(), curves.end(),
                               [&](const SweepCurve& c) { return c.policy == p && c.warmup == w; });
        if (it == curves.end()) it = curves.insert(curves.end(), SweepCurve{p, w, {}});
        it->runs.push_back(&run);
      }
      for (std::vector<double>* v2 : {&lrs, &warmups}) {
        std::sort(v2->begin(), v2->end());
        v2->erase(std::unique(v2->begin(), v2->end()), v2->end());
      }
      // Policies in colour order, warm-ups ascending; runs by LR.
      std::stable_sort(curves.begin(), curves.end(), [&](const SweepCurve& a, const SweepCurve& b) {
        const auto pa = std::find(policies_.begin(), policies_.end(), a.policy);
        const auto pb = std::find(policies_.begin(), policies_.end(), b.policy);
        return pa != pb ? pa < pb : a.warmup < b.warmup;
      });
      for (SweepCurve& c : curves)
        std::stable_sort(c.runs.begin(), c.runs.end(),
                         [](const json::Value* a, const json::Value* b) {
                           return number(*a, "lr") < number(*b, "lr");
                         });
      static const char* dashes[] = {"", "7 4", "2 3", "10 3 2 3"};
      const auto dash_of = [&](double w) {
        const size_t i =
            static_cast<size_t>(std::find(warmups.begin(), warmups.end(), w) - warmups.begin());
        return std::string(dashes[i % 4]);
      };
      const double unigram = bits(run_number("unigram_loss"));
      const double threshold = unigram - bits(run_number("fail_margin"));

      ChartSpec spec;
      spec.title = "Final validation loss against peak learning rate";
      spec.x_title = "peak learning rate (log scale)";
      spec.y_title = "validation bits per byte";
      spec.x_log = true;
      spec.x_ticks = lrs;
      if (std::isfinite(unigram)) {
        spec.y_top = unigram * 1.25;
        spec.y_include = {unigram};
      }
      std::vector<Series> series;
      for (const SweepCurve& c : curves) {
        Series s{{}, {}, color(c.policy), 2, false, true, dash_of(c.warmup), {}};
        for (const json::Value* run : c.runs) {
          s.x.push_back(number(*run, "lr"));
          s.y.push_back(final_bits(*run));
          s.hollow.push_back(outcome(*run) == "failed");
        }
        series.push_back(std::move(s));
        spec.legend.push_back({c.policy + ", warm-up " + format_number(c.warmup), color(c.policy),
                               2, false, false, dash_of(c.warmup)});
      }
      if (std::isfinite(unigram) && !lrs.empty()) {
        series.push_back({{lrs.front(), lrs.back()}, {unigram, unigram}, "#555555", 1.2});
        spec.legend.push_back({"unigram loss " + fixed(unigram, 3), "#555555", 1.2});
        if (std::isfinite(threshold)) {
          series.push_back({{lrs.front(), lrs.back()},
                            {threshold, threshold},
                            "#999999",
                            1,
                            false,
                            false,
                            "2 3"});
          spec.legend.push_back(
              {"failure threshold " + fixed(threshold, 3), "#999999", 1, false, false, "2 3"});
        }
      }
      if (std::any_of(series.begin(), series.end(), [](const Series& s) {
            return std::find(s.hollow.begin(), s.hollow.end(), true) != s.hollow.end();
          }))
        spec.legend.push_back({"failed run", "#555555", 2, false, false, "", true});
      figure("fig-lr-sweep", line_chart(spec, series),
             "Final validation loss in bits per byte of each run of the sweep, one colour per "
             "policy and one dash per warm-up length (solid: none). Open rings: failed runs; "
             "&#215; on the top edge: diverged runs. The solid grey line is the unigram loss of "
             "the training split, the dotted one the failure threshold below it.");
      sweep_table(curves, lrs);
      failed_profiles(curves, lrs, dash_of);
    });
    if (!present) skipped("lr_sweep", "learning-rate sweep");
    out_ += "</section>\n";
  }

  void sweep_table(const std::vector<SweepCurve>& curves, const std::vector<double>& lrs) {
    out_ += "<table class=\"sweep\">\n<thead><tr><th>policy</th><th>warm-up</th>";
    for (const double lr : lrs) out_ += "<th>LR " + format_number(lr) + "</th>";
    out_ += "</tr></thead>\n<tbody>\n";
    for (const SweepCurve& c : curves) {
      out_ += "<tr><td>" + swatch(c.policy) + escape_html(c.policy) + "</td><td class=\"num\">" +
              format_number(c.warmup) + "</td>";
      for (const double lr : lrs) {
        const auto it = std::find_if(c.runs.begin(), c.runs.end(),
                                     [&](const json::Value* r) { return number(*r, "lr") == lr; });
        if (it == c.runs.end()) {
          out_ += "<td>&#8212;</td>";
          continue;
        }
        const std::string o = outcome(**it);
        const double b = bits(number(**it, "final_val_loss"));
        if (o == "trained")
          out_ += "<td class=\"num\">" + fixed(b, 3) + "</td>";
        else if (o == "diverged")  // its last validation loss predates the divergence
          out_ += "<td class=\"num diverged\">diverged</td>";
        else
          out_ += "<td class=\"num " + slug(o) + "\">" +
                  (std::isfinite(b) ? fixed(b, 3) + " " : std::string()) + escape_html(o) + "</td>";
      }
      out_ += "</tr>\n";
    }
    out_ +=
        "</tbody>\n</table>\n<p class=\"caption\">Final validation bits per byte of each run; "
        "<span class=\"failed\">failed</span> and <span class=\"diverged\">diverged</span> runs "
        "are marked.</p>\n";
  }

  /// The run of `c` at `lr` when it trained and has a gradient profile.
  static const json::Value* trained_at(const SweepCurve& c, double lr) {
    for (const json::Value* r : c.runs)
      if (number(*r, "lr") == lr && outcome(*r) == "trained" && end_profile(*r)) return r;
    return nullptr;
  }

  /// Per LR where some run failed and another trained (the lowest and the
  /// highest such LR): the end-of-training fc2 profile of the failed runs
  /// beside trained runs at the same LR.
  template <class DashOf>
  void failed_profiles(const std::vector<SweepCurve>& curves, const std::vector<double>& lrs,
                       const DashOf& dash_of) {
    std::vector<double> chosen;
    for (const double lr : lrs) {
      bool bad = false, good = false;
      for (const SweepCurve& c : curves)
        for (const json::Value* r : c.runs)
          if (number(*r, "lr") == lr && end_profile(*r)) {
            (outcome(*r) == "trained" ? good : bad) = true;
          }
      if (bad && good) chosen.push_back(lr);
    }
    if (chosen.size() > 2) chosen = {chosen.front(), chosen.back()};
    if (chosen.empty()) {  // the failed runs of the largest LR, alone
      for (const SweepCurve& c : curves)
        for (const json::Value* r : c.runs)
          if (end_profile(*r) && outcome(*r) != "trained" &&
              (chosen.empty() || number(*r, "lr") > chosen.front()))
            chosen = {number(*r, "lr")};
      if (chosen.empty()) {
        out_ +=
            "<p class=\"note\">No run of the sweep failed with a gradient profile, so there is "
            "no failed profile to show.</p>\n";
        return;
      }
      out_ +=
          "<p class=\"note\">No LR of the sweep has both a failed and a trained run, so the "
          "failed runs at the largest LR are shown without a trained one beside them.</p>\n";
    }
    int k = 0;
    for (const double lr : chosen) {
      ChartSpec spec;
      spec.title = "fc2 gradient norm per layer at the end of training, LR " + format_number(lr);
      spec.x_title = "layer (1 = nearest the input)";
      spec.y_title = "gradient norm (log scale)";
      spec.x_integer = true;
      spec.y_log = true;
      // The failed runs; beside each, its policy's trained run with the
      // least warm-up (warm-up rescued it) and, at the first failed run's
      // warm-up, the other policies' trained runs (they train where it fails).
      std::vector<const json::Value*> shown;
      const json::Value* first_failed = nullptr;
      for (const SweepCurve& c : curves)
        for (const json::Value* r : c.runs)
          if (number(*r, "lr") == lr && end_profile(*r) && outcome(*r) != "trained") {
            shown.push_back(r);
            if (first_failed == nullptr) first_failed = r;
            for (const SweepCurve& d : curves)
              if (d.policy == c.policy)
                if (const json::Value* t = trained_at(d, lr);
                    t && std::find(shown.begin(), shown.end(), t) == shown.end()) {
                  shown.push_back(t);
                  break;
                }
          }
      for (const SweepCurve& c : curves)
        if (c.policy != text(*first_failed, "policy") &&
            c.warmup == number(*first_failed, "warmup"))
          if (const json::Value* t = trained_at(c, lr)) shown.push_back(t);
      std::vector<Series> series;
      for (const SweepCurve& c : curves)
        for (const json::Value* r : c.runs) {
          if (std::find(shown.begin(), shown.end(), r) == shown.end()) continue;
          const json::Value* p = end_profile(*r);
          const json::Value* norms = p ? p->find("norms") : nullptr;
          const json::Value* g = norms && norms->is_object() ? norms->find("fc2") : nullptr;
          if (g == nullptr || g->is_null()) continue;
          Series s = layer_series(numbers(*g), color(c.policy));
          s.dash = dash_of(c.warmup);
          const bool bad = outcome(*r) != "trained";
          if (bad) s.hollow.assign(s.y.size(), true);
          series.push_back(std::move(s));
          spec.legend.push_back({run_label(*r) + " (" + outcome(*r) + ")", color(c.policy), 2,
                                 false, false, dash_of(c.warmup), bad});
        }
      const bool beside = std::any_of(shown.begin(), shown.end(), [](const json::Value* r) {
        return outcome(*r) == "trained";
      });
      figure("fig-lr-sweep-profile-" + std::to_string(++k), line_chart(spec, series),
             "Gradient norm of each layer's <code>fc2</code> weights after the last step of "
             "sweep runs at peak LR " +
                 format_number(lr) + ": the runs that failed (open rings)" +
                 (beside ? " beside runs that trained at the same LR: the same policy with the "
                           "least warm-up that rescued it, and the other policies at the first "
                           "failed run's warm-up."
                         : "; no run trained at this LR.") +
                 " A failed run whose early layers get gradients orders of magnitude below its "
                 "last ones has stopped learning below the top of the stack.");
    }
  }

  // ---- 3. Tuned comparison --------------------------------------------------

  void tuned() {
    open_section("tuned");
    look_for(
        "Each policy at its own best (LR, warm-up) of the sweep, on every seed: the fair "
        "comparison. The NormFormer paper reports NormFormer ahead of Pre-LN at "
        "125M&#8211;2.7B parameters; the paper says nothing about a model this small, so "
        "either may be ahead here, and a difference smaller than its standard errors is no "
        "difference. Beside it, the mismatched pair: "
        "Pre-LN at a fixed LR that is not its best and NormFormer at a higher one, the habit "
        "that can make any new variant look better. Compare the two halves of the table: a win "
        "that appears only in the mismatched pair was manufactured by the learning rate.");
    const bool present = section("tuned", [&](const json::Value& v) {
      if (runs_ == nullptr) return skipped("runs", "run to draw the training curves from");
      if (v.as_array().empty()) {
        out_ +=
            "<p class=\"note\">No policy trained at any setting of the sweep (experiment 2), so "
            "no policy has a best setting and there are no tuned curves; the mismatched pair "
            "below still ran.</p>\n";
        return entries_table();
      }
      std::vector<Series> full;
      ChartSpec spec;
      spec.title = "Training curves of the tuned runs (first seed)";
      spec.x_title = "step";
      spec.y_title = "bits per byte";
      spec.y_cap = 3;
      double last_step = 0;
      std::vector<std::pair<std::string, const json::Value*>> curves;  // label, curve
      for (const json::Value& e : v.as_array()) {
        const json::Value& ids = e.at("runs");
        if (ids.size() == 0) continue;
        const json::Value& run = run_at(ids.at(0));
        const json::Value* c = run.find("curve");
        if (c == nullptr || c->is_null()) continue;
        const std::string p = e.at("policy").as_string();
        curves.emplace_back(p, c);
        for (const double s : numbers_at(*c, "step"))
          if (std::isfinite(s)) last_step = std::max(last_step, s);
        spec.legend.push_back({p + ": LR " + format_number(number(e, "lr")) + ", warm-up " +
                                   format_number(number(e, "warmup")),
                               color(p)});
      }
      const double zoom_from = std::floor(0.7 * last_step);
      // A window of about 1/12 of the run: the noise of single batches goes,
      // the shape of the curve stays.
      const auto half = static_cast<size_t>(std::max(1.0, std::floor(last_step / 24)));
      std::vector<Series> zoomed;
      for (const auto& [p, c] : curves) {
        std::vector<double> train = numbers_at(*c, "train_loss");
        for (double& x : train) x = bits(x);
        Series t{numbers_at(*c, "step"), centered_average(train, half), color(p), 2};
        std::vector<double> val = numbers_at(*c, "val_loss");
        for (double& x : val) x = bits(x);
        Series vs{numbers_at(*c, "val_step"), val, color(p), 1, false, true, "2 3"};
        for (const Series* s : {&t, &vs}) {
          Series z = *s;
          z.x.clear();
          z.y.clear();
          for (size_t i = 0; i < std::min(s->x.size(), s->y.size()); ++i)
            if (s->x[i] >= zoom_from) {
              z.x.push_back(s->x[i]);
              z.y.push_back(s->y[i]);
            }
          zoomed.push_back(std::move(z));
        }
        full.push_back(std::move(t));
        full.push_back(std::move(vs));
      }
      spec.legend.push_back({"train loss, smoothed", "#555555", 2});
      spec.legend.push_back({"validation loss", "#555555", 1, false, true, "2 3"});
      const std::string smoothing =
          " The train loss is smoothed by a centred moving average over " +
          std::to_string(2 * half + 1) +
          " steps (fewer at the ends): unlike an exponential average it does not lag behind a "
          "falling loss. The validation loss (dots) is measured on held-out windows.";
      figure("fig-tuned-curves", line_chart(spec, full),
             "Loss in bits per byte against the training step of each policy's tuned setting, "
             "first seed." +
                 smoothing);
      ChartSpec zoom = spec;
      zoom.title = "The end of training, zoomed (steps " + format_number(zoom_from) + " to " +
                   format_number(last_step) + ")";
      zoom.y_cap = 0;
      figure("fig-tuned-zoom", line_chart(zoom, zoomed),
             "The last 30% of the steps of the chart above, on a y range of their own: the "
             "differences that decide the comparison are a few hundredths of a bit.");
      entries_table();
    });
    if (!present) skipped("tuned", "tuned comparison");
    out_ += "</section>\n";
  }

  /// The final validation loss per seed, mean and s.e., of "tuned" and
  /// "mismatched" in one table.
  void entries_table() {
    out_ +=
        "<table class=\"entries\">\n<thead><tr><th>comparison</th><th>policy</th><th>peak "
        "LR</th><th>warm-up</th><th>final validation bits per byte, per seed</th><th>mean "
        "&#177; s.e.</th></tr></thead>\n<tbody>\n";
    std::string differences;
    for (const char* key : {"tuned", "mismatched"}) {
      const json::Value* v = r_.find(key);
      const char* label =
          std::string_view(key) == "tuned" ? "tuned: each at its best LR" : "mismatched: fixed LRs";
      if (v == nullptr || v->is_null()) {
        out_ += std::string("<tr><td>") + label +
                "</td><td colspan=\"5\" class=\"note\">not in results.json</td></tr>\n";
        continue;
      }
      try {
        std::vector<const json::Value*> entries;  // in colour order
        for (const std::string& p : policies_)
          for (const json::Value& e : v->as_array())
            if (e.at("policy").as_string() == p) entries.push_back(&e);
        std::map<std::string, double> means;
        for (const json::Value* entry : entries) {
          const json::Value& e = *entry;
          const std::string p = e.at("policy").as_string();
          std::string seeds;
          for (const double x : numbers_at(e, "final_val_loss"))
            seeds += (seeds.empty() ? "" : ", ") + fixed(bits(x), 3);
          const double mean = bits(number(e, "mean")), se = bits(number(e, "se"));
          means[p] = mean;
          out_ += std::string("<tr class=\"") + key + "\"><td>" + label + "</td><td>" + swatch(p) +
                  escape_html(p) + "</td><td class=\"num\">" + format_number(number(e, "lr")) +
                  "</td><td class=\"num\">" + format_number(number(e, "warmup")) +
                  "</td><td class=\"num\">" + seeds + "</td><td class=\"num\">" + fixed(mean, 3) +
                  (std::isfinite(se) ? " &#177; " + fixed(se, 3) : std::string()) + "</td></tr>\n";
        }
        if (means.contains("normformer") && means.contains("pre_ln")) {
          const double d = means["normformer"] - means["pre_ln"];
          char text[32];
          std::snprintf(text, sizeof text, "%+.3f", d);
          if (std::isfinite(d))
            differences += std::string(differences.empty() ? "" : "; ") + key + " " + text;
        }
      } catch (const Error& e) {
        throw Error(normlab::detail::concat("(in section \"", key, "\") ", e.what()));
      }
    }
    out_ += "</tbody>\n</table>\n";
    if (!differences.empty())
      out_ +=
          "<p class=\"caption\">normformer &#8722; pre_ln, difference of the means in bits "
          "per byte (negative: NormFormer ahead): " +
          differences +
          ". The findings give the paired difference over seeds with its 95% interval.</p>\n";
  }

  // ---- 4. LR stress ---------------------------------------------------------

  void lr_stress() {
    open_section("lr-stress");
    look_for(
        "The learning rate is multiplied by a constant factor every step, without clipping, "
        "until the loss explodes (non-finite, or above 3x its first value). The NormFormer "
        "paper reports that NormFormer survives more steps than Pre-LN, at 125M+ parameters; "
        "Post-LN, with no warm-up here and the largest last-layer gradients at initialization "
        "(experiment 1), is expected to explode first. The curves fall while the LR is "
        "useful and turn up where it becomes too large. A seed that reaches the cap without "
        "exploding is <b>censored</b>: it survived at least that many steps (\"&gt;= N\"), so "
        "when every seed of two policies is censored, the cap decides nothing.");
    const bool present = section("lr_stress", [&](const json::Value& v) {
      ChartSpec spec;
      spec.title = "Train loss as the learning rate rises (first seed)";
      spec.x_title = "learning rate (log scale)";
      spec.y_title = "train bits per byte";
      spec.x_log = true;
      spec.y_cap = 3;
      std::vector<Series> series;
      std::string rows;
      for (const std::string& p : ordered(v)) {
        const json::Value& c = v.at(p);
        std::vector<double> loss = numbers_at(c, "loss");
        for (double& x : loss) x = bits(x);
        series.push_back({numbers_at(c, "lr"), loss, color(p)});
        const std::string survived = survived_text(c);
        spec.legend.push_back({p + " (survived " + survived + " steps)", color(p)});
        rows += "<tr><td>" + swatch(p) + escape_html(p) + "</td><td class=\"num\">" +
                escape_html(survived) + "</td></tr>\n";
      }
      figure("fig-lr-stress", line_chart(spec, series),
             "Train loss in bits per byte against the learning rate of the step, one line per "
             "policy (the first seed); the legend gives the steps each seed survived, \"&gt;= "
             "N\" when the seed reached the cap of N steps without exploding.");
      out_ +=
          "<table class=\"stress\">\n<thead><tr><th>policy</th><th>steps survived, per "
          "seed</th></tr></thead>\n<tbody>\n" +
          rows + "</tbody>\n</table>\n";
    });
    if (!present) skipped("lr_stress", "LR-stress chart");
    out_ += "</section>\n";
  }

  /// "96, >= 250, 120" from survived_by_seed / censored_by_seed, else from
  /// survived / censored; "n/a" without either.
  static std::string survived_text(const json::Value& c) {
    std::vector<double> survived = numbers_at(c, "survived_by_seed");
    std::vector<bool> censored;
    if (const json::Value* b = c.find("censored_by_seed"); b && b->is_array())
      for (const json::Value& x : b->as_array()) censored.push_back(x.is_bool() && x.as_bool());
    if (survived.empty()) {
      const json::Value* s = c.find("survived");
      if (s == nullptr || !s->is_number()) return "n/a";
      survived = {s->as_double()};
      const json::Value* cz = c.find("censored");
      censored = {cz && cz->is_bool() && cz->as_bool()};
    }
    std::string out;
    for (size_t i = 0; i < survived.size(); ++i)
      out += (i ? ", " : "") + std::string(i < censored.size() && censored[i] ? ">= " : "") +
             format_number(survived[i]);
    return out;
  }

  // ---- Setup ----------------------------------------------------------------

  void key_values(const char* key, const char* heading) {
    out_ += std::string("<h3>") + heading + "</h3>\n";
    const bool present = section(key, [&](const json::Value& v) {
      out_ += "<table class=\"kv\">\n";
      for (const auto& [k, value] : v.as_object())
        out_ += "<tr><th>" + escape_html(k) + "</th><td>" + escape_html(value_text(value, 6)) +
                "</td></tr>\n";
      out_ += "</table>\n";
    });
    if (!present) skipped(key, "table of it");
  }

  void setup() {
    open_section("setup");
    out_ += "<h3>The command</h3>\n";
    const json::Value* command = r_.find("command");
    if (command && command->is_string() && !command->as_string().empty())
      out_ += "<p>To reproduce this page, run:</p>\n<pre class=\"command\">" +
              escape_html(command->as_string()) + "</pre>\n";
    else
      out_ += "<p class=\"note\">results.json does not record the command that made it.</p>\n";
    out_ += "<p>";
    if (const json::Value* s = r_.find("scale"); s && s->is_string())
      out_ += "Scale preset: <code>" + escape_html(s->as_string()) + "</code>. ";
    if (const json::Value* e = r_.find("elapsed_s"); e && e->is_number())
      out_ += "Elapsed: " + duration_text(e->as_double()) + ". ";
    if (const json::Value* m = r_.find("machine"); m && m->is_object())
      out_ += "Machine: " + escape_html(value_text(*m, 6)) + ".";
    out_ += "</p>\n";
    out_ += "<div class=\"columns\">\n<div>\n";
    key_values("run", "Run");
    out_ += "</div>\n<div>\n";
    key_values("config", "Shared model config");
    out_ += "</div>\n</div>\n</section>\n";
  }

  static const char* css() {
    return "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
           "max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}\n"
           "h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;"
           "padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1rem}\n"
           "table{border-collapse:collapse;margin:.5rem 0 1rem}"
           "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}\n"
           "thead th{background:#f2f2f2}.entries td,.sweep td,.fits td,"
           ".results td{white-space:nowrap}td.num{text-align:right;"
           "font-variant-numeric:tabular-nums}.kv th{font-weight:normal;background:#f7f7f7}\n"
           ".swatch{display:inline-block;width:.8em;height:.8em;margin-right:.4em;"
           "border-radius:2px}\n"
           ".toc>ul{columns:2;list-style:none;padding-left:0}.toc ul "
           "ul{padding-left:1.2rem;margin:0}\n"
           ".look{background:#f3f7fb;border-left:4px solid #0072B2;padding:.5rem .8rem;"
           "margin:.8rem 0}\n"
           ".placement{border-top:1px solid #eee;margin-top:1rem}"
           ".eq{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;"
           "background:#fafafa;padding:.4rem .7rem;font-size:.9rem}\n"
           ".config{font-size:.85rem;color:#333}\n"
           "svg.diagram{max-width:100%;height:auto;display:block;margin:.4rem 0}\n"
           "svg.diagram text{font-size:12px;fill:#222}svg.diagram .sub{font-size:11px;fill:#777}\n"
           "svg.diagram .wire{fill:none;stroke:#444;stroke-width:1.4}svg.diagram .head{fill:#444}\n"
           "svg.diagram .ln{fill:#fff1c2;stroke:#b8860b}svg.diagram .op{fill:#e8f0fa;"
           "stroke:#5577aa}svg.diagram .extra{stroke-dasharray:4 2;stroke-width:2}\n"
           "svg.diagram .plus{fill:#fff;stroke:#444;stroke-width:1.4}\n"
           ".findings{list-style:none;padding:0}.findings li{margin:.5rem 0;padding:.4rem .7rem;"
           "border-left:4px solid #888;background:#f8f8f8}\n"
           ".badge{display:inline-block;min-width:6.5em;text-align:center;font-size:.8rem;"
           "font-weight:600;padding:.05rem .4rem;border-radius:3px;color:#fff;background:#666;"
           "margin-right:.4em}\n"
           ".scale{display:inline-block;font-size:.75rem;padding:0 .35rem;border:1px solid #999;"
           "border-radius:3px;margin-right:.4em;color:#444}.scale-paper{border-style:dashed}\n"
           ".findings li.shown{border-color:#0072B2}.shown .badge{background:#0072B2}\n"
           ".findings li.not-shown{border-color:#D55E00}.not-shown .badge{background:#D55E00}\n"
           ".source,.rule,.detail{color:#444;font-size:.88rem;margin-top:.2rem}"
           ".see{font-size:.85rem}\n"
           "td.failed,span.failed{background:#fde2cf}td.diverged,span.diverged{background:"
           "#f6b9a0}\n"
           "pre.command{background:#f4f4f4;padding:.6rem .8rem;overflow-x:auto;"
           "white-space:pre-wrap;word-break:break-all}\n"
           ".note{color:#666;font-style:italic}figure{margin:1.2rem 0}\n"
           "figcaption,.caption{color:#444;font-size:.9rem;max-width:46rem}\n"
           "svg.chart{max-width:100%;height:auto;display:block}\n"
           "svg.chart text{font-size:12px;fill:#222}svg.chart .tick{font-size:11px;fill:#444}\n"
           "svg.chart .title{font-size:14px;font-weight:600}\n"
           "svg.chart .note{font-size:11px;fill:#666;font-style:italic}\n"
           "svg.chart .grid{stroke:#e6e6e6;stroke-width:1}svg.chart .frame{fill:none;"
           "stroke:#888}\n"
           ".columns{display:flex;flex-wrap:wrap;gap:0 2.5rem}\n"
           "footer{margin-top:2.5rem;color:#777;font-size:.85rem}\n";
  }

  const json::Value& r_;
  const json::Array* runs_ = nullptr;
  std::vector<std::string> policies_;  // colour order
  std::string out_;
};

}  // namespace detail::report

/// The report.html of a compare run: self-contained (inline CSS and SVG, no
/// script, no network).
///
/// Requires: `results` is an object in the schema compare_results_json writes
/// (schema 2, experiments/results_json.hpp): title, command, scale, elapsed_s,
/// machine, run, config, policies, depth_sweep, runs, lr_sweep, tuned,
/// mismatched, lr_stress, table, findings — each optional. Arrays of numbers
/// may hold null (or NaN) for a value that is not finite; x and y arrays pair
/// up to the shorter one.
/// Throws: Error naming the section when a present section has the wrong
/// shape (a string where an array of numbers belongs, a run index outside
/// "runs").
/// Ensures: a table of contents linking every section; an absent section
/// gives a note instead of its charts or tables; losses in bits per byte;
/// every text from `results` is escaped; the same `results` gives the same
/// bytes.
inline std::string render_compare_report(const json::Value& results) {
  return detail::report::ReportWriter(results).render();
}

}  // namespace v0
}  // namespace normlab
