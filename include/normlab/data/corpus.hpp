// normlab/data/corpus.hpp — text corpora as byte-token sequences.
//
// A TextCorpus holds the bytes of its text (one byte of memory per token; the
// 2.5 MB fortunes corpus takes 2.5 MB, not 20 MB of int64) and hands out
// int64 token ids, which are ByteTokenizer ids, on the way out.
//
// Where the text comes from:
//   from_string     the given string;
//   from_file       one file's bytes;
//   from_directory  every regular file below a directory, recursively, in
//                   byte-wise order of their relative paths ('/'-separated), so
//                   the corpus is the same on every machine; concatenated
//                   as is, with nothing inserted between files;
//   from_path       from_file or from_directory, whichever the path is;
//   from_fortunes   a fortune(6) database directory, by the rule below.
//
// Directory rules (decided once, so that two machines never build different
// corpora from the same tree): files a symlink points to are read; symlinked
// directories are not descended into (no cycles); entries that are neither
// regular files nor directories (sockets, FIFOs, dangling links) are skipped;
// hidden files are read like any other. A file or directory that cannot be
// read is an Error naming it, never silently skipped, since skipping would make
// the corpus depend on the reader's permissions.
//
// The fortunes rule (checked against Debian bookworm's fortunes and
// fortunes-min 1:1.99.1-7.3, which install 43 text files, 2,576,674 bytes, into
// /usr/share/games/fortunes): only the directory's top level is read, because
// subdirectories hold other collections (off/ for fortunes-off, de/ for
// fortunes-de) whose presence should not change the default corpus; of its
// regular files, names ending in ".dat" (strfile's binary index) and ".u8"
// (Debian's symlinks to the same text, kept for UTF-8 lookups) are skipped,
// as are hidden files. Each text file is kept byte for byte, '%' separator
// lines included: they mark the end of each fortune for the model to learn.
// Five of those files do not end with a '%' line, so after each file that
// does not, "%\n" is appended (after a '\n' if the file lacks a final one):
// no fortune runs into the next file's first one, and the whole corpus is
// itself a valid fortune file (2,576,684 bytes for the package set above).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {

/// Where a file's text lies in a corpus: tokens [begin, end) (for
/// from_fortunes, including the separator appended after the file, if any).
struct CorpusFile {
  std::string
      path;  ///< relative to the corpus directory, '/'-separated (the file name for from_file)
  int64_t begin = 0;
  int64_t end = 0;
};

/// The default corpus of the training CLI: Debian's fortune cookies.
inline constexpr const char* kDefaultCorpusDir = "/usr/share/games/fortunes";

namespace detail {

/// Appends the bytes of the regular file `path` to `out`; throws naming it.
inline void append_file_bytes(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  detail::check(in.is_open(), "TextCorpus: cannot open '", path.string(),
                "' for reading (missing, or no read permission)");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  detail::check(!ec, "TextCorpus: cannot get the size of '", path.string(), "': ", ec.message());
  const size_t at = out.size();
  out.resize(at + static_cast<size_t>(size));
  in.read(out.data() + at, static_cast<std::streamsize>(size));
  detail::check(in.gcount() == static_cast<std::streamsize>(size), "TextCorpus: reading '",
                path.string(), "' gave ", in.gcount(), " of its ", size, " bytes");
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace detail

/// A text as a sequence of byte tokens, with the files it came from.
///
/// Contract: immutable after construction; token ids are in [0, 256).
class TextCorpus {
 public:
  TextCorpus() = default;

  /// The bytes of `text`; `name` is what source() reports.
  static TextCorpus from_string(std::string text, std::string name = "<string>") {
    TextCorpus c;
    c.files_.push_back({name, 0, static_cast<int64_t>(text.size())});
    c.text_ = std::move(text);
    c.source_ = std::move(name);
    return c;
  }

  /// The bytes of one file. Throws Error naming the path when it does not
  /// exist, is not a regular file, or cannot be read.
  static TextCorpus from_file(const std::filesystem::path& path) {
    require_exists(path);
    std::error_code ec;
    detail::check(std::filesystem::is_regular_file(path, ec), "TextCorpus::from_file: '",
                  path.string(), "' is not a regular file (use from_directory for a directory)");
    TextCorpus c;
    detail::append_file_bytes(path, c.text_);
    c.files_.push_back({path.filename().generic_string(), 0, c.size()});
    c.source_ = path.string();
    return c;
  }

  /// Every regular file below `dir`, recursively, in byte-wise order of the
  /// relative paths (see the directory rules at the top of this file).
  /// Throws Error naming the path when `dir` is missing or not a directory,
  /// when a directory or file below it cannot be read, or when it holds no file.
  static TextCorpus from_directory(const std::filesystem::path& dir) {
    require_directory(dir, "from_directory");
    std::vector<std::pair<std::string, std::filesystem::path>> found;  // (relative, full)
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code ec2;
      if (it->is_regular_file(ec2))
        found.emplace_back(it->path().lexically_relative(dir).generic_string(), it->path());
    }
    detail::check(!ec, "TextCorpus::from_directory: cannot list a directory below '", dir.string(),
                  "': ", ec.message());
    detail::check(!found.empty(), "TextCorpus::from_directory: '", dir.string(),
                  "' holds no regular file");
    std::sort(found.begin(), found.end());
    return from_list(found, dir, /*fortune_separators=*/false);
  }

  /// from_file for a file, from_directory for a directory (the CLI's --corpus PATH).
  static TextCorpus from_path(const std::filesystem::path& path) {
    require_exists(path);
    std::error_code ec;
    return std::filesystem::is_directory(path, ec) ? from_directory(path) : from_file(path);
  }

  /// A fortune(6) database directory by the fortunes rule at the top of this
  /// file. Throws Error naming the path when it is missing, is not a
  /// directory, cannot be read, or holds no fortune text file.
  static TextCorpus from_fortunes(const std::filesystem::path& dir) {
    require_directory(dir, "from_fortunes");
    std::vector<std::pair<std::string, std::filesystem::path>> found;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      std::error_code ec2;
      if (it->is_regular_file(ec2) && is_fortune_text_name(name))
        found.emplace_back(name, it->path());
    }
    detail::check(!ec, "TextCorpus::from_fortunes: cannot list '", dir.string(),
                  "': ", ec.message());
    detail::check(!found.empty(), "TextCorpus::from_fortunes: '", dir.string(),
                  "' holds no fortune text file (expected files such as 'fortunes', "
                  "'computers' beside their '.dat' indexes)");
    std::sort(found.begin(), found.end());
    return from_list(found, dir, /*fortune_separators=*/true);
  }

