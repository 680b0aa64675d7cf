// normlab/io/file.hpp — files that survive a crash: atomic, durable whole-file
// writes, appends whose errors are seen, read-only mappings, and reads bounded
// by a size limit. POSIX (Linux, macOS).
//
//   io::write_file_atomically("run/checkpoint-10.safetensors", bytes, "safetensors");
//   // a reader sees the old file or the new one, never a part of the new one;
//   // after return the new one survives a power cut (file and folder synced)
//
//   io::AppendFile log("run/metrics.csv", "normlab train");
//   log.append("1,3.2,...\n");   // a failed write throws, naming the file and errno
//   log.sync();                  // durable up to here
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {
namespace io {

namespace detail {

/// "<who>: cannot <what> '<path>': <strerror(err)>"
inline Error os_error(std::string_view who, std::string_view what, const std::string& path,
                      int err) {
  return Error(
      normlab::detail::concat(who, ": cannot ", what, " '", path, "': ", std::strerror(err)));
}

/// Writes all `n` bytes at `data` to `fd`, retrying after EINTR and short
/// writes; returns 0 or the errno of the failure.
inline int write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // One write() moves at most 2^30 bytes here (Linux stops at ~2^31 anyway).
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

/// fsync of the folder holding `path`, so that a rename into it is durable.
/// Filesystems that cannot sync a folder (EINVAL) are accepted; returns 0 or
/// the errno of the failure.
inline int sync_parent_folder(const std::filesystem::path& path) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  if (err == EINVAL) err = 0;
  ::close(fd);
  return err;
}

/// A name in `path`'s folder that no other writer uses: ".<name>.tmp-<pid>-<n>".
inline std::filesystem::path temporary_sibling(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path tmp = path;
  tmp.replace_filename(normlab::detail::concat(".", path.filename().string(), ".tmp-", ::getpid(),
                                               "-", counter.fetch_add(1)));
  return tmp;
}

}  // namespace detail

/// Replaces the file at `path` by `bytes`, atomically and durably: the bytes
/// go to a temporary file in the same folder, which is fsynced, renamed over
/// `path`, and the folder is fsynced.
///
/// Requires: `path` names a file in an existing, writable folder.
/// Ensures: on return the new file is complete on disk; a crash at any moment
/// leaves either the old file (or none) or the complete new one, plus at
/// worst a temporary ".<name>.tmp-*" file. On failure (ENOSPC, EROFS,
/// EACCES...) the temporary file is removed, the old file is untouched, and
/// Error "<who>: cannot write '<path>': <OS reason>" is thrown. The new file
/// has mode 0666 less the umask, as a file made by open() would.
inline void write_file_atomically(const std::filesystem::path& path,
                                  std::span<const std::byte> bytes, std::string_view who) {
  const std::filesystem::path tmp = detail::temporary_sibling(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw detail::os_error(who, "write", path.string(), errno);
  int err = detail::write_all(fd, bytes.data(), bytes.size());
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw detail::os_error(who, "write", path.string(), err);
  }
  err = detail::sync_parent_folder(path);
  if (err != 0) throw detail::os_error(who, "sync the folder of", path.string(), err);
}

/// write_file_atomically for text.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view text,
                                  std::string_view who) {
  write_file_atomically(path, std::as_bytes(std::span(text.data(), text.size())), who);
}

/// A file opened for appending whose every failure is an Error naming the
/// file and the OS reason. A crash may cut the last append short (readers of
/// such logs should ignore an incomplete last line); sync() makes everything
/// appended so far durable.
class AppendFile {
 public:
  /// Opens (creating when missing) `path` for appending.
  AppendFile(std::filesystem::path path, std::string who)
      : path_(std::move(path)), who_(std::move(who)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd_ < 0) throw detail::os_error(who_, "open", path_.string(), errno);
  }
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  ~AppendFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Appends `text` (one write for the whole text unless the OS splits it).
  void append(std::string_view text) {
    const int err = detail::write_all(fd_, text.data(), text.size());
    if (err != 0) throw detail::os_error(who_, "write", path_.string(), err);
  }
  /// Makes everything appended so far durable (fsync).
  void sync() {
    if (::fsync(fd_) != 0) throw detail::os_error(who_, "sync", path_.string(), errno);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::string who_;
  int fd_ = -1;
};

/// The size in bytes of the regular file at `path`, after checking that it is
/// at most `max_bytes`; Error "<who>: cannot read '<path>': ..." otherwise
/// (missing, not a regular file, or too large, with both sizes).
inline uint64_t bounded_file_size(const std::string& path, uint64_t max_bytes,
                                  std::string_view who) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw detail::os_error(who, "read", path, errno);
  normlab::detail::check(S_ISREG(st.st_mode), who, ": cannot read '", path, "': not a regular file",
                         S_ISDIR(st.st_mode) ? " (a directory)" : "");
  const auto size = static_cast<uint64_t>(st.st_size);
  normlab::detail::check(size <= max_bytes, who, ": cannot read '", path, "': it has ", size,
                         " bytes, more than the ", max_bytes, " this reader accepts");
  return size;
}

/// A read-only, private memory mapping of a whole file: its pages are read on
/// first touch, so a large checkpoint costs only the tensors read from it.
/// Movable, not copyable; unmapped on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  /// Maps the file at `path` (empty files map to an empty span). Errors:
  /// Error "<who>: cannot read '<path>': <OS reason>".
  static MappedFile open(const std::string& path, std::string_view who) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw detail::os_error(who, "read", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw detail::os_error(who, "read", path, err);
    }
    MappedFile m;
    m.size_ = static_cast<size_t>(st.st_size);
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error(normlab::detail::concat(who, ": cannot read '", path, "': not a regular file",
                                          S_ISDIR(st.st_mode) ? " (a directory)" : ""));
    }
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw detail::os_error(who, "map", path, err);
      }
      m.data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file
    return m;
  }
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  void unmap() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
  }
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace io
}  // namespace v0
}  // namespace normlab
