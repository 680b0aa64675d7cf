// tests/dist/mpi/test_mpi.cpp — MpiCommunicator under mpirun (normlab/dist/mpi.hpp).
//
//   mpirun -np 4 normlab_test_dist_mpi                      the GoogleTest suite
//   mpirun -np 3 normlab_test_dist_mpi --scenario=NAME      a failure scenario, checked
//                                                           by expect_failure.cmake
//
// Every rank runs every test, so every rank calls the same collectives in the same
// order (EXPECT, never ASSERT, before a collective). Rank 0 prints GoogleTest's
// report; the other ranks print only their failures, prefixed with their rank.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "../rank_values.hpp"
#include "normlab/dist/mpi.hpp"
#include "normlab/normlab.hpp"

namespace {

using normlab::Error;
using normlab::dist::MpiCommunicator;
using normlab::dist::MpiOptions;

MpiCommunicator* g_comm = nullptr;

using normlab::dist_testing::own_values;
using normlab::dist_testing::serial;
using normlab::dist_testing::value;

/// Counts the elements whose bits differ from the serial rank-order result.
template <class Scalar>
int64_t mismatches(const std::vector<Scalar>& got, int n_ranks, bool mean) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const Scalar want = serial<Scalar>(n_ranks, static_cast<int64_t>(i), mean);
    if (std::memcmp(&got[i], &want, sizeof(Scalar)) != 0) {
      if (bad < 3)
        ADD_FAILURE() << "rank " << g_comm->rank() << ": element " << i << " is " << got[i]
                      << ", the sum in rank order is " << want;
      ++bad;
    }
  }
  return bad;
}

const std::vector<int64_t> kSizes = {0, 1, 2, 3, 7, 13, 97, 1009, 4099};

template <class Scalar>
void check_all_reduce(MpiCommunicator& comm) {
  for (int64_t n : kSizes) {
    for (bool mean : {false, true}) {
      std::vector<Scalar> v = own_values<Scalar>(comm.rank(), n);
      if (mean)
        comm.all_reduce_mean(v.data(), n);
      else
        comm.all_reduce_sum(v.data(), n);
      EXPECT_EQ(mismatches(v, comm.size(), mean), 0) << "n = " << n << (mean ? " mean" : " sum");
    }
  }
}

TEST(MpiCommunicator, TestValuesDependOnTheOrder) {
  // With 3 or more ranks, a reduction in another order (here: reversed) gives
  // other bits somewhere, so the bit-exact tests below pin the order down. Two
  // terms commute, so with 2 ranks every order agrees.
  if (g_comm->size() < 3) GTEST_SKIP() << "the order of 2 terms cannot matter";
  for (bool as_double : {false, true}) {
    int64_t differ = 0;
    for (int64_t i = 0; i < 4099; ++i) {
      if (as_double) {
        double s = value<double>(g_comm->size() - 1, i);
        for (int r = g_comm->size() - 2; r >= 0; --r) s += value<double>(r, i);
        differ += s != serial<double>(g_comm->size(), i, false);
      } else {
        float s = value<float>(g_comm->size() - 1, i);
        for (int r = g_comm->size() - 2; r >= 0; --r) s += value<float>(r, i);
        differ += s != serial<float>(g_comm->size(), i, false);
      }
    }
    EXPECT_GT(differ, 100) << (as_double ? "double" : "float");
  }
}

TEST(MpiCommunicator, RankAndSize) {
  EXPECT_GE(g_comm->size(), 1);
  EXPECT_GE(g_comm->rank(), 0);
  EXPECT_LT(g_comm->rank(), g_comm->size());
  EXPECT_STREQ(g_comm->name(), "mpi");
}

TEST(MpiCommunicator, AllReduceIsTheSumInRankOrderBitForBit) {
  check_all_reduce<float>(*g_comm);
  check_all_reduce<double>(*g_comm);
}

TEST(MpiCommunicator, AllReduceInManyMessages) {
  // 40-byte messages: every size above 10 floats per rank takes several messages.
  MpiOptions small;
  small.max_message_bytes = 40;
  small.timeout = std::chrono::seconds(20);
  MpiCommunicator comm(small);
  EXPECT_FALSE(comm.owns_mpi());
  check_all_reduce<float>(comm);
  check_all_reduce<double>(comm);
  // A byte limit that is not a multiple of the element size.
  MpiOptions odd;
  odd.max_message_bytes = 13;
  MpiCommunicator comm13(odd);
  std::vector<double> v = own_values<double>(comm13.rank(), 101);
  comm13.all_reduce_sum(v.data(), 101);
  EXPECT_EQ(mismatches(v, comm13.size(), false), 0);
}

