// Learning-rate schedules: values at chosen steps written out by hand for
// every kind, fairseq's warm-up convention, spec strings, and errors.
#include <cmath>
#include <numbers>
#include <string>

#include "normlab/optim/optim.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

constexpr double kTol = 1e-15;

TEST(Schedule, ConstantWithAndWithoutWarmup) {
  const Schedule flat = Schedule::constant(1e-3);
  EXPECT_EQ(flat.lr(0), 1e-3);
  EXPECT_EQ(flat.lr(123456), 1e-3);
  // W = 4: lr = step / 4 * peak until step 4 (lr(0) = 0, as fairseq and HF).
  const Schedule warm = Schedule::constant(1e-3, 4);
  EXPECT_EQ(warm.lr(0), 0.0);
  EXPECT_NEAR(warm.lr(1), 0.25e-3, kTol);
  EXPECT_NEAR(warm.lr(3), 0.75e-3, kTol);
  EXPECT_EQ(warm.lr(4), 1e-3);
  EXPECT_EQ(warm.lr(1000), 1e-3);
}

TEST(Schedule, LinearWarmupThenLinearDecay) {
  // peak 1e-3, W 10, total 110, end 0.
  const Schedule s = Schedule::linear(1e-3, 10, 110);
  EXPECT_EQ(s.lr(0), 0.0);
  EXPECT_NEAR(s.lr(5), 5e-4, kTol);
  EXPECT_NEAR(s.lr(10), 1e-3, kTol);
  EXPECT_NEAR(s.lr(35), 7.5e-4, kTol);  // 1 - 25/100
  EXPECT_NEAR(s.lr(60), 5e-4, kTol);
  EXPECT_NEAR(s.lr(109), 1e-5, kTol);
  EXPECT_EQ(s.lr(110), 0.0);
  EXPECT_EQ(s.lr(500), 0.0);
  // end 1e-4: (1e-3 - 1e-4) * 0.5 + 1e-4 = 5.5e-4 half-way.
  const Schedule e = Schedule::linear(1e-3, 10, 110, 1e-4);
  EXPECT_NEAR(e.lr(60), 5.5e-4, kTol);
  EXPECT_EQ(e.lr(110), 1e-4);
}

TEST(Schedule, PolynomialDecayIsFairseqs) {
  // fairseq polynomial_decay: (peak - end) * (1 - (step - W) / (total - W))^power + end.
  const Schedule sq = Schedule::polynomial(1.0, 0, 10, 0.0, 2.0);
  EXPECT_EQ(sq.lr(0), 1.0);
  EXPECT_NEAR(sq.lr(5), 0.25, kTol);
  EXPECT_NEAR(sq.lr(9), 0.01, kTol);
  EXPECT_EQ(sq.lr(10), 0.0);
  const Schedule end = Schedule::polynomial(1.0, 0, 10, 0.1, 2.0);
  EXPECT_NEAR(end.lr(5), 0.9 * 0.25 + 0.1, kTol);  // 0.325
  // The NormFormer release's recipe: linear warm-up, then power-1 decay to 0.
  const Schedule ref = Schedule::polynomial(6e-4, 100, 1100);
  EXPECT_NEAR(ref.lr(50), 3e-4, kTol);
  EXPECT_NEAR(ref.lr(100), 6e-4, kTol);
  EXPECT_NEAR(ref.lr(600), 3e-4, kTol);
  EXPECT_EQ(ref.lr(1100), 0.0);
  EXPECT_EQ(ref.lr(100), Schedule::linear(6e-4, 100, 1100).lr(100));
}

