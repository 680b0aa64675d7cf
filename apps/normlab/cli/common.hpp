// apps/normlab/cli/common.hpp — what the commands of `normlab` share: flag
// parsing to the command-line conventions, number parsing, file writing, and
// the commands' entry points.
//
// Conventions: `--flag value` and `--flag=value`; `--` ends the flags (no
// command takes operands, so anything after it is an error too); `--help`
// prints the usage with every default on stdout (exit 0); a usage error
// (UsageError: unknown flag, missing or bad value) is one line on stderr and
// exit status 2; any other failure is one line on stderr and exit status 1.
// Every message starts with "normlab <command>: ".
#pragma once

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "normlab/normlab.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

namespace nl = normlab;

/// A mistake in how a command was called (an unknown flag, a missing or
/// malformed value, flags that exclude each other): exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// The flags of one command, checked against what it accepts. Values may be
/// given as `--flag value` or `--flag=value`; `--` ends the flags.
class Flags {
 public:
  /// Flags in `accepted` take a value; those in `switches` stand alone. Each
  /// maps to its help text: "METAVAR   what it does (default ...)".
  /// Throws UsageError for an unknown flag, a value missing or given to a
  /// switch, a flag given twice, or an operand.
  Flags(std::string command, std::map<std::string, std::string> accepted, int argc, char** argv,
        int first, std::map<std::string, std::string> switches = {})
      : command_(std::move(command)),
        accepted_(std::move(accepted)),
        switches_(std::move(switches)) {
    bool operands = false;
    for (int i = first; i < argc; ++i) {
      std::string flag = argv[i];
      if (operands || flag.rfind("--", 0) != 0 || flag == "--") {
        if (flag == "--" && !operands) {
          operands = true;
          continue;
        }
        if (flag == "-h") {
          help_ = true;
          continue;
        }
        throw UsageError("unexpected argument '" + flag + "': normlab " + command_ +
                         " takes flags only (see normlab " + command_ + " --help)");
      }
      std::optional<std::string> inline_value;
      if (const size_t eq = flag.find('='); eq != std::string::npos) {
        inline_value = flag.substr(eq + 1);
        flag.resize(eq);
      }
      if (flag == "--help" && !inline_value) {
        help_ = true;
        continue;
      }
      if (switches_.contains(flag)) {
        if (inline_value) throw UsageError("flag " + flag + " takes no value");
        on_.insert(flag);
        continue;
      }
      if (!accepted_.contains(flag))
        throw UsageError("unknown flag '" + flag + "' (see normlab " + command_ + " --help)");
      if (!inline_value && i + 1 >= argc) throw UsageError("flag " + flag + " needs a value");
      if (values_.contains(flag)) throw UsageError("flag " + flag + " is given twice");
      values_[flag] = inline_value ? *inline_value : argv[++i];
    }
  }
  /// When --help was given: prints `description` and the flags' usage on
  /// stdout, and returns true.
  bool print_help(const char* description) const {
    if (help_) std::printf("%sflags:\n%s", description, usage().c_str());
    return help_;
  }
  /// Whether the value flag `flag` was given.
  bool given(const std::string& flag) const { return values_.contains(flag); }
  bool on(const std::string& flag) const { return on_.contains(flag); }
  std::string usage() const {
    std::string s;
    for (const auto& [flag, what] : accepted_) s += "  " + flag + " " + what + "\n";
    for (const auto& [flag, what] : switches_) s += "  " + flag + " " + what + "\n";
    return s;
  }
  /// The value of a required flag.
  const std::string& required(const std::string& flag) const {
    const auto it = values_.find(flag);
    if (it == values_.end())
      throw UsageError("missing " + flag + " (see normlab " + command_ + " --help)");
    return it->second;
  }
  std::string get(const std::string& flag, const std::string& fallback) const {
    const auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second;
  }

 private:
  std::string command_;
  std::map<std::string, std::string> accepted_;
  std::map<std::string, std::string> switches_;
  std::map<std::string, std::string> values_;
  std::set<std::string> on_;
  bool help_ = false;
};

