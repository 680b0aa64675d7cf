// report.html of `normlab compare` (results.json schema 2): the table of
// contents, the placements, one chart per experiment, bits per byte, theory
// lines, failed runs, escaping, gaps, absent sections, determinism, axis ticks.
#include "report/compare_report.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iostream>
#include <set>
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

/// The element <tag ... id="id"> up to its first closing tag.
std::string element(const std::string& html, const std::string& tag, const std::string& id) {
  const size_t attribute = html.find(" id=\"" + id + "\"");
  if (attribute == std::string::npos) return "";
  const size_t at = html.rfind("<" + tag, attribute);
  if (at == std::string::npos) return "";
  return html.substr(at, html.find("</" + tag + ">", at) + tag.size() + 3 - at);
}

/// The values of every attribute `name="..."` in `html`.
std::vector<std::string> attributes(const std::string& html, const std::string& name) {
  std::vector<std::string> out;
  const std::string key = " " + name + "=\"";
  for (size_t at = html.find(key); at != std::string::npos; at = html.find(key, at + 1)) {
    const size_t from = at + key.size();
    out.push_back(html.substr(from, html.find('"', from) - from));
  }
  return out;
}

const double ln2 = std::log(2.0);

json::Array numbers(const std::vector<double>& v) {
  json::Array a;
  for (double x : v) {  // if/else, not ?:, which trips GCC 12's -Wmaybe-uninitialized at -O3
    if (std::isfinite(x))
      a.emplace_back(x);
    else
      a.emplace_back();
  }
  return a;
}

/// A training run of `steps` steps whose loss decays from ln 256 toward `end`
/// (nats); a diverged run's loss turns null after `diverge_at`.
json::Value training_run(const std::string& policy, double lr, int64_t warmup, int64_t seed,
                         const std::string& outcome, double end, int64_t steps,
                         int64_t diverge_at = 0) {
  json::Array step, train, lrs, val_step, val;
  for (int64_t s = 1; s <= steps; ++s) {
    const double sd = static_cast<double>(s);
    const bool gone = diverge_at > 0 && s > diverge_at;
    step.emplace_back(s);
    lrs.emplace_back(lr);
    train.push_back(gone ? json::Value()
                         : json::Value(end + (std::log(256.0) - end) * std::exp(-sd / 8) +
                                       0.04 * std::sin(1.3 * sd + static_cast<double>(seed))));
    if (s % 10 == 0) {
      val_step.emplace_back(s);
      val.push_back(gone ? json::Value()
                         : json::Value(end + 0.03 + (std::log(256.0) - end) * std::exp(-sd / 8)));
    }
  }
  json::Array profiles;
  const auto profile = [&](int64_t at, const char* moment) {
    json::Array fc2;
    for (int l = 0; l < 4; ++l)
      fc2.emplace_back(outcome == "failed" ? 1e-4 * std::pow(30.0, l) : 0.2 + 0.02 * l);
    profiles.push_back(json::Object{
        {"step", at}, {"moment", moment}, {"norms", json::Object{{"fc2", std::move(fc2)}}}});
  };
  if (outcome != "diverged") {
    if (warmup > 0) profile(warmup, "end of warm-up");
    profile(steps, "end of training");
  }
  const json::Value& last = val.back();
  return json::Object{{"policy", policy},
                      {"lr", lr},
                      {"warmup", warmup},
                      {"seed", seed},
                      {"outcome", outcome},
                      {"final_val_loss", outcome == "diverged" ? json::Value() : last},
                      {"curve", json::Object{{"step", step},
                                             {"train_loss", train},
                                             {"lr", lrs},
                                             {"val_step", val_step},
                                             {"val_loss", val}}},
                      {"profiles", std::move(profiles)}};
}