TEST(MpiCommunicator, SeveralAllReducesInFlight) {
  std::vector<std::vector<float>> bufs;
  for (int64_t n : {1009, 5, 0, 4099, 13}) bufs.push_back(own_values<float>(g_comm->rank(), n));
  std::vector<double> d = own_values<double>(g_comm->rank(), 777);
  std::vector<normlab::dist::CommHandle> handles;
  for (size_t k = 0; k < bufs.size(); ++k)
    handles.push_back(
        k % 2 ? g_comm->start_all_reduce_mean(bufs[k].data(), static_cast<int64_t>(bufs[k].size()))
              : g_comm->start_all_reduce_sum(bufs[k].data(), static_cast<int64_t>(bufs[k].size())));
  normlab::dist::CommHandle hd = g_comm->start_all_reduce_sum(d.data(), 777);
  // Ranks wait in different orders: waiting on one moves every one in flight.
  if (g_comm->rank() % 2) {
    for (size_t k = handles.size(); k-- > 0;) handles[k].wait();
  } else {
    while (!handles[0].test()) {
    }
    for (auto& h : handles) h.wait();
  }
  hd.wait();
  for (size_t k = 0; k < bufs.size(); ++k)
    EXPECT_EQ(mismatches(bufs[k], g_comm->size(), k % 2 == 1), 0) << "buffer " << k;
  EXPECT_EQ(mismatches(d, g_comm->size(), false), 0);
  // A handle dropped without wait() waits in its destructor.
  std::vector<float> dropped = own_values<float>(g_comm->rank(), 50);
  { auto h = g_comm->start_all_reduce_sum(dropped.data(), 50); }
  EXPECT_EQ(mismatches(dropped, g_comm->size(), false), 0);
}

TEST(MpiCommunicator, TensorOverloads) {
  using T = normlab::Tensor<float, normlab::Cpu>;
  T t = T::from_vector(normlab::Shape{3, 5}, own_values<float>(g_comm->rank(), 15));  // (3, 5)
  g_comm->all_reduce_mean(t);
  EXPECT_EQ(mismatches(t.to_vector(), g_comm->size(), true), 0);
  T u = T::from_vector(normlab::Shape{15}, own_values<float>(g_comm->rank(), 15));  // (15,)
  g_comm->start_all_reduce(u, normlab::dist::ReduceOp::sum).wait();
  EXPECT_EQ(mismatches(u.to_vector(), g_comm->size(), false), 0);
}

TEST(MpiCommunicator, Broadcast) {
  for (int root = 0; root < g_comm->size(); ++root) {
    std::vector<double> d = own_values<double>(g_comm->rank(), 1009);
    g_comm->broadcast(d.data(), 1009, root);
    EXPECT_EQ(d, own_values<double>(root, 1009)) << "root " << root;
    std::vector<int64_t> ids(3, g_comm->rank());
    g_comm->broadcast(ids.data(), 3, root);
    EXPECT_EQ(ids, std::vector<int64_t>(3, root));
  }
  MpiOptions small;
  small.max_message_bytes = 16;
  MpiCommunicator comm(small);
  using T = normlab::Tensor<int64_t, normlab::Cpu>;
  T t = T::full(normlab::Shape{2, 9}, comm.rank() + 100);  // (2, 9)
  comm.broadcast(t, comm.size() - 1);
  EXPECT_EQ(t.to_vector(), std::vector<int64_t>(18, comm.size() - 1 + 100));
  std::vector<float> empty;
  comm.broadcast(empty.data(), 0, 0);
}

TEST(MpiCommunicator, Barrier) {
  for (int k = 0; k < 5; ++k) g_comm->barrier();
}

// Strings of different lengths per rank (one empty, one of several messages'
// worth, bytes of every value) come back whole, indexed by rank, on every rank.
TEST(MpiCommunicator, AllGatherStringsOfEveryLength) {
  auto value_of = [](int r) {
    std::string v;
    const size_t n = r == 0 ? 0 : r == 1 ? 300000 : static_cast<size_t>(17 * r);
    for (size_t i = 0; i < n; ++i)
      v.push_back(static_cast<char>((i * 131 + static_cast<size_t>(r)) % 256));
    return v;
  };
  for (int round = 0; round < 2; ++round) {
    const std::vector<std::string> all = g_comm->all_gather_strings(value_of(g_comm->rank()));
    ASSERT_EQ(all.size(), static_cast<size_t>(g_comm->size()));
    for (int r = 0; r < g_comm->size(); ++r)
      EXPECT_EQ(all[static_cast<size_t>(r)], value_of(r)) << "round " << round << ", rank " << r;
  }
}

