// apps/normlab/report/compare_report.hpp — report.html of `normlab compare`: one
// self-contained page (inline CSS and SVG; no script, no network access) that
// turns results.json into the run's findings, its table, four kinds of line
// chart and its setup.
//
//   const json::Value results = json::parse_file("results.json");
//   std::ofstream("report.html") << render_compare_report(results);
//
// The charts are drawn by a small SVG line-chart helper (detail::report):
// linear or log axes with "nice" ticks, gaps where a value is null or not
// finite, and a y range taken from the finite values — capped, on loss
// charts, at 3x the largest first value, so that one diverging loss does not
// flatten every other curve; values above the range are drawn on the top edge.
// Output is a pure function of the JSON: the same document gives the same bytes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "normlab/config.hpp"
#include "normlab/core/error.hpp"
#include "normlab/io/json.hpp"

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
  bool markers = false;  ///< a dot on every point
};

/// One row of a legend: a short stroke in the style of a line, and its text.
struct LegendEntry {
  std::string label;
  std::string color;
  double width = 2;
  bool dashed = false;
  bool marker = false;
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
  if (spec.y_from_zero && !spec.y_log) y0 = std::min(y0, 0.0);
  const double cap = spec.y_cap * first_max;
  if (a.any && spec.y_cap > 0 && first_max > 0 && cap > y0 && y1 > cap) y1 = cap;
  a.x = spec.x_log ? log_axis(x0, x1) : spec.x_integer ? integer_axis(x0, x1) : linear_axis(x0, x1);
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
inline std::string stroke(const std::string& color, double width, bool dashed) {
  return "stroke=\"" + escape_html(color) + "\" stroke-width=\"" + format_number(width) + "\"" +
         (dashed ? " stroke-dasharray=\"6 4\"" : "");
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
  const double width = 760, left = 72, top = 40, plot_h = 260;
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
    const std::string style = stroke(s.color, s.width, s.dashed);
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
        if (s.markers)
          dots += "<circle cx=\"" + coord(run.back().first) + "\" cy=\"" +
                  coord(run.back().second) + "\" r=\"2.5\" " + fill + "/>";
        continue;
      }
      // A line that breaks off at a non-finite value (a diverged loss) gets
      // an x on the top edge there.
      if (!run.empty() && std::isfinite(s.x[i]) && !std::isfinite(s.y[i]) &&
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
           "\" y2=\"" + coord(y) + "\" " + stroke(e.color, e.width, e.dashed) + "/>";
      if (e.marker)
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

/// Builds the page; one instance per render_compare_report call.
class ReportWriter {
 public:
  explicit ReportWriter(const json::Value& results) : r_(results) {
    normlab::detail::check(r_.is_object(),
                           "render_compare_report: results must be a JSON object, found ",
                           r_.describe());
    section("policies", [&](const json::Value& v) {
      for (const json::Value& p : v.as_array()) add_policy(p.as_string());
    });
    // Policies that only appear inside a section still get a colour of their own.
    for (const char* key : {"grad_norms_at_init", "training", "no_warmup", "lr_stress"})
      section(key, [&](const json::Value& v) {
        for (const auto& [name, data] : v.as_object()) add_policy(name);
      });
    section("grad_norms_training", [&](const json::Value& v) {
      for (const json::Value& m : v.as_array())
        for (const auto& [name, data] : m.at("norms").as_object()) add_policy(name);
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
    if (const json::Value* s = r_.find("summary"); s && s->is_string())
      out_ += "<p class=\"summary\">" + escape_html(s->as_string()) + "</p>\n";
    findings();
    table();
    grad_norms();
    grad_norms_training();
    curves("training", "2. Training with learning-rate warm-up", "Loss with warm-up",
           "Each policy trains the same model on the same data and budget, with linear warm-up "
           "then decay. The NormFormer paper (Shleifer, Weston &amp; Ott 2021) reports that "
           "NormFormer reaches a given validation loss in fewer steps than Pre-LN.");
    curves("no_warmup", "3. Training without warm-up", "Loss without warm-up",
           "The same peak learning rate from the first step. Xiong et al. (2020, section 3.2) "
           "report that Post-LN fails or lags without warm-up at a learning rate where Pre-LN "
           "trains.");
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

  void skipped(const char* key, const char* what) {
    out_ += std::string("<p class=\"note\">Skipped: results.json has no \"") + key +
            "\" section, so there is no " + what + ".</p>\n";
  }

  void findings() {
    out_ += "<section id=\"findings\">\n<h2>Findings</h2>\n";
    const bool present = section("findings", [&](const json::Value& v) {
      out_ +=
          "<p>Each claim from the papers, judged on this run by the rule in its detail: "
          "small models and short runs need not reproduce a paper's picture.</p>\n"
          "<ul class=\"findings\">\n";
      for (const json::Value& f : v.as_array()) {
        const json::Value* shows = f.find("shows");
        const char* cls = "inconclusive";
        if (shows && shows->is_bool()) cls = shows->as_bool() ? "shown" : "not-shown";
        const std::string badge = std::string(cls) == "not-shown" ? "not shown" : cls;
        out_ += std::string("<li class=\"") + cls + "\"><span class=\"badge\">" + badge +
                "</span> <span class=\"claim\">" + escape_html(f.at("claim").as_string()) +
                "</span>";
        if (const json::Value* d = f.find("detail"); d && d->is_string())
          out_ += "<div class=\"detail\">" + escape_html(d->as_string()) + "</div>";
        out_ += "</li>\n";
      }
      out_ += "</ul>\n";
    });
    if (!present) skipped("findings", "list of findings");
    out_ += "</section>\n";
  }

  void table() {
    out_ += "<section id=\"table\">\n<h2>Results table</h2>\n";
    const bool present = section("table", [&](const json::Value& v) {
      out_ += "<table class=\"results\">\n<thead><tr>";
      for (const json::Value& c : v.at("columns").as_array())
        out_ += "<th>" + escape_html(value_text(c, 4)) + "</th>";
      out_ += "</tr></thead>\n<tbody>\n";
      for (const json::Value& row : v.at("rows").as_array()) {
        out_ += "<tr>";
        bool first = true;
        for (const json::Value& cell : row.as_array()) {
          const std::string text = value_text(cell, 4);
          out_ += numeric_cell(cell) ? "<td class=\"num\">" : "<td>";
          if (first && cell.is_string() &&
              std::find(policies_.begin(), policies_.end(), text) != policies_.end())
            out_ += "<span class=\"swatch\" style=\"background:" + color(text) + "\"></span>";
          out_ += escape_html(text) + "</td>";
          first = false;
        }
        out_ += "</tr>\n";
      }
      out_ += "</tbody>\n</table>\n";
    });
    if (!present) skipped("table", "results table");
    out_ += "</section>\n";
  }

  void figure(const std::string& svg, const std::string& caption) {
    out_ += "<figure>\n" + svg + "<figcaption>" + caption + "</figcaption>\n</figure>\n";
  }

  /// The policies of `section`, in the order of the page's colours.
  std::vector<std::string> ordered(const json::Value& section) const {
    std::vector<std::string> out;
    for (const std::string& p : policies_)
      if (section.as_object().contains(p)) out.push_back(p);
    return out;
  }

  void grad_norms() {
    out_ += "<section id=\"grad-norms\">\n<h2>1. Gradient norm per layer at initialization</h2>\n";
    const bool present = section("grad_norms_at_init", [&](const json::Value& v) {
      out_ +=
          "<p>The Frobenius norm of each layer's weight gradient, by parameter group, before "
          "any update. Xiong et al. (2020, Fig. 3 and Theorem 1) report that at initialization "
          "Post-LN's feed-forward weight gradients grow toward the last layers while Pre-LN's "
          "stay about flat. The NormFormer paper's per-layer fc2 picture is measured early in "
          "training, not at initialization: the next section tests it. A log scale is used "
          "when a chart's values span more than two decades.</p>\n";
      const std::vector<std::string> names = ordered(v);
      std::vector<std::string> groups;
      for (const std::string& p : names)
        for (const auto& [group, values] : v.at(p).as_object())
          if (std::find(groups.begin(), groups.end(), group) == groups.end())
            groups.push_back(group);
      // fc2 first (the group both papers plot), then fc1, then the rest as listed.
      for (const char* g : {"fc1", "fc2"})
        if (auto it = std::find(groups.begin(), groups.end(), g); it != groups.end())
          std::rotate(groups.begin(), it, it + 1);
      if (groups.empty()) out_ += "<p class=\"note\">No parameter group has values.</p>\n";
      for (const std::string& group : groups)
        profile_chart(v, group, "Gradient norm of " + group + " per layer, at initialization",
                      "Gradient norm of each layer's <code>" + escape_html(group) +
                          "</code> weights at initialization, one line per policy.");
    });
    if (!present) skipped("grad_norms_at_init", "gradient-norm chart");
    out_ += "</section>\n";
  }

  /// One chart of `group` per layer, one line per policy of `v` (policy ->
  /// group -> per layer); the caption names the policies that lack the group.
  void profile_chart(const json::Value& v, const std::string& group, const std::string& title,
                     const std::string& caption) {
    ChartSpec spec;
    spec.title = title;
    spec.x_title = "layer";
    spec.x_integer = true;
    spec.y_from_zero = true;
    std::vector<Series> series;
    std::vector<std::string> missing;
    double lo = HUGE_VAL, hi = 0;
    for (const std::string& p : ordered(v)) {
      const json::Value* values = v.at(p).find(group);
      if (values == nullptr || values->is_null()) {
        missing.push_back(p);
        continue;
      }
      Series s;
      try {
        s.y = numbers(*values);
      } catch (const Error& e) {
        throw Error(normlab::detail::concat("\"", p, "\" group \"", group, "\": ", e.what()));
      }
      for (size_t l = 0; l < s.y.size(); ++l) {
        s.x.push_back(static_cast<double>(l));
        if (std::isfinite(s.y[l]) && s.y[l] > 0) {
          lo = std::min(lo, s.y[l]);
          hi = std::max(hi, s.y[l]);
        }
      }
      s.color = color(p);
      s.markers = true;
      series.push_back(std::move(s));
      spec.legend.push_back({p, color(p), 2, false, true});
    }
    spec.y_log = hi > 0 && hi > 100 * lo;
    spec.y_title = spec.y_log ? "gradient norm (log scale)" : "gradient norm";
    std::string text = caption;
    if (!missing.empty()) text += " No such group in " + list(missing) + ".";
    figure(line_chart(spec, series), text);
  }

  /// The fc2 profile at each moment of grad_norms_training: one chart per moment.
  void grad_norms_training() {
    out_ +=
        "<section id=\"grad-norms-training\">\n<h2>1b. Gradient norm per layer during "
        "training</h2>\n";
    const bool present = section("grad_norms_training", [&](const json::Value& v) {
      out_ +=
          "<p>The same measurement on the warm-up run of experiment 2, after some of its "
          "updates. The NormFormer paper (Shleifer, Weston &amp; Ott 2021) reports that early "
          "in training Pre-LN's early layers get larger fc2 gradients than its late ones, and "
          "that NormFormer brings the layers closer together. Only fc2 is drawn; results.json "
          "and grad_norms_training.csv hold every group.</p>\n";
      if (v.as_array().empty()) out_ += "<p class=\"note\">No moment was measured.</p>\n";
      for (const json::Value& m : v.as_array()) {
        const std::string step = value_text(m.at("step"), 6);
        const std::string moment = m.at("moment").as_string();
        profile_chart(m.at("norms"), "fc2",
                      "Gradient norm of fc2 per layer, after " + step + " steps (" + moment + ")",
                      "Gradient norm of each layer's <code>fc2</code> weights after " +
                          escape_html(step) + " training steps (" + escape_html(moment) +
                          "), one line per policy." + seeds_mean_note());
      }
    });
    if (!present) skipped("grad_norms_training", "chart of gradient norms during training");
    out_ += "</section>\n";
  }

  /// Training curves of section `key` (training or no_warmup).
  void curves(const char* key, const char* heading, const char* title, const char* intro) {
    out_ += std::string("<section id=\"") + key + "\">\n<h2>" + heading + "</h2>\n";
    const bool present = section(key, [&](const json::Value& v) {
      out_ += std::string("<p>") + intro + "</p>\n";
      ChartSpec spec;
      spec.title = title;
      spec.x_title = "step";
      spec.y_title = "loss";
      spec.y_cap = 3;
      std::vector<Series> series;
      for (const std::string& p : ordered(v)) {
        const json::Value& c = v.at(p);
        Series val{numbers_at(c, "val_step"), numbers_at(c, "val_loss"), color(p), 2.2};
        Series train{numbers_at(c, "step"), numbers_at(c, "train_loss"), color(p), 1, true};
        if (!train.y.empty()) series.push_back(std::move(train));
        if (!val.y.empty()) series.push_back(std::move(val));
        spec.legend.push_back({p, color(p), 2.2});
      }
      spec.legend.push_back({"validation loss", "#666666", 2.2});
      spec.legend.push_back({"train loss", "#666666", 1, true});
      figure(line_chart(spec, series),
             "Validation loss (solid) and train loss (dashed) against the training step, one "
             "colour per policy." +
                 seeds_note());
    });
    if (!present) skipped(key, "chart of its training curves");
    out_ += "</section>\n";
  }

  void lr_stress() {
    out_ += "<section id=\"lr-stress\">\n<h2>4. LR-stress test</h2>\n";
    const bool present = section("lr_stress", [&](const json::Value& v) {
      out_ +=
          "<p>The learning rate grows by a constant factor every step until the loss "
          "explodes (NaN, or above 3x its first value); the legend gives the steps each policy "
          "survived, \"&gt;= N\" when it reached the cap of N steps without exploding. The "
          "NormFormer paper "
          "(Shleifer, Weston &amp; Ott 2021) reports that NormFormer survives more steps than "
          "Pre-LN.</p>\n";
      ChartSpec spec;
      spec.title = "Loss as the learning rate rises";
      spec.x_title = "learning rate (log scale)";
      spec.y_title = "train loss";
      spec.x_log = true;
      spec.y_cap = 3;
      std::vector<Series> series;
      for (const std::string& p : ordered(v)) {
        const json::Value& c = v.at(p);
        series.push_back({numbers_at(c, "lr"), numbers_at(c, "loss"), color(p)});
        std::string label = p;
        const json::Value* censored = c.find("censored");
        const bool at_least = censored && censored->is_bool() && censored->as_bool();
        if (const json::Value* s = c.find("survived"))
          label += s->is_number() ? std::string(" (survived ") + (at_least ? ">= " : "") +
                                        value_text(*s, 4) + " steps)"
                                  : " (survived: n/a)";
        spec.legend.push_back({label, color(p)});
      }
      figure(
          line_chart(spec, series),
          "Train loss against the learning rate of the step, one line per policy." + seeds_note());
    });
    if (!present) skipped("lr_stress", "LR-stress chart");
    out_ += "</section>\n";
  }

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
    out_ += "<section id=\"setup\">\n<h2>Setup</h2>\n";
    key_values("run", "Run");
    key_values("config", "Model config");
    out_ += "</section>\n";
  }

  /// Gradient profiles are means over seeds.
  std::string seeds_mean_note() const {
    const json::Value* run = r_.find("run");
    const json::Value* seeds = run && run->is_object() ? run->find("seeds") : nullptr;
    if (seeds == nullptr || !seeds->is_array() || seeds->size() < 2) return "";
    return " Mean over the " + std::to_string(seeds->size()) + " seeds.";
  }

  /// With several seeds compare_results_json keeps the first seed's curves.
  std::string seeds_note() const {
    const json::Value* run = r_.find("run");
    const json::Value* seeds = run && run->is_object() ? run->find("seeds") : nullptr;
    if (seeds == nullptr || !seeds->is_array() || seeds->size() < 2) return "";
    return " The curves are those of the first seed (" + escape_html(value_text(seeds->at(0), 6)) +
           "); the table and findings use every seed.";
  }

  static std::string list(const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + escape_html(names[i]);
    return s;
  }

  static const char* css() {
    return "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
           "max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}\n"
           "h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;"
           "padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1rem}\n"
           "table{border-collapse:collapse;margin:.5rem 0 1rem}"
           "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}\n"
           "thead th{background:#f2f2f2}td.num{text-align:right;"
           "font-variant-numeric:tabular-nums}.kv th{font-weight:normal;background:#f7f7f7}\n"
           ".swatch{display:inline-block;width:.8em;height:.8em;margin-right:.4em;"
           "border-radius:2px}\n"
           ".findings{list-style:none;padding:0}.findings li{margin:.5rem 0;padding:.4rem .7rem;"
           "border-left:4px solid #888;background:#f8f8f8}\n"
           ".badge{display:inline-block;min-width:6.5em;text-align:center;font-size:.8rem;"
           "font-weight:600;padding:.05rem .4rem;border-radius:3px;color:#fff;background:#666;"
           "margin-right:.4em}\n"
           ".findings li.shown{border-color:#0072B2}.shown .badge{background:#0072B2}\n"
           ".findings li.not-shown{border-color:#D55E00}.not-shown .badge{background:#D55E00}\n"
           ".detail{color:#444;font-size:.9rem;margin-top:.2rem}\n"
           ".note{color:#666;font-style:italic}figure{margin:1.2rem 0}\n"
           "figcaption{color:#444;font-size:.9rem;max-width:46rem}\n"
           "svg.chart{max-width:100%;height:auto;display:block}\n"
           "svg.chart text{font-size:12px;fill:#222}svg.chart .tick{font-size:11px;fill:#444}\n"
           "svg.chart .title{font-size:14px;font-weight:600}\n"
           "svg.chart .note{font-size:11px;fill:#666;font-style:italic}\n"
           "svg.chart .grid{stroke:#e6e6e6;stroke-width:1}svg.chart .frame{fill:none;"
           "stroke:#888}\n"
           "footer{margin-top:2.5rem;color:#777;font-size:.85rem}\n";
  }

  const json::Value& r_;
  std::vector<std::string> policies_;  // colour order
  std::string out_;
};

}  // namespace detail::report

/// The report.html of a compare run: self-contained (inline CSS and SVG, no
/// script, no network).
///
/// Requires: `results` is an object in the schema compare_results_json writes
/// (see experiments/compare.hpp): title, summary, config, run, policies,
/// grad_norms_at_init, grad_norms_training, training, no_warmup, lr_stress,
/// table, findings — each optional. Arrays of numbers may hold null (or NaN) for a value that is
/// not finite; x and y arrays pair up to the shorter one. Throws: Error naming the section when a
/// present section has the wrong shape (e.g. a string where an array of numbers belongs). Ensures:
/// an absent section gives a note instead of its chart or table; every text from `results` is
/// escaped; the page has one <svg> per parameter group of grad_norms_at_init, one per moment of
/// grad_norms_training (fc2), plus one each for training, no_warmup and
/// lr_stress; an LR-stress entry with "censored": true is labelled
/// "survived >= N"; the same `results` gives the same bytes.
inline std::string render_compare_report(const json::Value& results) {
  return detail::report::ReportWriter(results).render();
}

}  // namespace v0
}  // namespace normlab