/// A small schema-2 run: three policies, depths 2-8, an LR sweep of three LRs
/// and two warm-ups in which Post-LN fails at 3e-3 and diverges at 1e-2
/// without warm-up, a tuned comparison on two seeds, the mismatched pair
/// and the LR stress.
json::Value schema2_results() {
  json::Value r = json::parse(R"json({
    "title": "normlab compare",
    "schema": 2,
    "command": "normlab compare --quick --title \"A&B\" <x>",
    "scale": "small",
    "elapsed_s": 83.4,
    "machine": {"cpu_kernels": "avx2", "threads": 2},
    "run": {"corpus": "toy", "init": "fairseq", "seeds": [1, 2], "batch_size": 8,
            "seq_len": 64, "steps": 40, "eval_every": 10, "eval_windows": 8, "clip_norm": 1.0,
            "grad_batches": 2, "fail_margin": 0.2, "unigram_loss": 3.3, "depths": [2, 4, 8],
            "lrs": [0.001, 0.003, 0.01], "warmups": [0, 10],
            "mismatched_lrs": {"normformer": 0.003, "pre_ln": 0.001}, "mismatched_warmup": 10,
            "stress_start_lr": 0.0001, "stress_factor": 1.05, "stress_max_steps": 50},
    "config": {"vocab_size": 256, "d_model": 64, "n_heads": 4, "n_layers": 4, "d_ff": 256,
               "max_seq_len": 64, "policy": "pre_ln", "extras": [],
               "head_scale": "before_out_proj", "resid_scale": false, "activation": "gelu",
               "norm": "layer_norm", "ln_eps": 1e-05, "final_norm": true,
               "tie_embeddings": true, "positions": "learned", "dropout": 0.0,
               "attention_dropout": 0.0},
    "table": {"columns": ["policy", "parameters", "val bits/byte at best (+- s.e.)"],
              "rows": [["post_ln", "101250", "1.5000 +- 0.0100"], ["pre_ln", "101378", "nan"],
                       ["normformer", "102346", "1.0000 +- 0.0000"]]},
    "findings": [
      {"id": "depth_slopes", "experiment": "depth_sweep", "scale": "small",
       "claim": "Pre-LN's last-layer gradient shrinks like L^-1/2", "source": "Xiong et al. 2020",
       "rule": "shown when the interval lies below -0.25", "shows": true,
       "detail": "slopes +0.05 and -0.52"},
      {"id": "normformer_tuned", "experiment": "tuned", "scale": "paper",
       "claim": "NormFormer ends lower than Pre-LN", "source": "Shleifer et al. 2021",
       "rule": "paired interval below 0", "shows": false, "detail": "+0.02 bits per byte"},
      {"id": "mismatched_lr", "experiment": "tuned", "scale": "lesson",
       "claim": "A mismatched LR can manufacture a win", "source": "the paper's habit",
       "rule": "mismatched interval below 0", "shows": null, "detail": "too close to call"}
    ]
  })json");
  const std::vector<std::string> names = {"post_ln", "pre_ln", "normformer"};
  json::Array policies;
  for (const std::string& p : names) {
    json::Value config = r["config"];
    config["policy"] = p == "post_ln" ? "post_ln" : "pre_ln";
    config["final_norm"] = p != "post_ln";
    if (p == "normformer") config["extras"] = json::Array{"head_scale", "attn_ln", "ffn_ln"};
    policies.push_back(json::Object{
        {"name", p}, {"parameters", p == "normformer" ? 102346 : 101250}, {"config", config}});
  }
  r["policies"] = std::move(policies);

  // 1. Depth sweep: Post-LN flat, Pre-LN like L^-1/2.
  const std::vector<double> depths = {2, 4, 8};
  json::Object depth_policies;
  for (size_t k = 0; k < names.size(); ++k) {
    const double slope = k == 0 ? 0.05 : -0.5;
    std::vector<double> last, first;
    json::Array profiles, last_samples;
    for (const double d : depths) {
      last.push_back(0.8 * std::pow(d / 2, slope));
      first.push_back(k == 0 ? 0.8 / d : 0.5);
      last_samples.push_back(numbers({last.back() * 0.9, last.back() * 1.1}));
      std::vector<double> per_layer;
      for (int l = 0; l < static_cast<int>(d); ++l)
        per_layer.push_back(k == 0 ? 0.05 * std::pow(1.5, l) : 0.5 - 0.03 * l);
      profiles.push_back(json::Object{{"fc2", numbers(per_layer)}});
    }
    const auto fit = [](double s) {
      return json::Object{{"slope", s},    {"intercept", -0.2}, {"se", 0.05},
                          {"lo", s - 0.1}, {"hi", s + 0.1},     {"n", 6}};
    };
    depth_policies.set(
        names[k],
        json::Object{{"last", json::Object{{"mean", numbers(last)}, {"samples", last_samples}}},
                     {"first", json::Object{{"mean", numbers(first)}, {"samples", json::Array{}}}},
                     {"last_fit", fit(slope)},
                     {"first_fit", fit(k == 0 ? -1.0 : 0.0)},
                     {"profiles", std::move(profiles)}});
  }
  r["depth_sweep"] =
      json::Object{{"depths", numbers(depths)},
                   {"group", "fc2"},
                   {"theory_slopes", json::Object{{"post_ln", 0.0}, {"pre_ln", -0.5}}},
                   {"policies", std::move(depth_policies)}};

  // 2. LR sweep (seed 1), then the tuned runs' second seed.
  json::Array runs, sweep;
  for (const std::string& p : names)
    for (const int64_t warmup : {0, 10})
      for (const double lr : {1e-3, 3e-3, 1e-2}) {
        std::string outcome = "trained";
        if (p == "post_ln" && lr == 3e-3 && warmup == 0) outcome = "failed";
        if (p == "post_ln" && lr == 1e-2) outcome = warmup == 0 ? "diverged" : "failed";
        const double end = outcome == "failed" ? 3.25 : (p == "pre_ln" ? ln2 : 1.2) + lr;
        sweep.emplace_back(static_cast<int64_t>(runs.size()));
        runs.push_back(
            training_run(p, lr, warmup, 1, outcome, end, 40, outcome == "diverged" ? 12 : 0));
      }
  r["lr_sweep"] = json::Object{{"seed", 1}, {"runs", std::move(sweep)}};
  const auto entry = [&](const std::string& p, double lr, int64_t warmup, int64_t first,
                         const std::vector<double>& losses) {
    const int64_t second = static_cast<int64_t>(runs.size());
    runs.push_back(training_run(p, lr, warmup, 2, "trained", losses[1], 40));
    double mean = 0;
    for (double x : losses) mean += x / static_cast<double>(losses.size());
    const double se = std::abs(losses[1] - losses[0]) / 2;
    return json::Object{{"policy", p},
                        {"lr", lr},
                        {"warmup", warmup},
                        {"runs", json::Array{first, second}},
                        {"final_val_loss", numbers(losses)},
                        {"mean", mean},
                        {"se", se}};
  };
  // A loss of ln 2 nats is 1 bit per byte.
  r["tuned"] = json::Array{entry("post_ln", 1e-3, 10, 3, {1.25, 1.27}),
                           entry("pre_ln", 1e-3, 0, 6, {ln2, ln2}),
                           entry("normformer", 3e-3, 10, 16, {0.71, 0.72})};
  r["mismatched"] = json::Array{entry("pre_ln", 1e-3, 10, 9, {0.75, 0.76}),
                                entry("normformer", 3e-3, 10, 16, {0.71, 0.72})};
  r["runs"] = std::move(runs);

  // 4. LR stress: Post-LN explodes first; NormFormer's first seed is censored.
  json::Object stress;
  for (size_t k = 0; k < names.size(); ++k) {
    const int64_t survive = 20 + 15 * static_cast<int64_t>(k);
    json::Array step, lr, loss;
    for (int64_t s = 1; s <= std::min<int64_t>(survive + 1, 50); ++s) {
      const double sd = static_cast<double>(s);
      step.emplace_back(s);
      lr.emplace_back(1e-4 * std::pow(1.05, sd - 1));
      loss.push_back(s <= survive ? json::Value(5.5 - 0.05 * sd) : json::Value(40.0));
    }
    const bool censored = k == 2;
    stress.set(names[k],
               json::Object{{"step", step},
                            {"lr", lr},
                            {"loss", loss},
                            {"survived", censored ? 50 : survive},
                            {"censored", censored},
                            {"survived_by_seed", json::Array{censored ? 50 : survive, survive - 2}},
                            {"censored_by_seed", json::Array{censored, false}}});
  }
  r["lr_stress"] = std::move(stress);
  return r;
}