  /// Whether from_fortunes reads a top-level file of this name: not a strfile
  /// index (".dat"), not a UTF-8 alias (".u8"), not hidden.
  static bool is_fortune_text_name(std::string_view name) {
    return !name.empty() && name.front() != '.' && !detail::ends_with(name, ".dat") &&
           !detail::ends_with(name, ".u8");
  }

  /// Number of tokens (bytes).
  int64_t size() const { return static_cast<int64_t>(text_.size()); }
  bool empty() const { return text_.empty(); }
  /// Token `i`; requires 0 <= i < size() (unchecked, for inner loops).
  int64_t operator[](int64_t i) const {
    return static_cast<unsigned char>(text_[static_cast<size_t>(i)]);
  }
  /// Tokens [begin, end) as ids; throws Error unless 0 <= begin <= end <= size().
  std::vector<int64_t> tokens(int64_t begin, int64_t end) const {
    detail::check(0 <= begin && begin <= end && end <= size(), "TextCorpus::tokens: range [", begin,
                  ", ", end, ") is not inside the corpus of ", size(), " tokens");
    std::vector<int64_t> ids(static_cast<size_t>(end - begin));
    for (int64_t i = begin; i < end; ++i) ids[static_cast<size_t>(i - begin)] = (*this)[i];
    return ids;
  }
  /// The raw bytes.
  std::string_view text() const { return text_; }
  /// The files the text came from, in corpus order; their ranges tile [0, size()).
  const std::vector<CorpusFile>& files() const { return files_; }
  /// The path (or name) the corpus was built from.
  const std::string& source() const { return source_; }

  /// A cheap identity of the text, to tell whether a resumed run reads the
  /// corpus it was trained on: 64-bit FNV-1a over the first and the last MiB
  /// (the whole text when shorter than 2 MiB), with the size mixed in. Equal
  /// texts give equal values; a change in the middle of a corpus larger than
  /// 2 MiB that keeps its size goes unseen.
  uint64_t fingerprint() const {
    constexpr size_t kEdge = size_t{1} << 20;
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
    const auto mix = [&h](std::string_view bytes) {
      for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    };
    const std::string_view all = text_;
    if (all.size() <= 2 * kEdge) {
      mix(all);
    } else {
      mix(all.substr(0, kEdge));
      mix(all.substr(all.size() - kEdge));
    }
    const uint64_t n = all.size();
    mix(std::string_view(reinterpret_cast<const char*>(&n), sizeof n));
    return h;
  }

 private:
  static void require_exists(const std::filesystem::path& path) {
    std::error_code ec;
    detail::check(std::filesystem::exists(path, ec), "TextCorpus: no file or directory at '",
                  path.string(), "'");
  }
  static void require_directory(const std::filesystem::path& dir, const char* op) {
    require_exists(dir);
    std::error_code ec;
    detail::check(std::filesystem::is_directory(dir, ec), "TextCorpus::", op, ": '", dir.string(),
                  "' is not a directory");
  }

  static TextCorpus from_list(
      const std::vector<std::pair<std::string, std::filesystem::path>>& files,
      const std::filesystem::path& dir, bool fortune_separators) {
    TextCorpus c;
    for (const auto& [relative, full] : files) {
      const int64_t begin = c.size();
      detail::append_file_bytes(full, c.text_);
      if (fortune_separators && c.size() > begin) {
        const std::string_view own = std::string_view(c.text_).substr(static_cast<size_t>(begin));
        if (own != "%\n" && !detail::ends_with(own, "\n%\n")) {
          if (own.back() != '\n') c.text_ += '\n';
          c.text_ += "%\n";
        }
      }
      c.files_.push_back({relative, begin, c.size()});
    }
    c.source_ = dir.string();
    return c;
  }

  std::string text_;
  std::vector<CorpusFile> files_;
  std::string source_;
};

/// The message the training CLI prints when the default corpus is missing:
/// it names the directory, the Debian package that provides it, and the
/// option that selects another corpus.
inline std::string default_corpus_error(const std::filesystem::path& dir = kDefaultCorpusDir) {
  return detail::concat("the default corpus '", dir.string(),
                        "' is not installed: install the Debian package `fortunes` "
                        "(apt-get install fortunes), or select another corpus with --corpus PATH "
                        "(a text file or a directory of text files)");
}

/// The default corpus: from_fortunes(dir). Throws Error(default_corpus_error(dir))
/// when `dir` does not exist (other failures as from_fortunes).
inline TextCorpus load_default_corpus(const std::filesystem::path& dir = kDefaultCorpusDir) {
  std::error_code ec;
  detail::check(std::filesystem::exists(dir, ec), default_corpus_error(dir));
  return TextCorpus::from_fortunes(dir);
}

}  // namespace v0
}  // namespace normlab