TEST(MpiCommunicator, CheckSameNamesTheRankThatDiffers) {
  g_comm->check_same("config", "d_model=64 n_layers=2");
  g_comm->check_same("empty", "");
  if (g_comm->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const std::string mine = g_comm->rank() == 1 ? "d_model=128" : "d_model=64";
  try {
    g_comm->check_same("model config", mine);
    ADD_FAILURE() << "rank " << g_comm->rank() << ": check_same did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("check_same(model config)"), std::string::npos) << msg;
    EXPECT_NE(msg.find(" rank 1 have \"d_model=128\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("have \"d_model=64\""), std::string::npos) << msg;
  }
  // The communicator is still usable.
  EXPECT_FALSE(g_comm->failed());
  std::vector<float> v = own_values<float>(g_comm->rank(), 31);
  g_comm->all_reduce_sum(v.data(), 31);
  EXPECT_EQ(mismatches(v, g_comm->size(), false), 0);
}

// ---- data-parallel training (Trainer with a communicator) ---------------------

namespace nl = normlab;

/// A small NormFormer GPT over bytes (dropout 0.1 by default, so that the masks' streams
/// matter).
nl::ModelConfig dp_config(int64_t seq_len = 16, double dropout = 0.1) {
  nl::ModelConfig c;
  c.vocab_size = 256;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.d_ff = 32;
  c.max_seq_len = seq_len;
  c.policy = "normformer";
  c.dropout = dropout;
  return c;
}

struct DpRun {
  std::vector<double> losses, grad_norms;
  std::vector<std::vector<float>> params;
};

/// `steps` steps of a Trainer over the global batch of 8 windows, split into
/// micro_batches slices on this rank (times the communicator's ranks, when given).
DpRun train_dp(nl::dist::Communicator* comm, int64_t micro_batches, double dropout = 0.1,
               int64_t steps = 3) {
  static const nl::TextCorpus corpus =
      nl::TextCorpus::from_string(nl::synthetic_corpus(20000, 5), "synthetic");
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  nl::GPT<nl::NormFormer, float, nl::Cpu> model(dp_config(16, dropout), 7);
  nl::AdamW<float, nl::Cpu> opt(model);
  nl::TrainerOptions o;
  o.steps = steps;
  o.batch_size = 8;
  o.seq_len = 16;
  o.eval_every = 0;
  o.micro_batches = micro_batches;
  o.communicator = comm;
  nl::Trainer trainer(model, opt, nl::Schedule::linear(3e-3, 1, steps, 1e-4), corpus, split, o);
  DpRun r;
  for (int64_t i = 0; i < steps; ++i) {
    const nl::StepMetrics m = trainer.step();
    r.losses.push_back(m.loss);
    r.grad_norms.push_back(m.grad_norm);
    // The exchange is part of the step's time on several ranks, and absent in one process.
    const double step_s = 8.0 * 16.0 / m.tokens_per_s;
    if (comm != nullptr && comm->size() > 1) {
      EXPECT_GT(m.exchange_s, 0.0) << "step " << m.step;
      EXPECT_LT(m.exchange_s, step_s) << "step " << m.step;
    } else {
      EXPECT_EQ(m.exchange_s, 0.0) << "step " << m.step;
    }
  }
  for (const auto& p : model.parameters()) r.params.push_back(p.data().to_vector());
  return r;
}

// N ranks of one slice each reproduce, bit for bit, one process that runs the N slices as
// micro-batches: the same slices, the same dropout streams, the same left fold of the
// gradients (slice order there, rank order here) and of the loss.
TEST(DataParallelTrainer, EqualsOneProcessWithAMicroBatchPerRankBitForBit) {
  const DpRun parallel = train_dp(g_comm, 1);
  const DpRun serial = train_dp(nullptr, g_comm->size());
  EXPECT_EQ(parallel.losses, serial.losses);
  EXPECT_EQ(parallel.grad_norms, serial.grad_norms);
  EXPECT_EQ(parallel.params, serial.params);
  // Without dropout (whose masks depend on how the batch is sliced), the batch in one piece
  // and two micro-batches on every rank give the same run up to rounding.
  const DpRun parallel_plain = train_dp(g_comm, 1, 0.0);
  const DpRun whole = train_dp(nullptr, 1, 0.0);
  const DpRun both = train_dp(g_comm, 2, 0.0);
  for (size_t i = 0; i < whole.losses.size(); ++i) {
    EXPECT_NEAR(parallel_plain.losses[i], whole.losses[i], 1e-5 * whole.losses[i]) << i + 1;
    EXPECT_NEAR(both.losses[i], whole.losses[i], 1e-5 * whole.losses[i]) << i + 1;
  }
}

TEST(DataParallelTrainer, RanksWithAnotherConfigAreRefusedOnEveryRank) {
  const nl::TextCorpus corpus =
      nl::TextCorpus::from_string(nl::synthetic_corpus(20000, 5), "synthetic");
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  nl::GPT<nl::NormFormer, float, nl::Cpu> model(dp_config(g_comm->rank() == 1 ? 12 : 16), 7);
  nl::AdamW<float, nl::Cpu> opt(model);
  nl::TrainerOptions o;
  o.batch_size = 8;
  o.seq_len = 12;
  o.communicator = g_comm;
  try {
    nl::Trainer trainer(model, opt, nl::Schedule::constant(1e-3), corpus, split, o);
    ADD_FAILURE() << "rank " << g_comm->rank() << " accepted a rank with another config";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("check_same(the trainer's model and options)"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 1 have"), std::string::npos) << e.what();
  }
  o.micro_batches = 3;  // 8 rows do not split into 3 x ranks slices
  EXPECT_THROW(nl::Trainer(model, opt, nl::Schedule::constant(1e-3), corpus, split, o), Error);
}

TEST(MpiCommunicator, RejectsCudaTensorsAndBadRoots) {
  std::vector<float> v(3);
  EXPECT_THROW(g_comm->broadcast(v.data(), 3, g_comm->size()), Error);
  EXPECT_TRUE(g_comm->accepts_backend("cpu"));
  EXPECT_FALSE(g_comm->accepts_backend("cuda"));
}

/// Prints only failed assertions, with the rank (GoogleTest's full report comes from rank 0).
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                   r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }

 private:
  int rank_;
};