TEST(Report, OneChartPerExperimentAndADiagramPerPolicy) {
  const std::string html = render_compare_report(schema2_results());
  // Depth: last, first, ratio, profile; sweep: losses + the failed profiles at
  // 3e-3 and 1e-2; tuned: curves + zoom; stress.
  EXPECT_EQ(count(html, "<svg class=\"chart\""), 10u);
  EXPECT_EQ(count(html, "<svg class=\"diagram\""), 3u);
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  for (const char* id :
       {"fig-depth-last", "fig-depth-first", "fig-depth-ratio", "fig-depth-profile", "fig-lr-sweep",
        "fig-lr-sweep-profile-1", "fig-lr-sweep-profile-2", "fig-tuned-curves", "fig-tuned-zoom",
        "fig-lr-stress"})
    EXPECT_EQ(count(element(html, "figure", id), "<svg class=\"chart\""), 1u) << id;
  // Each experiment opens with its caption, before its first chart.
  for (const auto& [section, chart] :
       std::vector<std::pair<std::string, std::string>>{{"depth-sweep", "fig-depth-last"},
                                                        {"lr-sweep", "fig-lr-sweep"},
                                                        {"tuned", "fig-tuned-curves"},
                                                        {"lr-stress", "fig-lr-stress"}}) {
    const std::string s = element(html, "section", section);
    ASSERT_TRUE(has(s, "What to look for.")) << section;
    EXPECT_LT(s.find("What to look for."), s.find("id=\"" + chart + "\"")) << section;
  }
  EXPECT_FALSE(has(html, "Skipped"));
  // Every gradient-norm chart has a log y axis.
  EXPECT_EQ(count(svg_text(html), "gradient norm (log scale)"), 5u);
  // Sweep LR profile charts at the two LRs where a run failed and another trained.
  EXPECT_TRUE(has(html, "fc2 gradient norm per layer at the end of training, LR 0.003"));
  EXPECT_TRUE(has(html, "fc2 gradient norm per layer at the end of training, LR 0.01"));
}

