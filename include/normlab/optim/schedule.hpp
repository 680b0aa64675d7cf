// normlab/optim/schedule.hpp — learning-rate schedules: lr(step) for
// step = 0, 1, 2, ...
//
// Convention: `step` is the number of optimizer updates already done
// (fairseq's num_updates), so lr(0) is the rate of the first update:
//
//   for (int64_t step = 0; step < total; ++step) {
//     opt.set_lr(schedule.lr(step));
//     ... backward ...; opt.step();
//   }
//
// Warm-up (every kind but exponential), for step < W = warmup_steps:
//
//   lr = warmup_init_lr + step * (peak_lr - warmup_init_lr) / W
//
// as fairseq's inverse_sqrt and cosine schedules compute it
// (fairseq/optim/lr_scheduler/inverse_square_root_schedule.py,
// cosine_lr_scheduler.py); polynomial_decay_schedule.py has the same ramp
// from 0, written (step / W) * peak. So lr(0) = warmup_init_lr (0 by
// default: the first update does not move the weights, but it does start
// Adam's moments), lr(W) = peak_lr. HF transformers' warm-up is the same;
// fairseq's `fixed` schedule uses (step + 1) / W instead, which this library
// does not. After warm-up, with s = step - W and D = total_steps - W:
//
//   constant:     lr = peak_lr
//   polynomial:   lr = (peak_lr - end_lr) * (1 - s / D)^power + end_lr  for step < total_steps,
//                 end_lr afterwards            (fairseq polynomial_decay_schedule.py)
//   linear:       polynomial with power 1
//   cosine:       lr = end_lr + (peak_lr - end_lr) / 2 * (1 + cos(pi * s / D))  for step <
//   total_steps,
//                 end_lr afterwards            (fairseq cosine_lr_scheduler.py, t_mult 1, min_lr =
//                 end_lr; fairseq restarts the cycle after total_steps, normlab holds end_lr)
//   inverse_sqrt: lr = peak_lr * sqrt(W) / sqrt(step)   (fairseq inverse_square_root_schedule.py)
//   exponential:  lr = peak_lr * factor^step, no warm-up — the NormFormer paper's learning-rate
//                 stress test: raise the rate a little every step until the loss explodes.
//
// DESIGN.md §1's reference recipe (NormFormer release): linear warm-up, then
// polynomial decay (power 1 in fairseq's default) to 0.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {

/// A learning-rate schedule, a plain value: set the fields, or use the named
/// constructors (which validate), or Schedule::parse a spec string.
struct Schedule {
  enum class Kind { constant, linear, polynomial, cosine, inverse_sqrt, exponential };

  Kind kind = Kind::constant;
  double peak_lr = 1e-3;      ///< the rate after warm-up (exponential: the rate at step 0)
  int64_t warmup_steps = 0;   ///< W
  double warmup_init_lr = 0;  ///< the rate at step 0 of the warm-up
  int64_t total_steps = 0;    ///< linear/polynomial/cosine: the step from which end_lr holds
  double end_lr = 0;          ///< linear/polynomial: final rate; cosine: min_lr
  double power = 1;           ///< polynomial exponent
  double factor = 1;          ///< exponential: growth per step

  bool operator==(const Schedule&) const = default;

  // ---- named constructors (each validates) ---------------------------
  static Schedule constant(double lr, int64_t warmup_steps = 0) {
    return made({.kind = Kind::constant, .peak_lr = lr, .warmup_steps = warmup_steps});
  }
  static Schedule linear(double peak_lr, int64_t warmup_steps, int64_t total_steps,
                         double end_lr = 0) {
    return made({.kind = Kind::linear,
                 .peak_lr = peak_lr,
                 .warmup_steps = warmup_steps,
                 .total_steps = total_steps,
                 .end_lr = end_lr});
  }
  static Schedule polynomial(double peak_lr, int64_t warmup_steps, int64_t total_steps,
                             double end_lr = 0, double power = 1) {
    return made({.kind = Kind::polynomial,
                 .peak_lr = peak_lr,
                 .warmup_steps = warmup_steps,
                 .total_steps = total_steps,
                 .end_lr = end_lr,
                 .power = power});
  }
  /// Warm-up starts at min_lr, as fairseq's cosine schedule does by default.
  static Schedule cosine(double peak_lr, int64_t warmup_steps, int64_t total_steps,
                         double min_lr = 0) {
    return made({.kind = Kind::cosine,
                 .peak_lr = peak_lr,
                 .warmup_steps = warmup_steps,
                 .warmup_init_lr = min_lr,
                 .total_steps = total_steps,
                 .end_lr = min_lr});
  }
  static Schedule inverse_sqrt(double peak_lr, int64_t warmup_steps) {
    return made({.kind = Kind::inverse_sqrt, .peak_lr = peak_lr, .warmup_steps = warmup_steps});
  }
  /// The learning-rate stress ramp: start_lr * factor^step.
  static Schedule exponential(double start_lr, double factor) {
    return made({.kind = Kind::exponential, .peak_lr = start_lr, .factor = factor});
  }

