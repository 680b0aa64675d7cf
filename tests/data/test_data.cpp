// data/: byte tokenizer, corpora from strings, files, directory trees and the
// fortunes database, the train/validation split, random and evaluation
// windows, the synthetic corpus, and every error message.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "normlab/data/data.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

namespace fs = std::filesystem;

/// An empty directory of its own for the running test.
fs::path fresh_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      (std::string("normlab_data_") + info->name() + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_file(const fs::path& path, std::string_view bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// ---- ByteTokenizer --------------------------------------------------------

TEST(ByteTokenizer, RoundTripsEveryByteIncludingNonAscii) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string text = "h\xc3\xa9llo \xe2\x82\xac " + all;  // "héllo €" in UTF-8
  const std::vector<int64_t> ids = ByteTokenizer::encode(text);
  ASSERT_EQ(ids.size(), text.size());
  EXPECT_EQ(ids[0], 'h');
  EXPECT_EQ(ids[1], 0xc3);
  EXPECT_EQ(ids[2], 0xa9);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[ids.size() - 256 + static_cast<size_t>(b)], b);
  EXPECT_EQ(ByteTokenizer::decode(ids), text);
  EXPECT_TRUE(ByteTokenizer::encode("").empty());
  EXPECT_EQ(ByteTokenizer::decode({}), "");
  EXPECT_EQ(ByteTokenizer::vocab_size, 256);
}

TEST(ByteTokenizer, DecodeNamesAnIdOutsideTheByteRangeAndItsPosition) {
  expect_error(
      [] {
        ByteTokenizer::decode(std::vector<int64_t>{72, 105, 256});
      },
      {"ByteTokenizer::decode", "token id 256", "position 2", "[0, 256)"});
  expect_error(
      [] {
        ByteTokenizer::decode(std::vector<int64_t>{-1, 65});
      },
      {"token id -1", "position 0"});
}

// ---- TextCorpus -----------------------------------------------------------

TEST(TextCorpus, FromStringHoldsTheBytesAsTokens) {
  const TextCorpus c = TextCorpus::from_string("ab\xff", "mine");
  EXPECT_EQ(c.size(), 3);
  EXPECT_EQ(c[0], 'a');
  EXPECT_EQ(c[2], 255);
  EXPECT_EQ(c.tokens(1, 3), (std::vector<int64_t>{'b', 255}));
  EXPECT_EQ(c.text(), "ab\xff");
  EXPECT_EQ(c.source(), "mine");
  ASSERT_EQ(c.files().size(), 1u);
  EXPECT_EQ(c.files()[0].end, 3);
  expect_error([&] { c.tokens(2, 4); }, {"TextCorpus::tokens", "[2, 4)", "corpus of 3 tokens"});
  expect_error([&] { c.tokens(2, 1); }, {"[2, 1)"});
}

TEST(TextCorpus, FromDirectoryReadsEveryFileBelowItInSortedRelativePathOrder) {
  const fs::path dir = fresh_dir();
  // Created out of order; byte-wise order puts "A" before "a" and "a/b/c"
  // before "a/z".
  write_file(dir / "b.txt", "4:b\n");
  write_file(dir / "a" / "z.txt", "3:a/z\n");
  write_file(dir / "a" / "b" / "c.txt", "2:a/b/c\n");
  write_file(dir / "A.txt", "1:A\n");
  write_file(dir / "empty", "");
  const TextCorpus c = TextCorpus::from_directory(dir);
  EXPECT_EQ(c.text(), "1:A\n2:a/b/c\n3:a/z\n4:b\n");
  std::vector<std::string> names;
  for (const CorpusFile& f : c.files()) names.push_back(f.path);
  EXPECT_EQ(names, (std::vector<std::string>{"A.txt", "a/b/c.txt", "a/z.txt", "b.txt", "empty"}));
  int64_t at = 0;
  for (const CorpusFile& f : c.files()) {
    EXPECT_EQ(f.begin, at) << f.path;
    at = f.end;
  }
  EXPECT_EQ(at, c.size());
  EXPECT_EQ(c.text().substr(static_cast<size_t>(c.files()[1].begin),
                            static_cast<size_t>(c.files()[1].end - c.files()[1].begin)),
            "2:a/b/c\n");
  EXPECT_EQ(TextCorpus::from_path(dir).text(), c.text());
  EXPECT_EQ(TextCorpus::from_path(dir / "a" / "z.txt").text(), "3:a/z\n");
  EXPECT_EQ(TextCorpus::from_file(dir / "b.txt").files()[0].path, "b.txt");
  fs::remove_all(dir);
}