TEST(Report, TableOfContentsLinksEverySection) {
  const std::string html = render_compare_report(schema2_results());
  const std::string toc = html.substr(html.find("<nav class=\"toc\">"),
                                      html.find("</nav>") - html.find("<nav class=\"toc\">"));
  std::set<std::string> ids;
  for (const std::string& id : attributes(html, "id")) ids.insert(id);
  std::set<std::string> linked;
  for (const std::string& href : attributes(toc, "href")) {
    ASSERT_EQ(href[0], '#');
    linked.insert(href.substr(1));
    EXPECT_TRUE(ids.contains(href.substr(1))) << href;
  }
  for (const char* section : {"placements", "findings", "table", "depth-sweep", "lr-sweep", "tuned",
                              "lr-stress", "setup"}) {
    EXPECT_TRUE(has(html, std::string("<section id=\"") + section + "\">")) << section;
    EXPECT_TRUE(linked.contains(section)) << section;
  }
  for (size_t at = html.find("<section id=\""); at != std::string::npos;
       at = html.find("<section id=\"", at + 1)) {
    const size_t from = at + 13;
    EXPECT_TRUE(linked.contains(html.substr(from, html.find('"', from) - from)));
  }
  EXPECT_TRUE(linked.contains("placement-3-normformer"));
  // No id twice.
  EXPECT_EQ(ids.size(), attributes(html, "id").size());
}

