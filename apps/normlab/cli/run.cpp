// apps/normlab/cli/run.cpp — normlab::cli::run: the command dispatch, --help,
// --version, and the one place where errors become messages and exit codes.
#include "cli/cli.hpp"

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli {

namespace {

constexpr const char* kUsage =
    "usage: normlab <command> [flags]\n"
    "  forward  run a GPT from config + weights + tokens; write logits, loss, gradients\n"
    "  info     print a config and parameter counts by policy\n"
    "  compare  train several policies alike; table, curves and report.html\n"
    "  train    train one configuration; checkpoints, metrics.csv, exact --resume\n"
    "  generate sample text from a checkpoint (temperature, top-k, seed)\n"
    "normlab <command> --help describes each; normlab --version prints the version.\n";

/// `what` with the prefix "normlab <command>: " unless it has one already.
std::string prefixed(const std::string& command, const char* what) {
  const std::string message = what;
  const std::string own = "normlab " + command + ":";
  if (message.rfind(own, 0) == 0) return message;
  return command.empty() ? "normlab: " + message : own + " " + message;
}

}  // namespace

int run(int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  const bool known = first == "forward" || first == "info" || first == "compare" ||
                     first == "train" || first == "generate";
  const std::string command = known ? first : "";
  try {
    if (first == "forward") return detail::forward_command(argc, argv);
    if (first == "info") return detail::info_command(argc, argv);
    if (first == "compare") return detail::compare_command(argc, argv);
    if (first == "train") return detail::train_command(argc, argv);
    if (first == "generate") return detail::generate_command(argc, argv);
    if (first == "--help" || first == "-h" || first == "help") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (first == "--version") {
      std::printf("normlab %d.%d.%d\n", version_major, version_minor, version_patch);
      return 0;
    }
    if (first.empty()) throw detail::UsageError("missing command (see normlab --help)");
    throw detail::UsageError("unknown command '" + first + "' (see normlab --help)");
  } catch (const detail::UsageError& e) {
    std::fprintf(stderr, "%s\n", prefixed(command, e.what()).c_str());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", prefixed(command, e.what()).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s\n",
                 prefixed(command,
                          "out of memory: the sizes asked for (the model's config, --batch-size, "
                          "--seq-len, --tokens) need more memory than this machine can give")
                     .c_str());
    return 1;
  } catch (const std::exception& e) {
    const std::string what = std::string("internal error (please report it): ") + e.what();
    std::fprintf(stderr, "%s\n", prefixed(command, what.c_str()).c_str());
    return 1;
  }
}

}  // namespace cli
}  // namespace v0
}  // namespace normlab