/// `value` of `flag` as a whole number >= `min` (decimal, no sign other than
/// '-', no fraction or exponent); UsageError naming the flag otherwise.
inline int64_t int_at_least(const std::string& flag, const std::string& value, int64_t min) {
  int64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || n < min)
    throw UsageError(flag + " needs " +
                     (min == 1 ? std::string("a positive whole number")
                               : "a whole number >= " + std::to_string(min)) +
                     ", got '" + value + "'");
  return n;
}
/// A whole number > 0 from a flag's value.
inline int64_t positive_int(const std::string& flag, const std::string& value) {
  return int_at_least(flag, value, 1);
}

/// `value` of `flag` as a finite number in [lo, hi) (or [lo, hi] when
/// `hi_inclusive`; (0, hi) when `positive`); UsageError naming the flag and
/// the range otherwise.
inline double number_in(const std::string& flag, const std::string& value, double lo, double hi,
                        bool hi_inclusive = false, bool positive = false) {
  double x = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), x);
  const bool parsed = !value.empty() && ec == std::errc() && end == value.data() + value.size();
  const bool in_range =
      std::isfinite(x) && (positive ? x > 0 : x >= lo) && (hi_inclusive ? x <= hi : x < hi);
  if (parsed && in_range) return x;
  std::string range;
  if (positive && std::isinf(hi)) {
    range = "a positive number";
  } else if (std::isinf(hi)) {
    char b[64];
    std::snprintf(b, sizeof b, "a finite number >= %g", lo);
    range = b;
  } else {
    char b[96];
    std::snprintf(b, sizeof b, "a number in %c%g, %g%c", positive ? '(' : '[', lo, hi,
                  hi_inclusive ? ']' : ')');
    range = b;
  }
  throw UsageError(flag + " needs " + range + ", got '" + value + "'");
}
/// A finite number > 0 from a flag's value.
inline double positive_number(const std::string& flag, const std::string& value) {
  return number_in(flag, value, 0, HUGE_VAL, false, true);
}

inline std::string csv_number(double x) {
  if (!std::isfinite(x)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t comma; (comma = s.find(',', at)) != std::string::npos; at = comma + 1)
    out.push_back(s.substr(at, comma - at));
  out.push_back(s.substr(at));
  return out;
}

/// The initialization scheme --init names (fairseq, gpt2, deepnorm); a usage
/// error naming `command` otherwise.
inline nl::InitScheme init_scheme(const std::string& command, const std::string& name) {
  if (name == "fairseq") return nl::InitScheme::fairseq;
  if (name == "gpt2") return nl::InitScheme::gpt2;
  if (name == "deepnorm") return nl::InitScheme::deepnorm;
  throw UsageError("normlab " + command + ": --init must be fairseq, gpt2 or deepnorm, got '" +
                   name + "'");
}

/// The feed-forward width a model width implies when --d-ff is not given:
/// 4 C, the papers' ratio; an error naming `command` when 4 C overflows.
inline int64_t default_d_ff(const std::string& command, int64_t d_model) {
  nl::detail::check(d_model <= INT64_MAX / 4, "normlab ", command, ": --d-model ", d_model,
                    " is too large (its default d_ff, 4 C, overflows)");
  return 4 * d_model;
}

/// Writes `text` to `path` atomically and durably (io::write_file_atomically);
/// the error names the command, the file and the OS reason.
inline void write_text(const std::string& command, const std::filesystem::path& path,
                       const std::string& text) {
  nl::io::write_file_atomically(path, text, "normlab " + command);
}

/// Creates the folder `dir` (and its parents); the error names the command,
/// the folder and the OS reason instead of a raw filesystem_error.
inline void make_folder(const std::string& command, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw nl::Error("normlab " + command + ": cannot create the folder '" + dir.string() +
                    "': " + ec.message());
}

// ---- the commands (one file each) -----------------------------------------

int forward_command(int argc, char** argv);
int info_command(int argc, char** argv);
int compare_command(int argc, char** argv);
int train_command(int argc, char** argv);
int generate_command(int argc, char** argv);

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