  /// The rate of the update that follows `step` completed updates.
  /// Requires: step >= 0 and a valid schedule (throws Error otherwise).
  double lr(int64_t step) const {
    validate();
    detail::check(step >= 0, "Schedule(", name(kind), "): step must be >= 0, got ", step);
    const int64_t W = warmup_steps;
    if (kind == Kind::exponential) return peak_lr * std::pow(factor, static_cast<double>(step));
    if (step < W)
      return warmup_init_lr +
             static_cast<double>(step) * ((peak_lr - warmup_init_lr) / static_cast<double>(W));
    const double s = static_cast<double>(step - W);
    const double d = static_cast<double>(total_steps - W);
    switch (kind) {
      case Kind::constant:
        return peak_lr;
      case Kind::linear:
      case Kind::polynomial:
        if (step >= total_steps) return end_lr;
        return (peak_lr - end_lr) * std::pow(1 - s / d, kind == Kind::linear ? 1.0 : power) +
               end_lr;
      case Kind::cosine:
        if (step >= total_steps) return end_lr;
        return end_lr + 0.5 * (peak_lr - end_lr) * (1 + std::cos(std::numbers::pi * s / d));
      case Kind::inverse_sqrt:
        return peak_lr * std::sqrt(static_cast<double>(W)) / std::sqrt(static_cast<double>(step));
      case Kind::exponential:
        break;
    }
    return peak_lr;
  }

  /// Throws Error naming the field and its value when the fields do not
  /// describe a schedule: rates must be finite and >= 0; warmup_steps >= 0;
  /// linear/polynomial/cosine need total_steps > warmup_steps; polynomial a
  /// power > 0; inverse_sqrt warmup_steps >= 1 (its decay is anchored at W);
  /// exponential a factor > 0 and no warm-up.
  void validate() const {
    const std::string who = "Schedule(" + std::string(name(kind)) + "): ";
    const auto rate = [&](const char* field, double v) {
      detail::check(std::isfinite(v) && v >= 0, who, field, " must be finite and >= 0, got ", v);
    };
    rate(kind == Kind::exponential ? "start_lr (peak_lr)" : "peak_lr", peak_lr);
    detail::check(warmup_steps >= 0, who, "warmup_steps must be >= 0, got ", warmup_steps);
    switch (kind) {
      case Kind::linear:
      case Kind::polynomial:
      case Kind::cosine:
        detail::check(total_steps > warmup_steps, who, "total_steps must be > warmup_steps (",
                      warmup_steps, "), got ", total_steps);
        rate(kind == Kind::cosine ? "end_lr (min_lr)" : "end_lr", end_lr);
        if (kind == Kind::polynomial)
          detail::check(std::isfinite(power) && power > 0, who,
                        "power must be finite and > 0, got ", power);
        break;
      case Kind::inverse_sqrt:
        detail::check(warmup_steps >= 1, who,
                      "warmup_steps must be >= 1 (the decay is peak_lr * sqrt(W / step)), got ",
                      warmup_steps);
        break;
      case Kind::exponential:
        detail::check(std::isfinite(factor) && factor > 0, who,
                      "factor must be finite and > 0, got ", factor);
        detail::check(warmup_steps == 0, who, "has no warm-up; warmup_steps must be 0, got ",
                      warmup_steps);
        break;
      case Kind::constant:
        break;
    }
    rate("warmup_init_lr", warmup_init_lr);
  }

  static constexpr const char* name(Kind k) {
    switch (k) {
      case Kind::constant:
        return "constant";
      case Kind::linear:
        return "linear";
      case Kind::polynomial:
        return "polynomial";
      case Kind::cosine:
        return "cosine";
      case Kind::inverse_sqrt:
        return "inverse_sqrt";
      case Kind::exponential:
        return "exponential";
    }
    return "?";
  }

  /// The spec Schedule::parse reads back to this schedule, listing every key
  /// of the kind: "cosine:lr=0.001,warmup=100,init=1e-05,total=1000,end=1e-05".
  std::string to_string() const {
    std::string s = name(kind);
    char sep = ':';
    for (const Key& k : keys(kind)) {
      s += sep;
      s += k.name;
      s += '=';
      char buf[32];
      const auto r = k.is_int ? std::to_chars(buf, buf + sizeof buf, this->*k.int_field)
                              : std::to_chars(buf, buf + sizeof buf, this->*k.double_field);
      s.append(buf, r.ptr);
      sep = ',';
    }
    return s;
  }