TEST(TextCorpus, MissingOrWrongPathsThrowNamingThePath) {
  const fs::path dir = fresh_dir();
  const fs::path missing = dir / "no_such_thing";
  for (auto load : {&TextCorpus::from_file, &TextCorpus::from_directory, &TextCorpus::from_path,
                    &TextCorpus::from_fortunes})
    expect_error([&] { load(missing); }, {"no file or directory at", missing.string()});
  write_file(dir / "f.txt", "x");
  expect_error([&] { TextCorpus::from_file(dir); }, {"is not a regular file", dir.string()});
  expect_error([&] { TextCorpus::from_directory(dir / "f.txt"); },
               {"is not a directory", (dir / "f.txt").string()});
  fs::create_directories(dir / "hollow" / "inner");
  expect_error([&] { TextCorpus::from_directory(dir / "hollow"); },
               {"holds no regular file", (dir / "hollow").string()});
  fs::remove_all(dir);
}

TEST(TextCorpus, AnUnreadableFileIsAnErrorNamingIt) {
  const fs::path dir = fresh_dir();
  const fs::path secret = dir / "sub" / "secret.txt";
  write_file(dir / "open.txt", "x");
  write_file(secret, "y");
  fs::permissions(secret, fs::perms::none);
  if (std::ifstream(secret).is_open()) {
    fs::remove_all(dir);
    GTEST_SKIP() << "permissions do not stop this user (root?) from reading a mode-000 file";
  }
  expect_error([&] { TextCorpus::from_directory(dir); }, {"cannot open", secret.string()});
  fs::remove_all(dir);
}

TEST(TextCorpus, FortunesRuleReadsTopLevelTextFilesAndEndsEveryFileWithASeparator) {
  const fs::path dir = fresh_dir();
  write_file(dir / "b", "two\n%\nthree\n");  // last fortune unterminated, as in 5 Debian files
  write_file(dir / "a", "one\n%\n");
  write_file(dir / "c", "four");  // no final newline either
  write_file(dir / "d", "%\n");
  write_file(dir / "a.dat", std::string("\0\0\0\2binary", 10));
  fs::create_symlink("a", dir / "a.u8");
  write_file(dir / ".hidden", "hidden\n");
  write_file(dir / "off" / "rude", "offensive\n%\n");
  const TextCorpus c = TextCorpus::from_fortunes(dir);
  EXPECT_EQ(c.text(), "one\n%\ntwo\n%\nthree\n%\nfour\n%\n%\n");
  std::vector<std::string> names;
  for (const CorpusFile& f : c.files()) names.push_back(f.path);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(c.files()[1].begin, 6);
  EXPECT_EQ(c.files()[1].end, 20);  // 6 + "two\n%\nthree\n" (12) + the appended "%\n"
  EXPECT_TRUE(TextCorpus::is_fortune_text_name("songs-poems"));
  EXPECT_FALSE(TextCorpus::is_fortune_text_name("songs-poems.dat"));
  EXPECT_FALSE(TextCorpus::is_fortune_text_name("songs-poems.u8"));
  // The same tree read as a plain directory takes everything, as is.
  EXPECT_NE(TextCorpus::from_directory(dir).text().find("offensive"), std::string_view::npos);

  const fs::path only_index = dir / "off" / "idx";
  write_file(only_index / "x.dat", "index");
  expect_error([&] { TextCorpus::from_fortunes(only_index); },
               {"holds no fortune text file", only_index.string()});
  fs::remove_all(dir);
}

TEST(TextCorpus, InstalledFortunesFollowTheRule) {
  if (!fs::is_directory(kDefaultCorpusDir))
    GTEST_SKIP() << kDefaultCorpusDir << " is not installed (Debian package fortunes)";
  const TextCorpus c = load_default_corpus();
  EXPECT_GT(c.size(), 1'000'000);
  EXPECT_EQ(c.source(), kDefaultCorpusDir);
  for (const CorpusFile& f : c.files()) {
    EXPECT_TRUE(TextCorpus::is_fortune_text_name(f.path)) << f.path;
    EXPECT_EQ(c.text().substr(static_cast<size_t>(f.end - 2), 2), "%\n") << f.path;
  }
}

