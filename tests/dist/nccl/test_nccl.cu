// tests/dist/nccl/test_nccl.cu — NcclCommunicator under mpirun, one GPU per rank
// (normlab/dist/nccl.hpp). Skipped when no GPU is visible or when there are fewer
// GPUs than ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../rank_values.hpp"
#include "normlab/cuda.hpp"
#include "normlab/dist/nccl.hpp"

namespace {

using normlab::dist::MpiCommunicator;
using normlab::dist::NcclCommunicator;
using normlab::dist::NcclOptions;
using normlab::dist::NcclOrder;

MpiCommunicator* g_mpi = nullptr;
NcclCommunicator* g_nccl = nullptr;  ///< null: skipped (see g_skip)
std::string g_skip;

using normlab::dist_testing::own_values;
using normlab::dist_testing::serial;
using normlab::dist_testing::value;

#define NL_SKIP_WITHOUT_NCCL() \
  if (g_nccl == nullptr) GTEST_SKIP() << g_skip

template <class Scalar>
void check_rank_order(NcclCommunicator& comm) {
  using T = normlab::Tensor<Scalar, normlab::Cuda>;
  for (int64_t n : {1, 2, 3, 7, 97, 1009, 65537}) {
    for (bool mean : {false, true}) {
      T t = T::from_vector(normlab::Shape{n}, own_values<Scalar>(comm.rank(), n));  // (n,)
      if (mean)
        comm.all_reduce_mean(t);
      else
        comm.all_reduce_sum(t);
      const std::vector<Scalar> got = t.to_vector();
      int64_t bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const Scalar s = serial<Scalar>(comm.size(), i, mean);
        bad += std::memcmp(&s, &got[static_cast<size_t>(i)], sizeof(Scalar)) != 0;
      }
      EXPECT_EQ(bad, 0) << "n = " << n << (mean ? " mean" : " sum");
    }
  }
}

TEST(NcclCommunicator, AllReduceIsTheSumInRankOrderBitForBit) {
  NL_SKIP_WITHOUT_NCCL();
  check_rank_order<float>(*g_nccl);
  check_rank_order<double>(*g_nccl);
}

TEST(NcclCommunicator, NcclOrderIsTheSameOnEveryRank) {
  NL_SKIP_WITHOUT_NCCL();
  NcclOptions options;
  options.order = NcclOrder::nccl;
  NcclCommunicator comm(*g_mpi, options);
  using T = normlab::Tensor<float, normlab::Cuda>;
  T t = T::from_vector(normlab::Shape{1009}, own_values<float>(comm.rank(), 1009));  // (1009,)
  comm.all_reduce_sum(t);
  const std::vector<float> mine = t.to_vector();
  std::vector<float> root = mine;
  g_mpi->broadcast(root.data(), 1009, 0);
  EXPECT_EQ(std::memcmp(mine.data(), root.data(), mine.size() * sizeof(float)), 0);
}

TEST(NcclCommunicator, AsyncBroadcastBarrierCheckSame) {
  NL_SKIP_WITHOUT_NCCL();
  using T = normlab::Tensor<double, normlab::Cuda>;
  std::vector<T> ts;
  std::vector<normlab::dist::CommHandle> hs;
  for (int64_t n : {5, 4099, 1}) {
    ts.push_back(T::from_vector(normlab::Shape{n}, own_values<double>(g_nccl->rank(), n)));
    hs.push_back(g_nccl->start_all_reduce(ts.back(), normlab::dist::ReduceOp::sum));
  }
  for (size_t k = hs.size(); k-- > 0;) hs[k].wait();
  for (const T& t : ts) {
    const std::vector<double> got = t.to_vector();
    for (size_t i = 0; i < got.size(); ++i) {
      const double s = serial<double>(g_nccl->size(), static_cast<int64_t>(i), false);
      EXPECT_EQ(got[i], s);
    }
  }
  T b = T::full(normlab::Shape{3, 4}, g_nccl->rank() + 1.0);  // (3, 4)
  g_nccl->broadcast(b, g_nccl->size() - 1);
  EXPECT_EQ(b.to_vector(), std::vector<double>(12, g_nccl->size()));
  g_nccl->barrier();
  g_nccl->check_same("config", "same");
  using H = normlab::Tensor<float, normlab::Cpu>;
  H host = H::zeros(normlab::Shape{2});
  EXPECT_THROW(g_nccl->all_reduce_sum(host), normlab::Error);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  normlab::dist::MpiOptions mpi_options;
  mpi_options.timeout = std::chrono::seconds(60);
  auto mpi = std::make_unique<MpiCommunicator>(mpi_options);
  g_mpi = mpi.get();
  const int gpus = normlab::cuda::device_count();
  std::unique_ptr<NcclCommunicator> nccl;
  if (gpus == 0) {
    g_skip = "no CUDA device is visible";
  } else if (gpus < mpi->size()) {
    g_skip =
        normlab::detail::concat("needs one GPU per rank: ", mpi->size(), " ranks, ", gpus, " GPUs");
  } else {
    NL_CUDA_CHECK(cudaSetDevice(mpi->rank() % gpus));
    NcclOptions options;
    options.timeout = std::chrono::seconds(60);
    nccl = std::make_unique<NcclCommunicator>(*mpi, options);
    g_nccl = nccl.get();
  }
  if (mpi->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  std::vector<double> failed = {RUN_ALL_TESTS() != 0 ? 1.0 : 0.0};
  mpi->all_reduce_sum(failed.data(), 1);
  g_nccl = nullptr;
  nccl.reset();
  g_mpi = nullptr;
  mpi.reset();
  return failed[0] > 0 ? 1 : 0;
}
