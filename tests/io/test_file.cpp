// Files that survive a crash: atomic replacement, errors with the OS reason,
// a full disk that keeps the previous checkpoint, appends whose failures are
// seen, and size limits checked before anything is read.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "normlab/io/io.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

namespace fs = std::filesystem;

/// A fresh, empty folder for one test, removed with it.
class TempFolder {
 public:
  explicit TempFolder(const std::string& name)
      : path_(fs::path(::testing::TempDir()) / (name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(WriteFileAtomically, ReplacesTheFileAndLeavesNoTemporary) {
  TempFolder dir("normlab_atomic_replace");
  const fs::path p = dir.path() / "results.json";
  io::write_file_atomically(p, std::string_view("first"), "test");
  EXPECT_EQ(contents(p), "first");
  io::write_file_atomically(p, std::string_view("second, longer"), "test");
  EXPECT_EQ(contents(p), "second, longer");
  io::write_file_atomically(p, std::string_view(""), "test");
  EXPECT_EQ(contents(p), "");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"results.json"});
  // The mode is open()'s default less the umask, not a temporary file's 0600.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
}

TEST(WriteFileAtomically, AMissingFolderIsAnErrorWithTheOsReason) {
  TempFolder dir("normlab_atomic_missing");
  const fs::path p = dir.path() / "no_such_folder" / "checkpoint.safetensors";
  expect_error([&] { io::write_file_atomically(p, std::string_view("x"), "normlab train"); },
               {"normlab train: cannot write '" + p.string() + "': No such file or directory"});
}

/// A small tmpfs mounted on a folder for one test (root only), unmounted
/// with it; mounted() is false where it cannot be made.
class SmallTmpfs {
 public:
  SmallTmpfs(const fs::path& at, const char* size) : at_(at.string()) {
    if (::geteuid() != 0) return;
    const std::string cmd = "mount -t tmpfs -o size=" + std::string(size) +
                            " normlab_test_tmpfs '" + at_ + "' 2>/dev/null";
    mounted_ = std::system(cmd.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) (void)std::system(("umount '" + at_ + "'").c_str());
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  bool mounted() const { return mounted_; }
  /// Makes the file system read-only.
  bool remount_read_only() const {
    return std::system(("mount -o remount,ro '" + at_ + "' 2>/dev/null").c_str()) == 0;
  }

 private:
  std::string at_;
  bool mounted_ = false;
};

TEST(WriteFileAtomically, AReadOnlyFileSystemKeepsTheOldFile) {
  TempFolder dir("normlab_atomic_readonly");
  SmallTmpfs tmpfs(dir.path(), "64k");
  const fs::path p = dir.path() / "metrics.csv";
  io::write_file_atomically(p, std::string_view("old"), "test");
  std::string reason;
  if (tmpfs.mounted() && tmpfs.remount_read_only()) {
    reason = "Read-only file system";  // EROFS, as root
  } else if (::geteuid() != 0) {
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
    reason = "Permission denied";  // EACCES, as a user
  } else {
    GTEST_SKIP() << "root without mount cannot make a folder read-only";
  }
  expect_error([&] { io::write_file_atomically(p, std::string_view("new"), "test"); },
               {"cannot write '" + p.string() + "': " + reason});
  if (!tmpfs.mounted()) fs::permissions(dir.path(), fs::perms::owner_all);
  EXPECT_EQ(contents(p), "old");
}

TEST(WriteFileAtomically, AFullDiskKeepsThePreviousCheckpointAndNoPartialFile) {
  TempFolder dir("normlab_atomic_full_disk");
  SmallTmpfs tmpfs(dir.path(), "256k");
  if (!tmpfs.mounted()) GTEST_SKIP() << "mounting a small tmpfs needs root";

  const fs::path p = dir.path() / "checkpoint.safetensors";
  io::SafetensorsWriter small;
  small.add("w", Tensor<float, Cpu>::full(Shape{100, 100}, 0.5f));  // 40 kB
  small.write(p.string());
  const std::string before = contents(p);
  io::SafetensorsWriter large;
  large.add("w", Tensor<float, Cpu>::full(Shape{300, 300}, 0.25f));  // 360 kB: cannot fit
  expect_error([&] { large.write(p.string()); },
               {"safetensors: cannot write '" + p.string() + "': No space left on device"});
  EXPECT_EQ(contents(p), before) << "the previous checkpoint must be intact";
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"checkpoint.safetensors"})
      << "the partial temporary file must be removed";
  const io::SafetensorsReader r = io::SafetensorsReader::open(p.string());
  EXPECT_EQ((r.read<float, Cpu>("w").to_vector()), std::vector<float>(10000, 0.5f));
}