TEST(DefaultCorpus, MissingDirectoryMessageNamesThePackageAndTheCorpusOption) {
  EXPECT_NE(default_corpus_error().find("/usr/share/games/fortunes"), std::string::npos);
  const fs::path missing = fresh_dir() / "games" / "fortunes";
  expect_error([&] { load_default_corpus(missing); },
               {missing.string(), "Debian package `fortunes`", "--corpus PATH"});
}

// ---- split_train_val ------------------------------------------------------

/// Whether [begin, end) lies wholly in exactly one of the two splits.
bool in_one_split(const TrainValSplit& s, int64_t begin, int64_t end) {
  return s.train.contains(begin, end) != s.val.contains(begin, end);
}

TEST(Split, SizesFollowTheChunkRule) {
  // 100000 tokens: 24 chunks of 4096 and one of 1696; round(0.1 * 25) = 3 validation chunks.
  const TrainValSplit s = split_train_val(100000);
  int64_t val_chunks = 0, val_tokens = 0;
  for (int64_t i = 0; i < 25; ++i) {
    const int64_t begin = i * 4096, end = std::min<int64_t>(begin + 4096, 100000);
    EXPECT_TRUE(in_one_split(s, begin, end)) << "chunk " << i;
    if (s.val.contains(begin, end)) {
      ++val_chunks;
      val_tokens += end - begin;
    }
  }
  EXPECT_EQ(val_chunks, 3);
  EXPECT_EQ(s.val.size(), val_tokens);
  EXPECT_EQ(s.train.size() + s.val.size(), 100000);
  // Tiny corpora keep both splits non-empty.
  for (double f : {0.01, 0.5, 0.99}) {
    const TrainValSplit t = split_train_val(5, {.val_fraction = f, .chunk_size = 2});
    EXPECT_GE(t.train.size(), 1) << f;
    EXPECT_GE(t.val.size(), 1) << f;
    EXPECT_EQ(t.train.size() + t.val.size(), 5) << f;
  }
}