  /// Reads "kind:key=value,key=value,...". Kinds and their keys:
  ///
  ///   constant      lr, warmup, init
  ///   linear        lr, warmup, init, total, end
  ///   polynomial    lr, warmup, init, total, end, power
  ///   cosine        lr, warmup, init, total, end   (init defaults to end, as fairseq)
  ///   inverse_sqrt  lr, warmup, init
  ///   exponential   lr, factor                     (lr is the start rate)
  ///
  /// `lr` is required, and `total` for linear/polynomial/cosine, `warmup` for
  /// inverse_sqrt, `factor` for exponential; other keys default to the field
  /// defaults. Integers (warmup, total) must be written as integers.
  /// E.g. "polynomial:lr=6e-4,warmup=500,total=20000".
  /// Throws Error quoting the spec and naming the unknown kind or key, the
  /// value that is not a number, a repeated or missing key; then validates.
  static Schedule parse(std::string_view spec) {
    const std::string quoted = "Schedule::parse('" + std::string(spec) + "'): ";
    const size_t colon = spec.find(':');
    const std::string_view kind_name = spec.substr(0, colon);
    Schedule s;
    bool known = false;
    for (Kind k : {Kind::constant, Kind::linear, Kind::polynomial, Kind::cosine, Kind::inverse_sqrt,
                   Kind::exponential})
      if (kind_name == name(k)) {
        s.kind = k;
        known = true;
      }
    detail::check(known, quoted, "unknown schedule '", kind_name,
                  "' (expected constant, linear, polynomial, cosine, inverse_sqrt or exponential)");
    const std::vector<Key> accepted = keys(s.kind);
    std::vector<std::string_view> seen;
    std::string_view rest = colon == std::string_view::npos ? "" : spec.substr(colon + 1);
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
      const size_t eq = item.find('=');
      detail::check(eq != std::string_view::npos && eq > 0, quoted, "expected key=value, got '",
                    item, "'");
      const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
      const Key* k = nullptr;
      for (const Key& a : accepted)
        if (key == a.name) k = &a;
      detail::check(k != nullptr, quoted, "key '", key, "' does not apply to ", name(s.kind),
                    " (accepted: ", key_list(accepted), ")");
      for (std::string_view done : seen)
        detail::check(done != key, quoted, "key '", key, "' is given twice");
      seen.push_back(key);
      const char* end = value.data() + value.size();
      const auto r = k->is_int ? std::from_chars(value.data(), end, s.*k->int_field)
                               : std::from_chars(value.data(), end, s.*k->double_field);
      detail::check(r.ec == std::errc() && r.ptr == end, quoted, "'", key, "=", value, "' is not ",
                    k->is_int ? "an integer" : "a number");
    }
    const auto given = [&](std::string_view key) {
      for (std::string_view done : seen)
        if (done == key) return true;
      return false;
    };
    std::vector<std::string_view> required{"lr"};
    if (s.kind == Kind::linear || s.kind == Kind::polynomial || s.kind == Kind::cosine)
      required.push_back("total");
    if (s.kind == Kind::inverse_sqrt) required.push_back("warmup");
    if (s.kind == Kind::exponential) required.push_back("factor");
    for (std::string_view key : required)
      detail::check(given(key), quoted, "missing key '", key, "' (", name(s.kind), " needs ",
                    key_list(accepted), ")");
    if (s.kind == Kind::cosine && !given("init")) s.warmup_init_lr = s.end_lr;
    return made(s);
  }

 private:
  // Aliases, not member-pointer declarators: nvcc's host code would wrap those
  // in parentheses, which g++ -Wparentheses rejects.
  using IntField = int64_t Schedule::*;
  using DoubleField = double Schedule::*;
  struct Key {
    const char* name;
    bool is_int;
    IntField int_field;
    DoubleField double_field;
  };
  static constexpr Key dbl(const char* n, double Schedule::*f) { return {n, false, nullptr, f}; }
  static constexpr Key integer(const char* n, int64_t Schedule::*f) {
    return {n, true, f, nullptr};
  }

  /// The spec keys of kind k, in to_string order.
  static std::vector<Key> keys(Kind k) {
    std::vector<Key> v{dbl("lr", &Schedule::peak_lr)};
    if (k == Kind::exponential) {
      v.push_back(dbl("factor", &Schedule::factor));
      return v;
    }
    v.push_back(integer("warmup", &Schedule::warmup_steps));
    v.push_back(dbl("init", &Schedule::warmup_init_lr));
    if (k == Kind::linear || k == Kind::polynomial || k == Kind::cosine) {
      v.push_back(integer("total", &Schedule::total_steps));
      v.push_back(dbl("end", &Schedule::end_lr));
    }
    if (k == Kind::polynomial) v.push_back(dbl("power", &Schedule::power));
    return v;
  }
  static std::string key_list(const std::vector<Key>& keys) {
    std::string s;
    for (const Key& k : keys) s += (s.empty() ? "" : ", ") + std::string(k.name);
    return s;
  }

  static Schedule made(const Schedule& s) {
    s.validate();
    return s;
  }
};

}  // namespace v0
}  // namespace normlab