TEST(AppendFile, AFailedWriteIsAnErrorNamingTheFile) {
  // /dev/full accepts the open and fails every write with ENOSPC.
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  io::AppendFile f("/dev/full", "normlab train");
  expect_error([&] { f.append("1,2.5\n"); },
               {"normlab train: cannot write '/dev/full': No space left on device"});
}

TEST(AppendFile, AppendsAfterWhatIsThere) {
  TempFolder dir("normlab_append");
  const fs::path p = dir.path() / "metrics.csv";
  io::write_file_atomically(p, std::string_view("step\n"), "test");
  {
    io::AppendFile f(p, "test");
    f.append("1\n");
    f.append("2\n");
    f.sync();
  }
  EXPECT_EQ(contents(p), "step\n1\n2\n");
  expect_error([&] { io::AppendFile(dir.path() / "missing" / "m.csv", "test"); },
               {"test: cannot open '", "No such file or directory"});
}

/// A sparse file of `bytes` bytes starting with `head`, or "" when the file
/// system cannot hold one.
std::string sparse_file(const fs::path& p, uintmax_t bytes, const std::string& head) {
  {
    std::ofstream out(p, std::ios::binary);
    out << head;
  }
  std::error_code ec;
  fs::resize_file(p, bytes, ec);
  return ec ? "" : p.string();
}

TEST(BoundedReads, A100GigabyteJsonFileIsRefusedBeforeItIsRead) {
  TempFolder dir("normlab_bounded_json");
  const std::string path = sparse_file(dir.path() / "big.json", uintmax_t{100} << 30, "{\"a\": 1}");
  if (path.empty()) GTEST_SKIP() << "no sparse files here";
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { (void)json::parse_file(path); },
               {"json: cannot read '" + path + "': it has 107374182400 bytes, more than the " +
                std::to_string(json::kMaxFileBytes)});
  expect_error([&] { (void)load_config(path); },
               {"it has 107374182400 bytes, more than the 1048576 this reader accepts"});
  // Not a correctness bound: a refusal that read the file would take minutes.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(BoundedReads, AConfigFileOverAMegabyteIsRefused) {
  TempFolder dir("normlab_bounded_config");
  const fs::path p = dir.path() / "config.json";
  std::string text = "{\"vocab_size\": 256" + std::string((1 << 20), ' ') + "}";
  io::write_file_atomically(p, text, "test");
  expect_error([&] { (void)load_config(p.string()); },
               {p.string(), "it has 1048595 bytes, more than the 1048576 this reader accepts"});
  expect_error([&] { (void)load_config(dir.path().string()); },
               {"not a regular file (a directory)"});
}

TEST(BoundedReads, A100GigabyteCheckpointWithAGoodHeaderIsOpenedWithoutReadingItsData) {
  // A real header describing one 100 GB tensor of zeros: opening maps the
  // file and checks the header; only read() touches the data.
  TempFolder dir("normlab_bounded_safetensors");
  const uint64_t n = uint64_t{25} << 30;  // floats: 100 GiB
  std::string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(n) +
                       "],\"data_offsets\":[0," + std::to_string(4 * n) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string head(8, '\0');
  const uint64_t len = header.size();
  std::memcpy(head.data(), &len, 8);
  const std::string path =
      sparse_file(dir.path() / "big.safetensors", 8 + header.size() + 4 * n, head + header);
  if (path.empty()) GTEST_SKIP() << "no sparse files here";
  const auto start = std::chrono::steady_clock::now();
  const io::SafetensorsReader r = io::SafetensorsReader::open(path);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  ASSERT_EQ(r.tensors().size(), 1u);
  EXPECT_EQ(r.info("w").shape, Shape{static_cast<int64_t>(n)});
  // A model expecting another shape is refused from the header alone.
  expect_error([&] { (void)r.read_exact<float, Cpu>("w", Shape{4}); },
               {"tensor 'w' has shape (26843545600,), expected (4,)"});
}

}  // namespace
}  // namespace normlab::testing