TEST(Schedule, CosineWarmsUpFromMinLrAndHoldsItAfterTotal) {
  // peak 1e-3, W 10, total 110, min 1e-5; warm-up from min_lr (fairseq's default).
  const Schedule s = Schedule::cosine(1e-3, 10, 110, 1e-5);
  EXPECT_EQ(s.lr(0), 1e-5);
  EXPECT_NEAR(s.lr(5), 1e-5 + 5 * 0.99e-4, kTol);  // 5.05e-4
  EXPECT_NEAR(s.lr(10), 1e-3, kTol);
  // s = 25 of 100: cos(pi / 4) = 0.70710678...
  EXPECT_NEAR(s.lr(35), 1e-5 + 0.5 * 0.99e-3 * (1 + std::sqrt(0.5)), kTol);
  EXPECT_NEAR(s.lr(60), 1e-5 + 0.5 * 0.99e-3, kTol);  // cos(pi / 2) = 0
  EXPECT_NEAR(s.lr(85), 1e-5 + 0.5 * 0.99e-3 * (1 - std::sqrt(0.5)), kTol);
  EXPECT_EQ(s.lr(110), 1e-5);
  EXPECT_EQ(s.lr(10000), 1e-5);
}

TEST(Schedule, InverseSqrtIsFairseqs) {
  // fairseq inverse_sqrt: warm-up to peak over W, then peak * sqrt(W) / sqrt(step).
  const Schedule s = Schedule::inverse_sqrt(1e-3, 4);
  EXPECT_EQ(s.lr(0), 0.0);
  EXPECT_NEAR(s.lr(2), 5e-4, kTol);
  EXPECT_EQ(s.lr(4), 1e-3);
  EXPECT_NEAR(s.lr(16), 5e-4, kTol);   // 1e-3 * 2 / 4
  EXPECT_NEAR(s.lr(100), 2e-4, kTol);  // 1e-3 * 2 / 10
}

TEST(Schedule, ExponentialRampIsTheLrStressTest) {
  const Schedule s = Schedule::exponential(1e-4, 1.5);
  EXPECT_EQ(s.lr(0), 1e-4);
  EXPECT_NEAR(s.lr(1), 1.5e-4, kTol);
  EXPECT_NEAR(s.lr(2), 2.25e-4, kTol);
  EXPECT_NEAR(s.lr(10), 1e-4 * 57.6650390625, 1e-15);  // 1.5^10
  const Schedule slow = Schedule::exponential(1e-5, 1.01);
  EXPECT_NEAR(slow.lr(1000), 1e-5 * std::pow(1.01, 1000), 1e-18);
}

TEST(Schedule, FieldsCanBeSetDirectly) {
  Schedule s;
  s.kind = Schedule::Kind::polynomial;
  s.peak_lr = 2.0;
  s.warmup_steps = 2;
  s.warmup_init_lr = 1.0;
  s.total_steps = 6;
  s.power = 0.5;
  EXPECT_EQ(s.lr(0), 1.0);
  EXPECT_EQ(s.lr(1), 1.5);
  EXPECT_NEAR(s.lr(5), 2.0 * std::sqrt(0.25), kTol);  // (1 - 3/4)^0.5
}

TEST(Schedule, ParseReadsEveryKindAndToStringRoundTrips) {
  EXPECT_EQ(Schedule::parse("constant:lr=1e-3"), Schedule::constant(1e-3));
  EXPECT_EQ(Schedule::parse("constant:lr=1e-3,warmup=4"), Schedule::constant(1e-3, 4));
  EXPECT_EQ(Schedule::parse("linear:lr=0.001,warmup=10,total=110,end=1e-4"),
            Schedule::linear(1e-3, 10, 110, 1e-4));
  EXPECT_EQ(Schedule::parse("polynomial:lr=6e-4,warmup=500,total=20000,power=2"),
            Schedule::polynomial(6e-4, 500, 20000, 0, 2));
  EXPECT_EQ(Schedule::parse("cosine:lr=1e-3,warmup=10,total=110,end=1e-5"),
            Schedule::cosine(1e-3, 10, 110, 1e-5));
  EXPECT_EQ(Schedule::parse("cosine:lr=1e-3,warmup=10,total=110,end=1e-5,init=0").warmup_init_lr,
            0.0);
  EXPECT_EQ(Schedule::parse("inverse_sqrt:warmup=4000,lr=5e-4"),
            Schedule::inverse_sqrt(5e-4, 4000));
  EXPECT_EQ(Schedule::parse("exponential:lr=1e-5,factor=1.01"), Schedule::exponential(1e-5, 1.01));
  EXPECT_EQ(Schedule::cosine(1e-3, 10, 110, 1e-5).to_string(),
            "cosine:lr=0.001,warmup=10,init=1e-05,total=110,end=1e-05");
  for (const Schedule& s :
       {Schedule::constant(3e-4, 7), Schedule::linear(1e-3, 10, 110, 1e-4),
        Schedule::polynomial(6e-4, 500, 20000, 1e-7, 1.5), Schedule::cosine(0.1, 0, 3, 0.01),
        Schedule::inverse_sqrt(5e-4, 4000), Schedule::exponential(1e-5, 1.01)})
    EXPECT_EQ(Schedule::parse(s.to_string()), s) << s.to_string();
}

