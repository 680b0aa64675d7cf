// report.html of `normlab compare`: charts, tables, findings, escaping, gaps,
// absent sections, determinism, axis ticks.
#include "report/compare_report.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "testing.hpp"

namespace normlab::testing {
namespace {

namespace rep = detail::report;

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

bool has(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

/// Every <svg>...</svg> of a page, concatenated and lower-cased.
std::string svg_text(const std::string& html) {
  std::string out;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1))
    out += html.substr(at, html.find("</svg>", at) + 6 - at);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// A small run: three policies, three layers, four steps; nulls where a loss diverged.
json::Value small_results() {
  return json::parse(R"json({
    "title": "normlab compare",
    "summary": "Three policies, one seed, four steps.",
    "config": {"d_model": 64, "n_layers": 3, "policy": "pre_ln", "ln_eps": 1e-05},
    "run": {"corpus": "toy", "steps": 4, "seeds": [1], "batch_size": 8, "seq_len": 64},
    "policies": ["post_ln", "pre_ln", "normformer"],
    "grad_norms_at_init": {
      "post_ln": {"self_attn.out_proj": [0.1, 0.2, 0.3], "fc2": [0.01, 0.1, 2.0]},
      "pre_ln": {"self_attn.out_proj": [0.2, 0.2, 0.2], "fc2": [0.3, 0.3, 0.31]},
      "normformer": {"self_attn.out_proj": [0.2, 0.2, 0.2], "fc2": [0.3, null, 0.3],
                     "attn_ln": [0.05, 0.04, 0.03]}
    },
    "grad_norms_training": [
      {"step": 2, "moment": "end of warm-up",
       "norms": {"pre_ln": {"fc2": [0.6, 0.4, 0.2]}, "normformer": {"fc2": [0.3, 0.3, 0.3]}}},
      {"step": 4, "moment": "end of training",
       "norms": {"pre_ln": {"fc2": [0.5, 0.4, 0.3]}, "normformer": {"fc1": [0.3, 0.3, 0.3]}}}
    ],
    "training": {
      "post_ln": {"step": [1, 2, 3, 4], "train_loss": [5.5, 5.0, 4.6, 4.4],
                  "val_step": [2, 4], "val_loss": [5.1, 4.5], "lr": [1e-4, 2e-4, 3e-4, 4e-4]},
      "pre_ln": {"step": [1, 2, 3, 4], "train_loss": [5.5, 4.9, 4.5, 4.3],
                 "val_step": [2, 4], "val_loss": [5.0, 4.4], "lr": [1e-4, 2e-4, 3e-4, 4e-4]},
      "normformer": {"step": [1, 2, 3, 4], "train_loss": [5.5, 4.8, 4.4, 4.2],
                     "val_step": [2, 4], "val_loss": [4.9, 4.3], "lr": [1e-4, 2e-4, 3e-4, 4e-4]}
    },
    "no_warmup": {
      "post_ln": {"step": [1, 2, 3, 4], "train_loss": [5.5, 40.0, null, null],
                  "val_step": [2, 4], "val_loss": [30.0, null]},
      "pre_ln": {"step": [1, 2, 3, 4], "train_loss": [5.5, 5.0, 4.7, 4.5],
                 "val_step": [2, 4], "val_loss": [5.1, 4.6]}
    },
    "lr_stress": {
      "post_ln": {"step": [1, 2, 3], "lr": [1e-4, 2e-4, 4e-4], "loss": [5.5, 5.2, 1e6],
                  "survived": 2},
      "pre_ln": {"step": [1, 2, 3, 4], "lr": [1e-4, 2e-4, 4e-4, 8e-4],
                 "loss": [5.5, 5.1, 4.9, null], "survived": 3},
      "normformer": {"step": [1, 2, 3, 4], "lr": [1e-4, 2e-4, 4e-4, 8e-4],
                     "loss": [5.5, 5.0, 4.8, 4.7], "survived": 4, "censored": true}
    },
    "table": {"columns": ["policy", "parameters", "val loss (warm-up)"],
              "rows": [["post_ln", "101250", "4.5000"], ["pre_ln", "101378", "nan"],
                       ["normformer", "102346", "4.3000"]]},
    "findings": [
      {"claim": "Post-LN fc2 gradients grow toward the last layer", "shows": true,
       "detail": "ratio 200 against 1.03"},
      {"claim": "NormFormer ends lower than Pre-LN", "shows": false, "detail": "4.4 vs 4.3"},
      {"claim": "NormFormer survives more LR-stress steps", "shows": null,
       "detail": "too close to call"}
    ]
  })json");
}

TEST(Report, OneChartPerGroupAndExperimentWithTablesAndFindings) {
  const std::string html = render_compare_report(small_results());
  // Three parameter groups + two moments of training + training + no_warmup + lr_stress.
  EXPECT_EQ(count(html, "<svg"), 8u);
  EXPECT_EQ(count(html, "</svg>"), 8u);
  // During training: fc2 per moment, after the profiles at init.
  const size_t early = html.find("Gradient norm of fc2 per layer, after 2 steps (end of warm-up)");
  const size_t late = html.find("Gradient norm of fc2 per layer, after 4 steps (end of training)");
  ASSERT_NE(early, std::string::npos);
  ASSERT_NE(late, std::string::npos);
  EXPECT_LT(html.find("Gradient norm of attn_ln per layer"), early);
  EXPECT_LT(early, late);
  EXPECT_TRUE(has(html,
                  "after 4 training steps (end of training), one line per policy. No "
                  "such group in normformer."));
  // fc2 first, then the groups in the order the policies list them.
  const size_t fc2 = html.find("Gradient norm of fc2 per layer");
  const size_t out_proj = html.find("Gradient norm of self_attn.out_proj per layer");
  const size_t attn_ln = html.find("Gradient norm of attn_ln per layer");
  ASSERT_NE(fc2, std::string::npos);
  EXPECT_LT(fc2, out_proj);
  EXPECT_LT(out_proj, attn_ln);
  // post_ln's fc2 norms span 200x: log scale; pre_ln's out_proj are flat: linear.
  EXPECT_TRUE(has(html.substr(fc2, out_proj - fc2), "gradient norm (log scale)"));
  EXPECT_FALSE(has(html.substr(out_proj, attn_ln - out_proj), "log scale"));
  for (const char* p : {"post_ln", "pre_ln", "normformer"}) EXPECT_TRUE(has(html, p)) << p;
  // Colours in the order of "policies".
  EXPECT_TRUE(has(html, "<span class=\"swatch\" style=\"background:#0072B2\"></span>post_ln"));
  EXPECT_TRUE(has(html, "<span class=\"swatch\" style=\"background:#D55E00\"></span>pre_ln"));
  // The LR-stress legend carries the steps survived.
  EXPECT_TRUE(has(html, "post_ln (survived 2 steps)"));
  // A censored run (the cap reached without an explosion) survived at least that long.
  EXPECT_TRUE(has(html, "normformer (survived &gt;= 4 steps)"));
  EXPECT_TRUE(has(html, "pre_ln (survived 3 steps)"));
  // The terminal table.
  EXPECT_TRUE(has(html, "<th>val loss (warm-up)</th>"));
  EXPECT_TRUE(has(html, "<td class=\"num\">101250</td>"));
  EXPECT_TRUE(has(html, "<td class=\"num\">4.3000</td>"));
  // Findings: shown / not shown / inconclusive.
  EXPECT_TRUE(has(html,
                  "<li class=\"shown\"><span class=\"badge\">shown</span> <span "
                  "class=\"claim\">Post-LN fc2 gradients grow toward the last layer"));
  EXPECT_TRUE(has(html, "<li class=\"not-shown\"><span class=\"badge\">not shown</span>"));
  EXPECT_TRUE(has(html, "<li class=\"inconclusive\"><span class=\"badge\">inconclusive</span>"));
  EXPECT_TRUE(has(html, "too close to call"));
  // Setup tables and the summary.
  EXPECT_TRUE(has(html, "<tr><th>corpus</th><td>toy</td></tr>"));
  EXPECT_TRUE(has(html, "<tr><th>seeds</th><td>[1]</td></tr>"));
  EXPECT_TRUE(has(html, "<tr><th>ln_eps</th><td>1e-5</td></tr>"));
  EXPECT_TRUE(has(html, "Three policies, one seed, four steps."));
  EXPECT_FALSE(has(html, "Skipped"));
}

TEST(Report, NullAndNaNLeaveGapsNotText) {
  json::Value results = small_results();
  results["training"]["pre_ln"]["val_loss"].as_array()[0] = std::nan("");
  results["training"]["pre_ln"]["train_loss"].as_array()[1] = HUGE_VAL;
  const std::string svg = svg_text(render_compare_report(results));
  EXPECT_FALSE(has(svg, "nan"));
  EXPECT_FALSE(has(svg, "inf"));
  // post_ln without warm-up diverges: its lines break off, marked on the top edge.
  EXPECT_TRUE(has(svg, "the value became non-finite there"));

  // A gap splits a line in two; a lone point becomes a dot.
  rep::ChartSpec spec;
  spec.title = "gaps";
  const double nan = std::nan("");
  const std::string one = rep::line_chart(spec, {{{0, 1, 2, 3, 4}, {1, 2, nan, 4, 5}, "#000"}});
  EXPECT_EQ(count(one, "<polyline"), 2u);
  EXPECT_EQ(count(one, "<circle"), 0u);
  const std::string lone = rep::line_chart(spec, {{{0, 1, 2, 3}, {1, nan, 3, nan}, "#000"}});
  EXPECT_EQ(count(lone, "<polyline"), 0u);
  EXPECT_EQ(count(lone, "<circle"), 2u);
  // Nothing finite: an empty frame saying so, still no "nan".
  const std::string empty = rep::line_chart(spec, {{{0, 1}, {nan, nan}, "#000"}});
  EXPECT_TRUE(has(empty, "no finite values to plot"));
  EXPECT_FALSE(has(empty, "nan"));
}

TEST(Report, DivergingLossIsClippedToTheTopEdge) {
  rep::ChartSpec spec;
  spec.y_cap = 3;
  const std::vector<rep::Series> series = {{{1, 2, 3, 4}, {5, 4, 3, 1e30}, "#000"},
                                           {{1, 2, 3, 4}, {5.5, 4.5, 3.5, 3.2}, "#111"}};
  const rep::ChartAxes a = rep::chart_axes(spec, series);
  EXPECT_TRUE(a.clipped);
  EXPECT_GE(a.y.hi, 5.5);
  EXPECT_LE(a.y.hi, 3 * 5.5 * 1.25);  // the cap, rounded up to a tick
  EXPECT_LE(a.y.lo, 3);
  const std::string svg = rep::line_chart(spec, series);
  EXPECT_TRUE(has(svg, "are drawn on the top edge"));
  EXPECT_FALSE(has(svg, "1e30"));
  // The clipped point sits on the top edge of the plot (y = 40).
  EXPECT_TRUE(has(svg, ",40.0\"/>")) << svg;
  // Without the cap the range follows the data.
  spec.y_cap = 0;
  EXPECT_GE(rep::chart_axes(spec, series).y.hi, 1e30 * (1 - 1e-12));
  EXPECT_FALSE(rep::chart_axes(spec, series).clipped);
}

TEST(Report, EscapesEveryText) {
  EXPECT_EQ(rep::escape_html("a<b&c>\"d'"), "a&lt;b&amp;c&gt;&quot;d&#39;");
  json::Value results = small_results();
  results["title"] = "Tom's \"report\" <1>";
  results["policies"].as_array()[0] = "a<b&c";
  json::Value post = results["training"]["post_ln"];
  results["training"].as_object().set("a<b&c", post);
  results["lr_stress"].as_object().set("x>y", results["lr_stress"]["pre_ln"]);
  results["findings"].as_array()[0]["detail"] = "<b>bold</b> & 'quoted'";
  const std::string html = render_compare_report(results);
  EXPECT_TRUE(has(html, "a&lt;b&amp;c"));
  EXPECT_FALSE(has(html, "a<b&c"));
  EXPECT_TRUE(has(html, "x&gt;y (survived 3 steps)"));
  EXPECT_TRUE(has(html, "<title>Tom&#39;s &quot;report&quot; &lt;1&gt;</title>"));
  EXPECT_TRUE(has(html, "&lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;"));
  EXPECT_FALSE(has(html, "<b>bold</b>"));
}

TEST(Report, AbsentSectionsAreSkippedWithANote) {
  const std::string html = render_compare_report(json::parse("{}"));
  EXPECT_EQ(count(html, "<svg"), 0u);
  for (const char* key : {"findings", "table", "grad_norms_at_init", "grad_norms_training",
                          "training", "no_warmup", "lr_stress", "run", "config"})
    EXPECT_TRUE(has(html, std::string("no &quot;") + key) || has(html, std::string("no \"") + key))
        << key;
  EXPECT_TRUE(has(html, "<title>normlab compare</title>"));

  // Only some sections; a section without policies still draws its (empty) chart.
  json::Value some = small_results();
  some.as_object().set("grad_norms_at_init", json::Value());
  some.as_object().set("lr_stress", json::Object{});
  some.as_object().set("grad_norms_training", json::Value());
  const std::string partial = render_compare_report(some);
  EXPECT_EQ(count(partial, "<svg"), 3u);  // training, no_warmup, empty lr_stress
  EXPECT_TRUE(has(partial, "no finite values to plot"));

  expect_error([] { (void)render_compare_report(json::Value(3)); },
               {"results must be a JSON object", "number 3"});
  expect_error(
      [] {
        (void)render_compare_report(json::parse(R"({"training": {"pre_ln": {"step": "x"}}})"));
      },
      {"section \"training\"", "\"step\"", "expected an array"});
  expect_error(
      [] {
        (void)render_compare_report(
            json::parse(R"({"grad_norms_at_init": {"pre_ln": {"fc2": [1, "two"]}}})"));
      },
      {"section \"grad_norms_at_init\"", "fc2", "expected a number or null"});
  expect_error(
      [] {
        (void)render_compare_report(json::parse(
            R"({"grad_norms_training": [{"step": 5, "moment": "m", "norms": {"pre_ln": 1}}]})"));
      },
      {"section \"grad_norms_training\"", "object"});
}

TEST(Report, SameJsonSameBytes) {
  const json::Value results = small_results();
  const std::string a = render_compare_report(results);
  EXPECT_EQ(a, render_compare_report(results));
  EXPECT_EQ(a, render_compare_report(json::parse(json::dump(results))));
}

TEST(Report, SelfContained) {
  const std::string html = render_compare_report(small_results());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n", 0), 0u);
  EXPECT_TRUE(html.ends_with("</html>\n"));
  for (const char* banned : {"http://", "https://", "<script", "url(", "@import", "<link", "<img"})
    EXPECT_FALSE(has(html, banned)) << banned;
}

TEST(Report, NiceTicks) {
  using V = std::vector<double>;
  EXPECT_EQ(rep::linear_axis(0, 1).ticks, (V{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(rep::linear_axis(2.1, 5.7).ticks, (V{2, 3, 4, 5, 6}));
  EXPECT_EQ(rep::linear_axis(0, 300).ticks, (V{0, 50, 100, 150, 200, 250, 300}));
  EXPECT_EQ(rep::linear_axis(-0.03, 0.07).ticks, (V{-0.04, -0.02, 0, 0.02, 0.04, 0.06, 0.08}));
  const rep::Axis one = rep::linear_axis(3, 3);  // a single value is widened
  EXPECT_EQ(one.ticks.size(), 7u);
  EXPECT_DOUBLE_EQ(one.lo, 2.7);
  EXPECT_DOUBLE_EQ(one.hi, 3.3);
  EXPECT_FALSE(rep::linear_axis(1e16, 1e16 + 4).ticks.empty());  // terminates beyond 2^53

  EXPECT_EQ(rep::log_axis(1e-4, 3e-2).ticks, (V{1e-4, 1e-3, 1e-2, 1e-1}));
  const rep::Axis narrow = rep::log_axis(2e-4, 8e-4);
  const V expected = {1e-4, 2e-4, 5e-4, 1e-3};
  ASSERT_EQ(narrow.ticks.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ(narrow.ticks[i], expected[i]);
  EXPECT_TRUE(narrow.log);
  EXPECT_DOUBLE_EQ(narrow.fraction(std::sqrt(1e-4 * 1e-3)), 0.5);
  EXPECT_EQ(rep::log_axis(1e-6, 1e6).ticks, (V{1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6}));
  EXPECT_EQ(rep::log_axis(1, 1).ticks, (V{0.1, 0.2, 0.5, 1, 2, 5, 10}));  // widened

  const rep::Axis layers = rep::integer_axis(0, 5);
  EXPECT_EQ(layers.ticks, (V{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(layers.lo, -0.5);
  EXPECT_EQ(layers.hi, 5.5);
  EXPECT_EQ(rep::integer_axis(0, 11).ticks, (V{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(rep::integer_axis(0, 0).ticks, (V{0}));

  EXPECT_EQ(rep::format_number(300), "300");
  EXPECT_EQ(rep::format_number(4.56789), "4.568");
  EXPECT_EQ(rep::format_number(0.00030001), "0.0003");
  EXPECT_EQ(rep::format_number(1.5e-5), "1.5e-5");
  EXPECT_EQ(rep::format_number(2.5e17), "2.5e17");
  EXPECT_EQ(rep::format_number(-0.0), "0");
  EXPECT_EQ(rep::format_number(std::nan("")), "n/a");
  EXPECT_EQ(rep::format_number(-HUGE_VAL), "n/a");
}

/// A results document shaped like a real run: 6 layers, 300 steps, Post-LN
/// diverging without warm-up, every policy exploding in the LR-stress test.
json::Value sample_results() {
  const std::vector<std::string> policies = {"post_ln", "pre_ln", "normformer"};
  json::Object grads, warm, cold, stress;
  for (size_t k = 0; k < policies.size(); ++k) {
    const double kd = static_cast<double>(k);
    json::Object g;
    for (const char* group : {"fc1", "fc2", "self_attn.out_proj"}) {
      json::Array v;
      for (int l = 0; l < 6; ++l)
        v.emplace_back(k == 0 ? 0.02 * std::pow(2.6, l) : 0.3 - 0.02 * l + 0.01 * kd);
      g.set(group, std::move(v));
    }
    if (k == 2) g.set("attn_ln", json::Array{0.05, 0.04, 0.04, 0.03, 0.03, 0.02});
    grads.set(policies[k], std::move(g));
    for (int pass = 0; pass < 2; ++pass) {
      json::Array step, train, val_step, val, lr;
      for (int s = 1; s <= 300; ++s) {
        const double sd = s;
        const double base =
            2.2 + 3.4 * std::exp(-sd / (60 + 10 * kd)) + 0.05 * std::sin(sd * 0.7 + kd);
        const bool diverged = pass == 1 && k == 0 && s > 40;
        step.emplace_back(s);
        lr.emplace_back(1e-3 * (pass == 0 ? std::min(1.0, sd / 50) : 1.0) * (1 - sd / 300));
        train.push_back(diverged ? (s < 46 ? json::Value(9.0 * (s - 38)) : json::Value())
                                 : json::Value(base));
        if (s % 25 == 0) {
          val_step.emplace_back(s);
          val.push_back(diverged ? json::Value() : json::Value(base + 0.08));
        }
      }
      (pass == 0 ? warm : cold)
          .set(policies[k], json::Object{{"step", step},
                                         {"train_loss", train},
                                         {"lr", lr},
                                         {"val_step", val_step},
                                         {"val_loss", val}});
    }
    json::Array step, lr, loss;
    const int survive = 60 + 25 * static_cast<int>(k);
    for (int s = 1; s <= survive + 1; ++s) {
      step.emplace_back(s);
      lr.emplace_back(1e-4 * std::pow(1.05, s - 1));
      loss.push_back(s <= survive ? json::Value(5.5 - 0.01 * s + 0.002 * s * s / survive)
                                  : (k == 1 ? json::Value() : json::Value(60.0)));
    }
    stress.set(policies[k],
               json::Object{{"step", step}, {"lr", lr}, {"loss", loss}, {"survived", survive}});
  }
  json::Value r = small_results();
  r["summary"] = "A made-up run that exercises every part of the page.";
  r["grad_norms_at_init"] = grads;
  r["training"] = warm;
  r["no_warmup"] = cold;
  r["lr_stress"] = stress;
  r["lr_stress"]["normformer"]["censored"] = true;
  json::Array trained;
  for (const int step : {50, 300}) {
    json::Object norms;
    for (size_t k = 0; k < policies.size(); ++k) {
      json::Array v;
      for (int l = 0; l < 6; ++l)
        v.emplace_back((k == 1 ? 0.5 - 0.06 * l : 0.25 + 0.01 * l) * (step == 50 ? 2 : 1));
      norms.set(policies[k], json::Object{{"fc2", std::move(v)}});
    }
    trained.push_back(json::Object{{"step", step},
                                   {"moment", step == 50 ? "end of warm-up" : "end of training"},
                                   {"norms", std::move(norms)}});
  }
  r["grad_norms_training"] = trained;
  r["run"]["seeds"] = json::Array{1, 2, 3};
  return r;
}

TEST(Report, WritesASampleReport) {
  const std::string html = render_compare_report(sample_results());
  EXPECT_EQ(count(html, "<svg"), 9u);  // fc2, fc1, self_attn.out_proj, attn_ln, 2 moments + 3
  EXPECT_EQ(count(html, "one line per policy. Mean over the 3 seeds."), 2u);
  EXPECT_TRUE(has(html, "normformer (survived &gt;= 110 steps)"));
  EXPECT_TRUE(has(html,
                  "<code>attn_ln</code> weights at initialization, one line per policy. No "
                  "such group in post_ln, pre_ln."));
  // Several seeds: the curves are the first seed's (compare_results_json keeps those).
  EXPECT_EQ(count(html, "The curves are those of the first seed (1)"), 3u);
  EXPECT_FALSE(has(svg_text(html), "nan"));
  EXPECT_FALSE(has(svg_text(html), "inf"));
  const std::string path = ::testing::TempDir() + "normlab_compare_report.html";
  std::ofstream(path, std::ios::binary) << html;
  std::ifstream back(path, std::ios::binary);
  const std::string read((std::istreambuf_iterator<char>(back)), std::istreambuf_iterator<char>());
  EXPECT_EQ(read, html);
  std::cout << "sample report: " << path << " (" << html.size() << " bytes)\n";
}

}  // namespace
}  // namespace normlab::testing