TEST(Split, IsDisjointCoversEveryPositionAndIsTheSameEverywhere) {
  const SplitOptions opt{.val_fraction = 0.3, .chunk_size = 100, .seed = 7};
  const TrainValSplit s = split_train_val(10'050, opt);
  for (int64_t p = 0; p < 10'050; ++p) ASSERT_TRUE(in_one_split(s, p, p + 1)) << "position " << p;
  EXPECT_EQ(s.val.size(), 30 * 100);  // round(0.3 * 101) = 30 full chunks or 29 + the short one
  const TrainValSplit again = split_train_val(10'050, opt);
  EXPECT_EQ(again.train.segments(), s.train.segments());
  EXPECT_EQ(again.val.segments(), s.val.segments());
  EXPECT_GT(s.val.segments().size(), 5u) << "validation chunks should be spread, not one block";
  const TrainValSplit other = split_train_val(10'050, {.val_fraction = 0.3, .chunk_size = 100});
  EXPECT_NE(other.val.segments(), s.val.segments());

  // Pinned: the Philox chunk hash must give these validation chunks on every machine.
  const TrainValSplit pinned = split_train_val(10 * 4096, {.val_fraction = 0.3, .seed = 7});
  std::vector<int64_t> chunks;
  for (int64_t i = 0; i < 10; ++i)
    if (pinned.val.contains(i * 4096)) chunks.push_back(i);
  EXPECT_EQ(chunks, (std::vector<int64_t>{2, 7, 8}));
}

TEST(Split, BadArgumentsSayWhatWasExpected) {
  for (double f : {0.0, 1.0, -0.1, 1.5})
    expect_error([&] { split_train_val(100000, {.val_fraction = f}); },
                 {"val_fraction must be in (0, 1)"});
  expect_error([] { split_train_val(100000, {.val_fraction = 1.5}); }, {"got 1.5"});
  expect_error([] { split_train_val(100000, {.val_fraction = std::nan("")}); },
               {"val_fraction must be in (0, 1)"});
  expect_error([] { split_train_val(100000, {.chunk_size = 0}); },
               {"chunk_size must be positive, got 0"});
  expect_error([] { split_train_val(-1); }, {"n_tokens must be >= 0, got -1"});
  expect_error([] { split_train_val(4096); },
               {"4096 tokens", "1 chunk(s) of chunk_size 4096", "at least 2"});
}

TEST(Split, ConstructorMergesTouchingSegmentsAndRejectsOverlaps) {
  const Split s({{0, 2}, {2, 5}, {7, 7}, {8, 9}});
  EXPECT_EQ(s.segments(), (std::vector<Segment>{{0, 5}, {8, 9}}));
  EXPECT_EQ(s.size(), 6);
  EXPECT_EQ(s.end(), 9);
  EXPECT_EQ(s.longest_segment(), 5);
  EXPECT_TRUE(s.contains(1, 5));
  EXPECT_FALSE(s.contains(4, 6));
  EXPECT_FALSE(s.contains(5));
  EXPECT_TRUE(s.contains(8));
  EXPECT_FALSE(s.contains(9));
  expect_error([] { Split({{0, 4}, {3, 6}}); }, {"[3, 6)", "overlaps or precedes [0, 4)"});
  expect_error([] { Split({{5, 4}}); }, {"[5, 4)", "not a range"});
}

// ---- WindowSampler --------------------------------------------------------

/// Checks the rows of `b` against the corpus and that each window lies in `split`.
void expect_windows_from(const TextCorpus& c, const Split& split, const Batch<Cpu>& b, int64_t rows,
                         int64_t T) {
  ASSERT_EQ(b.tokens.shape(), (Shape{rows, T}));
  ASSERT_EQ(b.targets.shape(), (Shape{rows, T}));
  ASSERT_EQ(static_cast<int64_t>(b.starts.size()), rows);
  const std::vector<int64_t> x = b.tokens.to_vector(), y = b.targets.to_vector();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t start = b.starts[static_cast<size_t>(r)];
    EXPECT_TRUE(split.contains(start, start + T + 1)) << "window at " << start;
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>(r * T + t);
      ASSERT_EQ(x[i], c[start + t]) << "row " << r << " t " << t;
      ASSERT_EQ(y[i], c[start + t + 1]) << "row " << r << " t " << t;
      if (t + 1 < T) {
        ASSERT_EQ(y[i], x[i + 1]);
      }
    }
  }
}

struct Fixture {
  TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(20'000, 3), "synthetic");
  TrainValSplit split = split_train_val(corpus.size(), {.val_fraction = 0.2, .chunk_size = 1000});
};

TEST(WindowSampler, TargetsAreTokensShiftedByOneFromTheCorpusAtTheDrawnStart) {
  const Fixture f;
  WindowSampler s(f.corpus, f.split.train, 4, 16, 1);
  EXPECT_EQ(s.batch_size(), 4);
  EXPECT_EQ(s.seq_len(), 16);
  for (int k = 0; k < 50; ++k) {
    const Batch<Cpu> b = s.next();
    expect_windows_from(f.corpus, f.split.train, b, 4, 16);
    for (int64_t start : b.starts)
      for (int64_t p = start; p <= start + 16; ++p) ASSERT_FALSE(f.split.val.contains(p));
  }
}

TEST(WindowSampler, SameSeedSameBatchesAndAnotherSeedOthers) {
  const Fixture f;
  WindowSampler a(f.corpus, f.split.train, 3, 8, 42), b(f.corpus, f.split.train, 3, 8, 42),
      c(f.corpus, f.split.train, 3, 8, 43);
  bool differs = false;
  for (int k = 0; k < 5; ++k) {
    const Batch<Cpu> x = a.next(), y = b.next<Cpu>(), z = c.next();
    EXPECT_EQ(x.tokens.to_vector(), y.tokens.to_vector());
    EXPECT_EQ(x.targets.to_vector(), y.targets.to_vector());
    EXPECT_EQ(x.starts, y.starts);
    differs = differs || x.starts != z.starts;
  }
  EXPECT_TRUE(differs);
  // Pinned: Philox makes the first batch of seed 42 the same on every machine.
  WindowSampler fresh(f.corpus, f.split.train, 3, 8, 42);
  EXPECT_EQ(fresh.next().starts, (std::vector<int64_t>{11798, 1168, 19795}));
}

TEST(WindowSampler, RestoredStateContinuesAsTheUninterruptedRun) {
  const Fixture f;
  WindowSampler full(f.corpus, f.split.train, 5, 12, 9);
  std::vector<std::vector<int64_t>> expected;
  for (int k = 0; k < 10; ++k) expected.push_back(full.next().tokens.to_vector());

  WindowSampler first(f.corpus, f.split.train, 5, 12, 9);
  for (int k = 0; k < 4; ++k) first.next();
  const SamplerState saved = first.state();
  EXPECT_EQ(saved.seed, 9u);
  EXPECT_EQ(saved.offset, 4u * 3u);  // ceil(5 / 2) Philox blocks per batch

  WindowSampler resumed(f.corpus, f.split.train, 5, 12, 12345);
  resumed.set_state(saved);
  EXPECT_EQ(resumed.state(), saved);
  for (int k = 4; k < 10; ++k)
    EXPECT_EQ(resumed.next().tokens.to_vector(), expected[static_cast<size_t>(k)]) << "batch " << k;
}

TEST(WindowSampler, DrawsEveryValidWindowOfTheSplitAndNoOther) {
  const TextCorpus c = TextCorpus::from_string(synthetic_corpus(64, 1));
  const Split split({{0, 10}, {20, 30}, {40, 43}});  // the last segment is too short for T = 4
  WindowSampler s(c, split, 8, 4, 5);
  EXPECT_EQ(s.num_windows(), 12);
  std::set<int64_t> seen;
  for (int k = 0; k < 100; ++k)
    for (int64_t start : s.next().starts) seen.insert(start);
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25}));
}