TEST(Schedule, ErrorsNameTheFieldAndTheValue) {
  expect_error([] { Schedule::constant(-1e-3); },
               {"Schedule(constant)", "peak_lr must be finite and >= 0", "-0.001"});
  expect_error([] { Schedule::constant(std::nan("")); }, {"peak_lr", "nan"});
  expect_error([] { Schedule::linear(1e-3, -5, 100); },
               {"Schedule(linear)", "warmup_steps must be >= 0, got -5"});
  expect_error([] { Schedule::linear(1e-3, 100, 100); },
               {"total_steps must be > warmup_steps (100), got 100"});
  expect_error([] { Schedule::cosine(1e-3, 0, 10, -1.0); },
               {"Schedule(cosine)", "end_lr (min_lr) must be finite and >= 0, got -1"});
  expect_error([] { Schedule::polynomial(1e-3, 0, 10, 0, 0); },
               {"Schedule(polynomial)", "power must be finite and > 0, got 0"});
  expect_error([] { Schedule::inverse_sqrt(1e-3, 0); },
               {"Schedule(inverse_sqrt)", "warmup_steps must be >= 1", "got 0"});
  expect_error([] { Schedule::exponential(1e-5, 0.0); },
               {"Schedule(exponential)", "factor must be finite and > 0, got 0"});
  expect_error([] { Schedule::exponential(-1e-5, 2.0); }, {"start_lr", "-1e-05"});
  Schedule warm_ramp = Schedule::exponential(1e-5, 1.1);
  warm_ramp.warmup_steps = 3;
  expect_error([&] { (void)warm_ramp.lr(0); }, {"has no warm-up", "got 3"});
  expect_error([] { (void)Schedule::constant(1.0).lr(-1); },
               {"Schedule(constant)", "step must be >= 0, got -1"});

  expect_error([] { Schedule::parse("warmup_cosine:lr=1"); },
               {"Schedule::parse('warmup_cosine:lr=1')", "unknown schedule 'warmup_cosine'",
                "constant, linear, polynomial, cosine, inverse_sqrt or exponential"});
  expect_error([] { Schedule::parse("cosine:lr=1,total=10,power=2"); },
               {"key 'power' does not apply to cosine", "accepted: lr, warmup, init, total, end"});
  expect_error([] { Schedule::parse("linear:lr=abc,total=10"); }, {"'lr=abc' is not a number"});
  expect_error([] { Schedule::parse("linear:lr=1,total=1e3"); }, {"'total=1e3' is not an integer"});
  expect_error([] { Schedule::parse("linear:lr=1,lr=2,total=3"); }, {"key 'lr' is given twice"});
  expect_error([] { Schedule::parse("linear:lr=1"); }, {"missing key 'total'"});
  expect_error([] { Schedule::parse("constant"); }, {"missing key 'lr'"});
  expect_error([] { Schedule::parse("constant:lr"); }, {"expected key=value, got 'lr'"});
  expect_error([] { Schedule::parse("linear:lr=1,total=-3"); },
               {"Schedule(linear)", "total_steps must be > warmup_steps (0), got -3"});
}

}  // namespace
}  // namespace normlab::testing