TEST(Report, PlacementsShowEquationsDiagramsAndTheirOwnConfig) {
  json::Value results = schema2_results();
  json::Value composed = results["policies"].at(1);
  composed["name"] = "pre_ln+head_scale(after_out_proj)";
  composed["config"]["extras"] = json::Array{"head_scale"};
  composed["config"]["head_scale"] = "after_out_proj";
  results["policies"].push_back(composed);
  json::Value unknown = results["policies"].at(1);
  unknown["name"] = "pre_ln+my_extra";
  unknown["config"]["extras"] = json::Array{"my_extra"};
  results["policies"].push_back(unknown);
  const std::string html = render_compare_report(results);
  const std::string post = element(html, "article", "placement-1-post_ln");
  const std::string pre = element(html, "article", "placement-2-pre_ln");
  const std::string nf = element(html, "article", "placement-3-normformer");
  const std::string comp =
      element(html, "article", "placement-4-pre_ln-head_scale-after_out_proj-");
  const std::string other = element(html, "article", "placement-5-pre_ln-my_extra");
  EXPECT_TRUE(has(post, "x &#8592; LN(x + Attn(x))"));
  EXPECT_TRUE(has(post,
                  "x &#8592; LN(x + W<sub>2</sub> act(W<sub>1</sub> x + b<sub>1</sub>) + "
                  "b<sub>2</sub>)"));
  EXPECT_TRUE(has(post, "no LayerNorm after the last layer"));
  EXPECT_TRUE(has(pre, "x &#8592; x + Attn(LN(x))"));
  EXPECT_TRUE(has(pre, "after the last layer: y = LN<sub>final</sub>(x)"));
  // NormFormer (DESIGN.md section 1): the head scale before W_O, LN_a before the
  // add, LN_f after the activation and before fc2.
  EXPECT_TRUE(has(nf, "x &#8592; x + LN<sub>a</sub>(Attn<sub>&#947;</sub>(LN(x)))"));
  EXPECT_TRUE(has(nf,
                  "x &#8592; x + W<sub>2</sub> LN<sub>f</sub>(act(W<sub>1</sub> LN(x) + "
                  "b<sub>1</sub>)) + b<sub>2</sub>"));
  EXPECT_TRUE(has(nf, "Concat(&#947;<sub>1</sub> h<sub>1</sub>"));
  for (const std::string* p : {&post, &pre, &nf, &comp}) {
    EXPECT_EQ(count(*p, "<div class=\"eq\">"), 1u);
    EXPECT_EQ(count(*p, "<svg class=\"diagram\""), 1u);
  }
  // Post-LN's diagram has its norms on the stream; NormFormer's adds dashed extras.
  EXPECT_EQ(count(post, "class=\"ln\""), 2u);
  EXPECT_EQ(count(pre, "class=\"ln\""), 3u);  // two sublayers + final
  EXPECT_EQ(count(nf, "class=\"ln extra\""), 2u);
  EXPECT_EQ(count(nf, "class=\"op extra\""), 1u);
  // A composition says so and draws what its config computes.
  EXPECT_TRUE(has(comp, "A composition"));
  EXPECT_TRUE(has(comp, "x &#8592; x + &#947; &#8857; Attn(LN(x))"));
  EXPECT_TRUE(has(other, "A composition"));
  EXPECT_TRUE(has(other, "cannot draw"));
  EXPECT_FALSE(has(other, "<svg"));
  // Each policy's own config.
  EXPECT_TRUE(has(post, "<code>policy</code> post_ln"));
  EXPECT_TRUE(has(post, "<code>final_norm</code> false"));
  EXPECT_TRUE(has(pre, "<code>final_norm</code> true"));
  EXPECT_TRUE(has(nf, "<code>extras</code> [head_scale, attn_ln, ffn_ln]"));
  EXPECT_TRUE(has(nf, "<b>parameters</b> 102346"));
  EXPECT_TRUE(has(comp, "<code>head_scale</code> after_out_proj"));
  EXPECT_FALSE(has(nf, "<code>d_model</code>"));  // as shared: not repeated
}

TEST(Report, DepthSweepDrawsTheTheorysSlopes) {
  const std::string html = render_compare_report(schema2_results());
  const std::string last = element(html, "figure", "fig-depth-last");
  EXPECT_TRUE(has(last, "post_ln theory: slope 0"));
  EXPECT_TRUE(has(last, "pre_ln theory: slope -0.5"));
  EXPECT_TRUE(has(last, "pre_ln: slope -0.50 [-0.60, -0.40]"));
  // Two dashed reference lines, each with its legend stroke.
  EXPECT_EQ(count(last, "stroke-dasharray=\"6 4\""), 4u);
  EXPECT_FALSE(has(element(html, "figure", "fig-depth-first"), "theory"));
  // Depth ticks at the depths swept.
  for (const char* t : {">2</text>", ">4</text>", ">8</text>"}) EXPECT_TRUE(has(last, t)) << t;
  const std::string ratio = element(html, "figure", "fig-depth-ratio");
  EXPECT_TRUE(has(ratio, "theory: slope 0.5"));
  EXPECT_TRUE(has(ratio, "L 2: 1, L 4: 1.46, L 8: 2.14"));
  EXPECT_TRUE(has(html, "<td class=\"num\">+0.05 [-0.05, +0.15]</td>"));
  EXPECT_TRUE(has(element(html, "figure", "fig-depth-profile"), "at L = 8"));
}

