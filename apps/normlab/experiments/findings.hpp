// apps/normlab/experiments/findings.hpp — the claims `normlab compare`
// tests, each with a rule fixed before any run and the scale at which it is
// expected to show, judged on CompareResults; and the terminal table.
//
// Scale: "small" claims are real at this library's sizes (theory at
// initialization, warm-up at C 64); "paper" claims were measured by their
// papers at 125M-2.7B parameters and are judged here only for what a small
// run can say; "lesson" entries are about method, not about a placement.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "experiments/compare.hpp"
#include "experiments/statistics.hpp"
#include "normlab/io/json.hpp"

namespace normlab {
inline namespace v0 {

/// A claim and whether this run shows it (unset: the run cannot tell, e.g. a
/// policy it needs was not run or the interval is too wide).
struct Finding {
  std::string id;          ///< stable key: "depth_slopes", "warmup_needed", ...
  std::string experiment;  ///< "depth_sweep", "lr_sweep", "tuned", "lr_stress"
  std::string scale;       ///< "small", "paper" or "lesson"
  std::string claim;
  std::string source;  ///< the paper and place
  std::string rule;    ///< when the run counts as showing the claim
  std::optional<bool> shows;
  std::string detail;  ///< the measured numbers
};

/// The ratio of the last layer's to the first layer's gradient norm of
/// `group` in `profile` (NaN when absent).
inline double last_to_first(const GradientProfile& profile, const std::string& group = "fc2") {
  const auto it = profile.find(group);
  if (it == profile.end() || it->second.empty()) return std::numeric_limits<double>::quiet_NaN();
  return it->second.back() / it->second.front();
}

/// The interval the mean of the steps survived lies in: [mean, mean] when
/// every seed exploded, [mean, +inf) when some seed was censored (it would
/// have survived at least its recorded steps).
inline std::pair<double, double> survived_bounds(const StressResult& s) {
  std::vector<double> v(s.survived.begin(), s.survived.end());
  const double m = detail::mean_of(v);
  const bool censored = std::find(s.censored.begin(), s.censored.end(), true) != s.censored.end();
  return {m, censored ? std::numeric_limits<double>::infinity() : m};
}

/// The table's text for the steps survived: "96.0", or ">= 150.0" when some
/// seed was censored.
inline std::string survived_text(const StressResult& s) {
  const auto [lo, hi] = survived_bounds(s);
  if (!std::isfinite(lo)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%s%.1f", std::isinf(hi) ? ">= " : "", lo);
  return b;
}

/// Mean over seeds of fc2's gradient norm in the last layer at each depth.
inline std::vector<double> mean_last_norms(const DepthSweepResult& d) {
  std::vector<double> v;
  for (const auto& samples : d.last) v.push_back(detail::mean_of(samples));
  return v;
}

/// The largest LR of the sweep at which `policy` trained, with warm-up 0
/// (`with_warmup` false) or with some warm-up > 0; NaN when none did.
inline double largest_trained_lr(const CompareResults& r, const std::string& policy,
                                 bool with_warmup) {
  double best = std::numeric_limits<double>::quiet_NaN();
  for (size_t i : r.sweep) {
    const TrainingRun& t = r.runs[i];
    if (t.policy != policy || (t.warmup > 0) != with_warmup || t.outcome != RunOutcome::trained)
      continue;
    if (!(t.lr <= best)) best = t.lr;
  }
  return best;
}

namespace detail {

inline std::string num(double x, const char* fmt = "%.3g") {
  if (!std::isfinite(x)) return "n/a";
  char b[48];
  std::snprintf(b, sizeof b, fmt, x);
  return b;
}

inline std::string interval_text(double value, double lo, double hi, const char* fmt = "%+.2f") {
  std::string s = num(value, fmt);
  if (std::isfinite(lo) && std::isfinite(hi)) s += " [" + num(lo, fmt) + ", " + num(hi, fmt) + "]";
  return s;
}

/// The sorted, distinct LRs of the sweep's runs of `policy`.
inline std::vector<double> sweep_lrs(const CompareResults& r, const std::string& policy) {
  std::vector<double> lrs;
  for (size_t i : r.sweep)
    if (r.runs[i].policy == policy) lrs.push_back(r.runs[i].lr);
  std::sort(lrs.begin(), lrs.end());
  lrs.erase(std::unique(lrs.begin(), lrs.end()), lrs.end());
  return lrs;
}

/// The sweep's run of `policy` at (lr, warmup); null when absent.
inline const TrainingRun* sweep_run(const CompareResults& r, const std::string& policy, double lr,
                                    int64_t warmup) {
  for (size_t i : r.sweep) {
    const TrainingRun& t = r.runs[i];
    if (t.policy == policy && t.lr == lr && t.warmup == warmup) return &t;
  }
  return nullptr;
}

inline bool trained(const TrainingRun* t) {
  return t && t->outcome == RunOutcome::trained;
}

/// Whether `policy` trained at `lr` with some warm-up > 0 of the sweep.
inline bool trained_with_some_warmup(const CompareResults& r, const std::string& policy,
                                     double lr) {
  for (size_t i : r.sweep) {
    const TrainingRun& t = r.runs[i];
    if (t.policy == policy && t.lr == lr && t.warmup > 0 && t.outcome == RunOutcome::trained)
      return true;
  }
  return false;
}

/// The mean profile of the first measured moment over an entry's runs
/// (those that reached it), with its step and name.
inline std::optional<TrainedGradientProfile> early_profile(const CompareResults& r,
                                                           const TunedEntry& e) {
  std::optional<TrainedGradientProfile> out;
  int64_t count = 0;
  for (size_t i : e.runs) {
    const TrainingRun& t = r.runs[i];
    if (t.profiles.empty()) continue;
    const TrainedGradientProfile& p = t.profiles.front();
    if (!out) out = TrainedGradientProfile{p.step, p.moment, {}};
    if (p.step != out->step) continue;
    for (const auto& [group, v] : p.norms) {
      auto& acc = out->norms[group];
      acc.resize(v.size(), 0.0);
      for (size_t l = 0; l < v.size(); ++l) acc[l] += v[l];
    }
    ++count;
  }
  if (out) out->norms = mean_profile(std::move(out->norms), count);
  return out;
}

}  // namespace detail

/// The claims, judged on `r` by the rules written in each Finding.
inline std::vector<Finding> compare_findings(const CompareResults& r) {
  using detail::num;
  std::vector<Finding> f;
  const auto depth_of = [&](const char* p) { return CompareResults::find_entry(r.depth, p); };
  const DepthSweepResult *dpost = depth_of("post_ln"), *dpre = depth_of("pre_ln");
  if (dpost && dpre) {
    Finding a{"depth_slopes",
              "depth_sweep",
              "small",
              "At initialization Pre-LN's last-layer FFN weight gradient shrinks with depth like "
              "L^-1/2 while Post-LN's does not, so Post-LN's grows relative to Pre-LN's with depth",
              "Xiong et al. 2020, Theorem 1 (Post-LN O(d sqrt(ln d)), Pre-LN O(d sqrt(ln d / L)))",
              "shown when the 95% interval of Pre-LN's ln-ln slope lies below -0.25, Post-LN's "
              "interval lies above Pre-LN's, and the Post-LN / Pre-LN ratio is larger at the "
              "deepest L than at the shallowest; not shown otherwise; inconclusive with fewer "
              "than 3 depths or no interval",
              std::nullopt,
              ""};
    const LineFit &fp = dpost->last_fit, &fq = dpre->last_fit;
    const std::vector<double> mp = mean_last_norms(*dpost), mq = mean_last_norms(*dpre);
    const double ratio_first = mp.front() / mq.front(), ratio_last = mp.back() / mq.back();
    if (mp.size() >= 3 && std::isfinite(fp.lo) && std::isfinite(fq.hi))
      a.shows = fq.hi < -0.25 && fp.lo > fq.hi && ratio_last > ratio_first;
    a.detail = "slope of ln(fc2 gradient norm, last layer) against ln(L): post_ln " +
               detail::interval_text(fp.slope, fp.lo, fp.hi) + ", pre_ln " +
               detail::interval_text(fq.slope, fq.lo, fq.hi) +
               " (theory: 0 and -0.5); post_ln / pre_ln " + num(ratio_first) + " at the " +
               "shallowest depth, " + num(ratio_last) + " at the deepest";
    f.push_back(std::move(a));
    Finding b{"post_ln_depth_independent",
              "depth_sweep",
              "small",
              "At initialization Post-LN's last-layer FFN weight gradient does not shrink with "
              "depth",
              "Xiong et al. 2020, Theorem 1 (the bound for Post-LN does not depend on L)",
              "shown when the 95% interval of Post-LN's ln-ln slope lies above -0.25; not shown "
              "when it lies below; inconclusive when it contains -0.25 or is unknown",
              std::nullopt,
              "post_ln slope " + detail::interval_text(fp.slope, fp.lo, fp.hi)};
    if (std::isfinite(fp.lo) && fp.lo > -0.25) b.shows = true;
    if (std::isfinite(fp.hi) && fp.hi < -0.25) b.shows = false;
    f.push_back(std::move(b));
  }

  const bool have_sweep =
      !detail::sweep_lrs(r, "post_ln").empty() && !detail::sweep_lrs(r, "pre_ln").empty();
  if (have_sweep) {
    Finding a{"warmup_needed",
              "lr_sweep",
              "small",
              "Without warm-up Post-LN fails at learning rates where Pre-LN trains",
              "Xiong et al. 2020, section 3",
              "shown when at some LR of the sweep, without warm-up, Pre-LN trains and Post-LN "
              "fails or diverges; not shown when Post-LN trains at every LR where Pre-LN does; "
              "inconclusive when Pre-LN trains at no LR without warm-up",
              std::nullopt,
              ""};
    double critical = std::numeric_limits<double>::quiet_NaN();
    bool pre_trains_somewhere = false;
    for (double lr : detail::sweep_lrs(r, "pre_ln")) {
      const TrainingRun* q = detail::sweep_run(r, "pre_ln", lr, 0);
      const TrainingRun* p = detail::sweep_run(r, "post_ln", lr, 0);
      if (!detail::trained(q) || !p) continue;
      pre_trains_somewhere = true;
      if (!detail::trained(p) && !std::isfinite(critical)) critical = lr;
    }
    if (pre_trains_somewhere) a.shows = std::isfinite(critical);
    a.detail = "without warm-up post_ln trains up to LR " +
               num(largest_trained_lr(r, "post_ln", false)) + ", pre_ln up to " +
               num(largest_trained_lr(r, "pre_ln", false)) +
               (std::isfinite(critical)
                    ? "; the lowest LR where pre_ln trains and post_ln does not: " + num(critical)
                    : std::string());
    f.push_back(std::move(a));

    Finding b{"warmup_rescues",
              "lr_sweep",
              "small",
              "Warm-up lets Post-LN train at a learning rate where it fails without, up to a "
              "point",
              "Xiong et al. 2020, section 3",
              "shown when at some LR Post-LN fails without warm-up and trains with some warm-up "
              "length of the sweep; not shown when it fails without warm-up somewhere and no "
              "warm-up rescues it at any such LR; inconclusive when it never fails without "
              "warm-up",
              std::nullopt,
              ""};
    double rescued = std::numeric_limits<double>::quiet_NaN(),
           beyond = std::numeric_limits<double>::quiet_NaN();
    bool fails_somewhere = false;
    for (double lr : detail::sweep_lrs(r, "post_ln")) {
      const TrainingRun* p = detail::sweep_run(r, "post_ln", lr, 0);
      if (!p || detail::trained(p)) continue;
      fails_somewhere = true;
      if (detail::trained_with_some_warmup(r, "post_ln", lr)) {
        if (!std::isfinite(rescued)) rescued = lr;
      } else if (!std::isfinite(beyond)) {
        beyond = lr;
      }
    }
    if (fails_somewhere) b.shows = std::isfinite(rescued);
    b.detail =
        "post_ln trains with warm-up up to LR " + num(largest_trained_lr(r, "post_ln", true)) +
        " (without: " + num(largest_trained_lr(r, "post_ln", false)) + ")" +
        (std::isfinite(rescued) ? "; warm-up rescues it at LR " + num(rescued) : std::string()) +
        (std::isfinite(beyond) ? "; no warm-up of the sweep rescues it at LR " + num(beyond)
                               : std::string());
    f.push_back(std::move(b));
  }

  const TunedEntry *tnf = CompareResults::find_entry(r.tuned, "normformer"),
                   *tpre = CompareResults::find_entry(r.tuned, "pre_ln");
  const double bits = 1 / std::log(2.0);
  MeanInterval tuned_diff;
  if (tnf && tpre) {
    tuned_diff = paired_difference(r.final_losses(*tnf), r.final_losses(*tpre));
    Finding a{"normformer_tuned",
              "tuned",
              "paper",
              "NormFormer reaches a lower validation loss than Pre-LN, each at its own best "
              "learning rate",
              "Shleifer, Weston & Ott 2021 (125M-2.7B parameter models)",
              "the paired difference normformer - pre_ln over seeds: shown when its 95% interval "
              "lies below 0; not shown when it lies above 0; inconclusive otherwise (or with one "
              "seed)",
              std::nullopt,
              ""};
    if (std::isfinite(tuned_diff.hi) && tuned_diff.hi < 0) a.shows = true;
    if (std::isfinite(tuned_diff.lo) && tuned_diff.lo > 0) a.shows = false;
    a.detail = "normformer at LR " + num(tnf->lr) + " (warm-up " + std::to_string(tnf->warmup) +
               "), pre_ln at LR " + num(tpre->lr) + " (warm-up " + std::to_string(tpre->warmup) +
               "); normformer - pre_ln = " +
               detail::interval_text(tuned_diff.mean * bits, tuned_diff.lo * bits,
                                     tuned_diff.hi * bits, "%+.4f") +
               " bits per byte over " + std::to_string(tuned_diff.n) + " seeds";
    f.push_back(std::move(a));

    Finding b{"normformer_flatter_early",
              "tuned",
              "paper",
              "Early in training Pre-LN's early layers get larger fc2 gradients than its late "
              "ones, and NormFormer brings the layers closer together",
              "Shleifer, Weston & Ott 2021, Figure 2",
              "at the first profile of the tuned runs (the end of warm-up, or of training "
              "without warm-up), mean over seeds: shown when Pre-LN's last/first ratio is below "
              "1/1.5 and NormFormer's is closer to 1 (in log); not shown otherwise",
              std::nullopt,
              ""};
    const auto ep = detail::early_profile(r, *tpre), en = detail::early_profile(r, *tnf);
    if (ep && en) {
      const double rq = last_to_first(ep->norms), rn = last_to_first(en->norms);
      if (std::isfinite(rq) && std::isfinite(rn))
        b.shows = rq < 1 / 1.5 && std::abs(std::log(rn)) < std::abs(std::log(rq));
      b.detail = "fc2 gradient norm, last layer / first layer: pre_ln " + num(rq) + " after " +
                 std::to_string(ep->step) + " steps (" + ep->moment + "), normformer " + num(rn) +
                 " after " + std::to_string(en->step) + " steps (" + en->moment + ")";
    }
    f.push_back(std::move(b));
  }

  const TunedEntry *mnf = CompareResults::find_entry(r.mismatched, "normformer"),
                   *mpre = CompareResults::find_entry(r.mismatched, "pre_ln");
  if (mnf && mpre) {
    const MeanInterval d = paired_difference(r.final_losses(*mnf), r.final_losses(*mpre));
    Finding a{"mismatched_lr",
              "tuned",
              "lesson",
              "A learning rate tuned for one policy and not the other can manufacture a win",
              "the NormFormer paper's habit: a higher peak LR for NormFormer than for the baseline",
              "shown when the mismatched pair's paired difference normformer - pre_ln has a 95% "
              "interval below 0 while the tuned comparison's does not",
              std::nullopt,
              ""};
    if (std::isfinite(d.hi) && (tnf && tpre))
      a.shows = d.hi < 0 && !(std::isfinite(tuned_diff.hi) && tuned_diff.hi < 0);
    a.detail = "normformer at LR " + num(mnf->lr) + ", pre_ln at LR " + num(mpre->lr) +
               " (warm-up " + std::to_string(mnf->warmup) + "): normformer - pre_ln = " +
               detail::interval_text(d.mean * bits, d.lo * bits, d.hi * bits, "%+.4f") +
               " bits per byte; each at its best LR: " +
               detail::interval_text(tuned_diff.mean * bits, tuned_diff.lo * bits,
                                     tuned_diff.hi * bits, "%+.4f");
    f.push_back(std::move(a));
  }

  const StressResult *snf = CompareResults::find_entry(r.stress, "normformer"),
                     *spre = CompareResults::find_entry(r.stress, "pre_ln");
  if (snf && spre) {
    Finding a{"normformer_stress",
              "lr_stress",
              "paper",
              "NormFormer survives more steps of a rising learning rate than Pre-LN",
              "Shleifer, Weston & Ott 2021 (LR stability)",
              "the mean steps survived over seeds, a censored seed making the mean a lower "
              "bound: shown when NormFormer's interval lies more than 2 steps above Pre-LN's; "
              "not shown when more than 2 steps below; inconclusive otherwise",
              std::nullopt,
              ""};
    const auto [nf_lo, nf_hi] = survived_bounds(*snf);
    const auto [pre_lo, pre_hi] = survived_bounds(*spre);
    if (nf_lo - pre_hi > 2)
      a.shows = true;
    else if (pre_lo - nf_hi > 2)
      a.shows = false;
    a.detail = "LR-stress steps survived (mean over seeds): normformer " + survived_text(*snf) +
               ", pre_ln " + survived_text(*spre);
    if (std::isinf(nf_hi) || std::isinf(pre_hi))
      a.detail += " (\">= N\": a seed reached the cap, so the mean is a lower bound)";
    if (std::isinf(nf_hi) && std::isinf(pre_hi))
      a.detail += "; both reached the cap, so the cap decides nothing: raise --stress-steps";
    f.push_back(std::move(a));
  }
  return f;
}

/// The terminal table: one row per policy.
inline json::Value compare_table(const CompareResults& r) {
  using detail::num;
  const double bits = 1 / std::log(2.0);
  json::Array rows;
  for (const PolicyInfo& p : r.policies) {
    json::Array row{p.policy, std::to_string(p.parameters)};
    const DepthSweepResult* d = CompareResults::find_entry(r.depth, p.policy);
    row.push_back(d ? detail::interval_text(d->last_fit.slope, d->last_fit.lo, d->last_fit.hi)
                    : "n/a");
    row.push_back(num(largest_trained_lr(r, p.policy, false)));
    row.push_back(num(largest_trained_lr(r, p.policy, true)));
    const TunedEntry* t = CompareResults::find_entry(r.tuned, p.policy);
    if (t) {
      row.push_back(num(t->lr) + ", " + std::to_string(t->warmup));
      const MeanInterval m = mean_interval(r.final_losses(*t));
      row.push_back(num(m.mean * bits, "%.4f") +
                    (std::isfinite(m.se) ? " +- " + num(m.se * bits, "%.4f") : std::string()));
    } else {
      row.push_back("none trained");
      row.push_back("n/a");
    }
    const StressResult* s = CompareResults::find_entry(r.stress, p.policy);
    row.push_back(s ? survived_text(*s) : "n/a");
    rows.push_back(std::move(row));
  }
  return json::Object{
      {"columns", json::Array{"policy", "parameters", "fc2 grad slope vs depth (init)",
                              "largest LR trained, no warm-up", "largest LR trained, warm-up",
                              "best LR, warm-up", "val bits/byte at best (+- s.e.)",
                              "LR-stress steps survived"}},
      {"rows", std::move(rows)}};
}

}  // namespace v0
}  // namespace normlab
