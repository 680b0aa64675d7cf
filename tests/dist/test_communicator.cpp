// tests/dist/test_communicator.cpp — SingleProcessCommunicator and the checks every
// communicator shares (normlab/dist/communicator.hpp). The MPI collectives are
// tested under mpirun by tests/dist/mpi.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "normlab/dist/communicator.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

using dist::SingleProcessCommunicator;

TEST(SingleProcessCommunicator, IsRankZeroOfOne) {
  SingleProcessCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_STREQ(comm.name(), "single");
  EXPECT_EQ(comm.timeout(), dist::Communicator::kDefaultTimeout);
}

TEST(SingleProcessCommunicator, AllReduceLeavesTheValues) {
  SingleProcessCommunicator comm;
  std::vector<float> f = {1.5f, -2.25f, 3e-8f};
  const std::vector<float> f0 = f;
  comm.all_reduce_sum(f.data(), static_cast<int64_t>(f.size()));
  EXPECT_EQ(f, f0);
  comm.all_reduce_mean(f.data(), static_cast<int64_t>(f.size()));
  EXPECT_EQ(f, f0);
  std::vector<double> d = {0.1, 0.2};
  comm.all_reduce_mean(d.data(), 2);
  EXPECT_EQ(d, (std::vector<double>{0.1, 0.2}));
  comm.all_reduce_sum(static_cast<double*>(nullptr), 0);  // an empty buffer is fine
}

TEST(SingleProcessCommunicator, AsyncHandlesAreDoneAtOnce) {
  SingleProcessCommunicator comm;
  std::vector<double> a = {1, 2, 3}, b = {4};
  dist::CommHandle ha = comm.start_all_reduce_sum(a.data(), 3);
  dist::CommHandle hb = comm.start_all_reduce_mean(b.data(), 1);
  EXPECT_TRUE(hb.test());
  hb.wait();
  ha.wait();
  EXPECT_TRUE(ha.done());
  EXPECT_EQ(a, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(b, (std::vector<double>{4}));
  dist::CommHandle empty;
  EXPECT_TRUE(empty.done());
  empty.wait();
}

TEST(SingleProcessCommunicator, TensorOverloads) {
  SingleProcessCommunicator comm;
  TensorF t = TensorF::from({{1, 2}, {3, 4}});  // (2, 2)
  comm.all_reduce_sum(t);
  comm.all_reduce_mean(t);
  comm.start_all_reduce(t, dist::ReduceOp::sum).wait();
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4}));
  TensorI ids = TensorI::from({7, 8, 9});  // (3,)
  comm.broadcast(ids, 0);
  EXPECT_EQ(ids.to_vector(), (std::vector<int64_t>{7, 8, 9}));
  TensorF undefined;
  EXPECT_THROW(comm.all_reduce_sum(undefined), Error);
}

TEST(SingleProcessCommunicator, BroadcastBarrierCheckSame) {
  SingleProcessCommunicator comm;
  std::vector<int64_t> v = {1, 2};
  comm.broadcast(v.data(), 2, 0);
  EXPECT_EQ(v, (std::vector<int64_t>{1, 2}));
  comm.barrier();
  comm.check_same("config", "d_model=64");
  const std::string bytes("a\0b", 3);
  EXPECT_EQ(comm.all_gather_strings(bytes), std::vector<std::string>{bytes});
}

TEST(Communicator, RejectsBadArguments) {
  SingleProcessCommunicator comm;
  std::vector<float> f(4);
  expect_error([&] { comm.all_reduce_sum(f.data(), -1); },
               {"all_reduce_sum: the element count must be >= 0, found -1"});
  expect_error([&] { comm.all_reduce_mean(static_cast<float*>(nullptr), 3); },
               {"all_reduce_mean: 3 elements at a null pointer"});
  expect_error([&] { comm.broadcast(f.data(), 4, 1); },
               {"broadcast: root must be a rank in [0, 1), found 1"});
  expect_error([&] { comm.start_all_reduce_sum(f.data(), int64_t{1} << 62); },
               {"do not fit an int64 byte count"});
  expect_error([&] { comm.set_timeout(std::chrono::milliseconds(0)); },
               {"set_timeout expects a positive timeout, found 0 ms"});
  comm.set_timeout(std::chrono::milliseconds(1500));
  EXPECT_EQ(comm.timeout().count(), 1500);
}

/// Two ranks of a device-side communicator (as NCCL's): reduces "cuda" memory only.
/// Its collectives are never reached: the Trainer refuses it first.
class DeviceOnlyCommunicator final : public dist::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  const char* name() const override { return "device-only"; }
  bool accepts_backend(std::string_view backend) const override { return backend == "cuda"; }

 protected:
  std::unique_ptr<dist::PendingOperation> do_start_all_reduce(void*, int64_t, dist::ElementType,
                                                              dist::ReduceOp) override {
    throw Error("DeviceOnlyCommunicator: no collective expected");
  }
  void do_broadcast(void*, int64_t, int) override {
    throw Error("DeviceOnlyCommunicator: no collective expected");
  }
  void do_barrier() override { throw Error("DeviceOnlyCommunicator: no collective expected"); }
  std::vector<std::string> do_all_gather_strings(const std::string&) override {
    throw Error("DeviceOnlyCommunicator: no collective expected");
  }
};

TEST(Communicator, TheTrainerRefusesOneThatCannotReduceItsTensors) {
  GPT<PreLN, float, Cpu> model(model_config("pre_ln", {256, 16, 2, 1, 32, 8}), 1);
  AdamW<float, Cpu> opt(model);
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(20000, 1), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), {});
  DeviceOnlyCommunicator comm;
  TrainerOptions o;
  o.batch_size = 4;
  o.seq_len = 8;
  o.communicator = &comm;
  expect_error([&] { Trainer trainer(model, opt, Schedule::constant(1e-3), corpus, split, o); },
               {"Trainer: data parallelism on cpu tensors needs a communicator that reduces them; "
                "the device-only communicator does not"});
}

}  // namespace
}  // namespace normlab::testing