TEST(Report, LossesInBitsPerByte) {
  const std::string html = render_compare_report(schema2_results());
  // Pre-LN's tuned losses are ln 2 nats: 1 bit per byte.
  EXPECT_TRUE(has(html,
                  "<td class=\"num\">1.000, 1.000</td><td class=\"num\">1.000 &#177; "
                  "0.000</td>"));
  // Tuned and mismatched side by side.
  const std::string table = html.substr(html.find("<table class=\"entries\">"));
  EXPECT_EQ(count(table.substr(0, table.find("</table>")), "<tr class=\"tuned\">"), 3u);
  EXPECT_EQ(count(table.substr(0, table.find("</table>")), "<tr class=\"mismatched\">"), 2u);
  // The unigram loss 3.3 nats = 4.761 bits, the threshold 3.1 nats = 4.472 bits.
  const std::string sweep = element(html, "figure", "fig-lr-sweep");
  EXPECT_TRUE(has(sweep, "unigram loss 4.761"));
  EXPECT_TRUE(has(sweep, "failure threshold 4.472"));
  EXPECT_TRUE(has(sweep, "validation bits per byte"));
  EXPECT_TRUE(
      has(element(html, "figure", "fig-tuned-curves"), "centred moving average over 3 steps"));
  EXPECT_TRUE(has(element(html, "figure", "fig-tuned-zoom"), "steps 28 to 40"));
  EXPECT_TRUE(has(element(html, "figure", "fig-lr-stress"), "train bits per byte"));

  EXPECT_DOUBLE_EQ(rep::bits(ln2), 1.0);
  const std::vector<double> smooth = rep::centered_average({1, 2, std::nan(""), 3, 5}, 1);
  ASSERT_EQ(smooth.size(), 5u);
  EXPECT_EQ(smooth[0], 1.5);
  EXPECT_EQ(smooth[1], 1.5);
  EXPECT_TRUE(std::isnan(smooth[2]));
  EXPECT_EQ(smooth[3], 4);
  EXPECT_EQ(smooth[4], 4);
  // Pre-LN 1 bit, NormFormer 1.032: the difference of the means.
  EXPECT_TRUE(has(html, "tuned +0.032; mismatched -0.058"));
  EXPECT_EQ(rep::fixed(-0.0001, 3), "0.000");
  EXPECT_EQ(rep::fixed(std::nan(""), 3), "n/a");
}

TEST(Report, FailedAndDivergedRunsAreMarked) {
  const std::string html = render_compare_report(schema2_results());
  const std::string sweep = element(html, "figure", "fig-lr-sweep");
  // Post-LN without warm-up failed at 3e-3 and with warm-up at 1e-2: open
  // rings (plus the legend's); the diverged run is an x on the top edge.
  EXPECT_EQ(count(sweep, "r=\"4.5\""), 3u);
  EXPECT_TRUE(has(sweep, "the value became non-finite there"));
  EXPECT_TRUE(has(html, "<td class=\"num failed\">4.754 failed</td>"));
  EXPECT_EQ(count(html, "<td class=\"num failed\">"), 2u);
  EXPECT_EQ(count(html, "<td class=\"num diverged\">diverged</td>"), 1u);
  const std::string profile = element(html, "figure", "fig-lr-sweep-profile-1");
  EXPECT_TRUE(has(profile, "post_ln, warm-up 0 (failed)"));
  EXPECT_TRUE(has(profile, "pre_ln, warm-up 0 (trained)"));
  // The stress legend: steps survived per seed, censored as ">=".
  EXPECT_TRUE(has(html, "normformer (survived &gt;= 50, 48 steps)"));
  EXPECT_TRUE(has(html, "post_ln (survived 20, 18 steps)"));
}

TEST(Report, EveryRunFailed) {
  // A run too short to learn (--quick): no tuned setting, no trained run to
  // set beside a failed one.
  json::Value results = schema2_results();
  for (json::Value& run : results["runs"].as_array()) run["outcome"] = "failed";
  results["tuned"] = json::Array{};
  const std::string html = render_compare_report(results);
  EXPECT_TRUE(has(html, "No policy trained at any setting of the sweep"));
  EXPECT_EQ(element(html, "figure", "fig-tuned-curves"), "");
  EXPECT_EQ(count(html, "<tr class=\"mismatched\">"), 2u);
  EXPECT_TRUE(has(html, "the failed runs at the largest LR are shown"));
  const std::string profile = element(html, "figure", "fig-lr-sweep-profile-1");
  EXPECT_TRUE(has(profile, "LR 0.01"));
  EXPECT_TRUE(has(profile, "no run trained at this LR"));
  EXPECT_EQ(element(html, "figure", "fig-lr-sweep-profile-2"), "");
  // Depth, sweep, its profile, stress.
  EXPECT_EQ(count(html, "<svg class=\"chart\""), 7u);
}