/// The failure scenarios, run by expect_failure.cmake: each must end every rank
/// with an error, and mpirun with a non-zero status, well within its time limit.
int run_scenario(const std::string& scenario) {
  MpiOptions options;
  options.timeout = std::chrono::seconds(2);
  MpiCommunicator comm(options);
  std::vector<float> v(1000, 1.0f);
  try {
    if (scenario == "rank_exits") {
      if (comm.rank() == 1) {  // leaves before the collective the others call
        std::fprintf(stderr, "rank 1: returning before all_reduce_sum\n");
        return 0;
      }
      comm.all_reduce_sum(v.data(), 1000);
    } else if (scenario == "size_mismatch") {
      const int64_t n = comm.rank() == 1 ? 1000 : 500;
      comm.all_reduce_sum(v.data(), n);
      comm.barrier();
    } else {
      std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
      return 2;
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "rank %d: normlab::Error: %s\n", comm.rank(), e.what());
    return 1;  // comm's destructor exits with status 1: mpirun ends the job
  }
  std::fprintf(stderr, "rank %d: the scenario finished without an error\n", comm.rank());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--scenario=", 0) == 0) return run_scenario(arg.substr(11));
  }
  ::testing::InitGoogleTest(&argc, argv);
  MpiOptions options;
  options.timeout = std::chrono::seconds(30);
  auto comm = std::make_unique<MpiCommunicator>(options);
  g_comm = comm.get();
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(comm->rank()));
  }
  int failed = RUN_ALL_TESTS() != 0;
  // Every rank exits non-zero when any rank failed.
  std::vector<double> any = {static_cast<double>(failed)};
  comm->all_reduce_sum(any.data(), 1);
  if (comm->rank() == 0)
    std::printf("normlab_test_dist_mpi: %d ranks, %s\n", comm->size(),
                any[0] > 0 ? "FAILED on some rank" : "passed on every rank");
  g_comm = nullptr;
  comm.reset();  // MPI_Finalize
  return any[0] > 0 ? 1 : 0;
}