TEST(WindowSampler, BadArgumentsSayWhatWasExpectedAndFound) {
  const TextCorpus c = TextCorpus::from_string("abcdefghij");
  const Split whole = Split::whole(10);
  expect_error([&] { WindowSampler(c, whole, 0, 4, 1); },
               {"WindowSampler", "batch size B must be positive, got 0"});
  expect_error([&] { WindowSampler(c, whole, 2, -3, 1); },
               {"sequence length T must be positive, got -3"});
  expect_error([&] { WindowSampler(c, whole, 2, 10, 1); },
               {"the split has 10 tokens", "T + 1 = 11"});
  expect_error(
      [&] {
        WindowSampler(c, Split({{0, 3}, {5, 8}}), 2, 3, 1);
      },
      {"T + 1 = 4 contiguous tokens", "longest segment of the split has 3"});
  expect_error([&] { WindowSampler(c, Split::whole(12), 2, 3, 1); },
               {"reaches position 12", "only 10 tokens"});
}

// ---- EvalBatches ----------------------------------------------------------

TEST(EvalBatches, CoverTheSplitWithFixedNonOverlappingWindows) {
  const Fixture f;
  const int64_t B = 5, T = 32;
  const EvalBatches eval(f.corpus, f.split.val, B, T);
  // Each segment of size n gives floor((n - 1) / T) windows.
  int64_t expected_windows = 0;
  for (const Segment& s : f.split.val.segments()) expected_windows += (s.size() - 1) / T;
  EXPECT_EQ(eval.num_windows(), expected_windows);
  EXPECT_EQ(eval.num_batches(), (expected_windows + B - 1) / B);

  std::set<int64_t> targets;
  for (int64_t i = 0; i < eval.num_batches(); ++i) {
    const Batch<Cpu> b = eval.batch(i);
    const int64_t rows = i + 1 < eval.num_batches() ? B : expected_windows - i * B;
    expect_windows_from(f.corpus, f.split.val, b, rows, T);
    for (int64_t start : b.starts)
      for (int64_t p = start + 1; p <= start + T; ++p)
        EXPECT_TRUE(targets.insert(p).second) << "position " << p << " is a target twice";
    EXPECT_EQ(eval.batch(i).tokens.to_vector(), b.tokens.to_vector());
  }
  // Every position of a segment but its first and a tail shorter than T is a target.
  for (const Segment& s : f.split.val.segments())
    for (int64_t p = s.begin + 1; p <= s.begin + (s.size() - 1) / T * T; ++p)
      EXPECT_TRUE(targets.count(p)) << "position " << p << " is never a target";
  EXPECT_EQ(static_cast<int64_t>(targets.size()), expected_windows * T);

  const EvalBatches again(f.corpus, f.split.val, B, T);
  EXPECT_EQ(again.starts(), eval.starts());
}