TEST(Report, FindingsCarryBadgeScaleSourceRuleAndDetail) {
  const std::string html = render_compare_report(schema2_results());
  EXPECT_TRUE(has(html,
                  "<li class=\"shown\"><span class=\"badge\">shown</span> <span "
                  "class=\"scale scale-small\""));
  EXPECT_TRUE(has(html, "<li class=\"not-shown\"><span class=\"badge\">not shown</span>"));
  EXPECT_TRUE(has(html, "<li class=\"inconclusive\"><span class=\"badge\">inconclusive</span>"));
  EXPECT_TRUE(has(html, "paper: measured at 125M-2.7B parameters"));
  EXPECT_TRUE(has(html, "lesson: about method"));
  EXPECT_TRUE(has(html, "Source: Xiong et al. 2020"));
  EXPECT_TRUE(has(html, "Rule: shown when the interval lies below -0.25"));
  EXPECT_TRUE(has(html, "Measured: too close to call"));
  EXPECT_TRUE(has(html, "<a class=\"see\" href=\"#depth-sweep\">"));
  // The terminal table.
  EXPECT_TRUE(has(html, "<th>val bits/byte at best (+- s.e.)</th>"));
  EXPECT_TRUE(has(html, "<td class=\"num\">101250</td>"));
  EXPECT_TRUE(has(html, "<span class=\"swatch\" style=\"background:#0072B2\"></span>post_ln"));
}

TEST(Report, SetupShowsTheCommandEscaped) {
  const std::string html = render_compare_report(schema2_results());
  EXPECT_TRUE(has(html,
                  "<pre class=\"command\">normlab compare --quick --title &quot;A&amp;B&quot; "
                  "&lt;x&gt;</pre>"));
  EXPECT_TRUE(has(html, "<tr><th>corpus</th><td>toy</td></tr>"));
  EXPECT_TRUE(has(html, "<tr><th>seeds</th><td>[1, 2]</td></tr>"));
  EXPECT_TRUE(has(html, "<tr><th>ln_eps</th><td>1e-5</td></tr>"));
  EXPECT_TRUE(has(html, "Elapsed: 1m23s."));
  EXPECT_TRUE(has(html, "Scale preset: <code>small</code>"));
}

TEST(Report, NullAndNaNLeaveGapsNotText) {
  json::Value results = schema2_results();
  results["runs"].at(3)["curve"]["val_loss"].as_array()[0] = std::nan("");
  results["runs"].at(3)["curve"]["train_loss"].as_array()[1] = HUGE_VAL;
  results["depth_sweep"]["policies"]["pre_ln"]["last"]["mean"].as_array()[1] = json::Value();
  results["depth_sweep"]["policies"]["pre_ln"]["last_fit"]["lo"] = json::Value();
  results["tuned"].at(0)["se"] = json::Value();
  const std::string html = render_compare_report(results);
  const std::string svg = svg_text(html);
  EXPECT_FALSE(has(svg, "nan"));
  EXPECT_FALSE(has(svg, "inf"));
  EXPECT_TRUE(has(html, "pre_ln: slope -0.50"));

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
  // +infinity alone (a diverged run) is an x on the top edge.
  const std::string inf = rep::line_chart(spec, {{{1, 2}, {HUGE_VAL, 3}, "#000"}});
  EXPECT_TRUE(has(inf, "the value became non-finite there"));
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
  // A fixed ceiling (above the unigram loss) clips the same way.
  spec.y_top = 6;
  EXPECT_LE(rep::chart_axes(spec, series).y.hi, 6);
  EXPECT_TRUE(rep::chart_axes(spec, series).clipped);
}

TEST(Report, EscapesEveryText) {
  EXPECT_EQ(rep::escape_html("a<b&c>\"d'"), "a&lt;b&amp;c&gt;&quot;d&#39;");
  json::Value results = schema2_results();
  results["title"] = "Tom's \"report\" <1>";
  results["policies"].at(0)["name"] = "a<b&c";
  results["policies"].at(0)["config"]["activation"] = "<gelu>";
  results["runs"].at(0)["policy"] = "a<b&c";
  results["lr_stress"].as_object().set("x>y", results["lr_stress"]["pre_ln"]);
  results["findings"].at(0)["detail"] = "<b>bold</b> & 'quoted'";
  results["findings"].at(0)["scale"] = "<s>";
  const std::string html = render_compare_report(results);
  EXPECT_TRUE(has(html, "a&lt;b&amp;c"));
  EXPECT_FALSE(has(html, "a<b&c"));
  EXPECT_FALSE(has(html, "<gelu>"));
  EXPECT_FALSE(has(html, "<s>"));
  EXPECT_TRUE(has(html, "x&gt;y (survived 35, 33 steps)"));
  EXPECT_TRUE(has(html, "<title>Tom&#39;s &quot;report&quot; &lt;1&gt;</title>"));
  EXPECT_TRUE(has(html, "&lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;"));
  EXPECT_FALSE(has(html, "<b>bold</b>"));
}

TEST(Report, AbsentSectionsAreSkippedWithANote) {
  const std::string html = render_compare_report(json::parse("{}"));
  EXPECT_EQ(count(html, "<svg"), 0u);
  for (const char* key : {"policies", "findings", "table", "depth_sweep", "lr_sweep", "tuned",
                          "lr_stress", "run", "config"})
    EXPECT_TRUE(has(html, std::string("no \"") + key + "\" section")) << key;
  EXPECT_TRUE(has(html, "<title>normlab compare</title>"));
  EXPECT_TRUE(has(html, "<nav class=\"toc\">"));
  EXPECT_TRUE(has(html, "does not record the command"));

  // Only some sections: no runs, so neither the sweep nor the tuned curves.
  json::Value some = schema2_results();
  some.as_object().set("runs", json::Value());
  some.as_object().set("depth_sweep", json::Value());
  some.as_object().set("lr_stress", json::Object{});
  const std::string partial = render_compare_report(some);
  EXPECT_EQ(count(partial, "<svg class=\"chart\""), 1u);  // the empty lr_stress chart
  EXPECT_TRUE(has(partial, "no finite values to plot"));
  EXPECT_EQ(count(partial, "no \"runs\" section"), 2u);
  EXPECT_TRUE(has(partial, "no \"depth_sweep\" section"));

  expect_error([] { (void)render_compare_report(json::Value(3)); },
               {"results must be a JSON object", "number 3"});
  expect_error(
      [] {
        json::Value r = schema2_results();
        r["depth_sweep"]["policies"]["pre_ln"]["last"]["mean"] = "x";
        (void)render_compare_report(r);
      },
      {"section \"depth_sweep\"", "pre_ln", "expected an array"});
  expect_error(
      [] {
        json::Value r = schema2_results();
        r["lr_sweep"]["runs"].push_back(99);
        (void)render_compare_report(r);
      },
      {"section \"lr_sweep\"", "run index 99", "outside \"runs\""});
  expect_error(
      [] {
        json::Value r = schema2_results();
        r["runs"].at(3)["curve"]["step"] = "x";
        (void)render_compare_report(r);
      },
      {"section \"tuned\"", "\"step\"", "expected an array"});
  expect_error(
      [] {
        json::Value r = schema2_results();
        r["policies"].at(0)["config"] = 3;
        (void)render_compare_report(r);
      },
      {"section \"policies\"", "object"});
}

TEST(Report, SameJsonSameBytes) {
  const json::Value results = schema2_results();
  const std::string a = render_compare_report(results);
  EXPECT_EQ(a, render_compare_report(results));
  EXPECT_EQ(a, render_compare_report(json::parse(json::dump(results))));
}

TEST(Report, SelfContained) {
  const std::string html = render_compare_report(schema2_results());
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

TEST(Report, WritesASampleReport) {
  const json::Value results = schema2_results();
  const std::string html = render_compare_report(results);
  EXPECT_FALSE(has(svg_text(html), "nan"));
  EXPECT_FALSE(has(svg_text(html), "inf"));
  const std::string path = ::testing::TempDir() + "normlab_compare_report.html";
  std::ofstream(path, std::ios::binary) << html;
  std::ofstream(::testing::TempDir() + "normlab_compare_results.json", std::ios::binary)
      << json::dump(results);
  std::ifstream back(path, std::ios::binary);
  const std::string read((std::istreambuf_iterator<char>(back)), std::istreambuf_iterator<char>());
  EXPECT_EQ(read, html);
  std::cout << "sample report: " << path << " (" << html.size() << " bytes)\n";
}

}  // namespace
}  // namespace normlab::testing