TEST(EvalBatches, MaxWindowsKeepsAnEvenlySpreadSubset) {
  const Fixture f;
  const EvalBatches all(f.corpus, f.split.val, 4, 16);
  const EvalBatches some(f.corpus, f.split.val, 4, 16, 10);
  ASSERT_GT(all.num_windows(), 10);
  EXPECT_EQ(some.num_windows(), 10);
  EXPECT_EQ(some.num_batches(), 3);
  const int64_t n = all.num_windows();
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_EQ(some.starts()[static_cast<size_t>(i)], all.starts()[static_cast<size_t>(i * n / 10)]);
  EXPECT_EQ(EvalBatches(f.corpus, f.split.val, 4, 16, n + 5).starts(), all.starts());
  expect_error([&] { some.batch(3); }, {"EvalBatches::batch", "index 3", "[0, 3)"});
  expect_error([&] { some.batch(-1); }, {"index -1"});
  expect_error([&] { EvalBatches(f.corpus, f.split.val, 4, 16, -2); },
               {"max_windows must be >= 0", "got -2"});
  expect_error([&] { EvalBatches(f.corpus, f.split.val, 4, 0); },
               {"EvalBatches", "T must be positive, got 0"});
}

// ---- synthetic_corpus -----------------------------------------------------

TEST(SyntheticCorpus, IsDeterministicOfTheAskedLengthAndPrefixStable) {
  for (int64_t n : {0, 1, 1000, 12'345}) EXPECT_EQ(synthetic_corpus(n, 5).size(), size_t(n));
  const std::string a = synthetic_corpus(5000, 5);
  EXPECT_EQ(a, synthetic_corpus(5000, 5));
  EXPECT_NE(a, synthetic_corpus(5000, 6));
  EXPECT_EQ(synthetic_corpus(1234, 5), a.substr(0, 1234));
  for (char ch : a)
    EXPECT_TRUE((ch >= 'a' && ch <= 'z') || ch == ' ' || ch == '.' || ch == '\n') << int(ch);
  EXPECT_EQ(a.substr(0, 4), "the ");
  EXPECT_EQ(synthetic_corpus(60, 0),
            "the lazy robot likes the happy girls. the green horses follo");
  expect_error([] { synthetic_corpus(-1); }, {"synthetic_corpus", "n_bytes must be >= 0, got -1"});
}

TEST(SyntheticCorpus, FollowsTheDocumentedGrammarWithSubjectVerbAgreement) {
  const std::set<std::string> adjectives = {"red",   "old",   "small", "quiet",
                                            "happy", "green", "brave", "lazy"};
  const std::set<std::string> nouns = {"cat",  "dog",   "bird",  "frog",
                                       "king", "robot", "horse", "girl"};
  const std::set<std::string> verbs = {"see",  "like",   "chase", "find",
                                       "help", "follow", "paint", "hear"};
  std::string text = synthetic_corpus(20'000, 11);
  text.resize(text.rfind('\n') + 1);  // whole lines only
  std::istringstream lines(text);
  std::string line;
  int clauses = 0, plural_subjects = 0;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    size_t i = 0;
    // Reads "the [adj] noun[s]"; returns whether the noun is plural.
    auto noun_phrase = [&]() {
      EXPECT_EQ(w.at(i++), "the") << line;
      if (adjectives.count(w.at(i))) ++i;
      std::string noun = w.at(i++);
      if (noun.back() == '.') noun.pop_back();
      const bool plural = !nouns.count(noun);
      if (plural) noun.pop_back();
      EXPECT_TRUE(nouns.count(noun)) << noun << " in " << line;
      return plural;
    };
    while (i < w.size()) {
      const bool plural = noun_phrase();
      std::string verb = w.at(i++);
      if (plural) {
        EXPECT_TRUE(verbs.count(verb)) << "plural subject takes the bare verb: " << line;
        ++plural_subjects;
      } else {
        ASSERT_EQ(verb.back(), 's') << line;
        verb.pop_back();
        EXPECT_TRUE(verbs.count(verb)) << verb << " in " << line;
      }
      const bool ends_sentence = w.at(i + (adjectives.count(w.at(i + 1)) ? 2 : 1)).back() == '.';
      noun_phrase();
      ++clauses;
      if (!ends_sentence) {
        EXPECT_EQ(w.at(i++), "and") << line;
      }
    }
  }
  EXPECT_GT(clauses, 500);
  EXPECT_GT(plural_subjects, clauses / 4);
  EXPECT_LT(plural_subjects, 3 * clauses / 4);
}

}  // namespace
}  // namespace normlab::testing
