// fp16 conversions, the deterministic global L2 norm, learning-rate schedules
// against transformers' formulas, AdamW and SGD trajectories against torch.
#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

using mpt::Isa;
using nlohmann::json;
namespace optim = mpt::optim;

namespace {
json read_fixture(const std::string& name) {
  const std::string path = std::string(MPT_TEST_DATA) + "/optim/" + name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << path << " (run /usr/bin/python3 tools/gen_optim_fixtures.py)");
  return json::parse(in);
}

double rel_diff(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); }
// Relative difference with an absolute floor for values near zero.
double rel_diff_floor(double a, double b, double floor) { return std::fabs(a - b) / std::max(std::fabs(b), floor); }

// fp16 rounding by definition: the nearer of the two neighbouring halves in
// exact (double) arithmetic, the even one on a tie.
std::uint16_t fp16_by_definition(float x) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  if (std::isnan(x)) return static_cast<std::uint16_t>(sign | 0x7E00u | ((u >> 13) & 0x3FFu));
  const double ax = std::fabs(static_cast<double>(x));
  // Walk the magnitudes: h is the largest half magnitude <= ax.
  std::uint16_t lo = 0, hi = 0x7C00;
  while (hi - lo > 1) {
    const std::uint16_t mid = static_cast<std::uint16_t>((lo + hi) / 2);
    if (static_cast<double>(mpt::fp16_bits_to_float(mid)) <= ax)
      lo = mid;
    else
      hi = mid;
  }
  const double a = mpt::fp16_bits_to_float(lo);
  // Above the largest finite half (65504) the next "value" is 65536 (rounds to Inf).
  const double b = hi == 0x7C00 ? 65536.0 : static_cast<double>(mpt::fp16_bits_to_float(hi));
  std::uint16_t r = lo;
  if (std::isinf(x))
    r = 0x7C00;
  else if (ax - a > b - ax || (ax - a == b - ax && (lo & 1u)))
    r = hi;
  return static_cast<std::uint16_t>(sign | r);
}
}  // namespace

TEST_CASE("fp16 narrowing: scalar reference follows round-to-nearest-even by definition") {
  const float cases[] = {0.0f,
                         -0.0f,
                         1.0f,
                         1.0f + 0x1p-11f,
                         1.0f + 3 * 0x1p-11f,
                         65504.0f,
                         65519.99f,
                         65520.0f,
                         -70000.0f,
                         0x1p-14f,
                         0x1p-24f,
                         0x1p-25f,
                         0x1.8p-25f,
                         0x1p-26f,
                         3 * 0x1p-25f,
                         0x1.ffcp-15f,
                         0x1.ffep-15f,
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::denorm_min()};
  for (float x : cases) {
    CAPTURE(x);
    CHECK(mpt::float_bits_to_fp16_bits(std::bit_cast<std::uint32_t>(x)) == fp16_by_definition(x));
  }
  const unsigned seed = 2024;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> exponent(-30.0f, 17.0f);
  for (int k = 0; k < 20000; ++k) {
    const float x = std::ldexp(std::uniform_real_distribution<float>(1.0f, 2.0f)(rng), static_cast<int>(exponent(rng))) * (k % 2 ? -1.0f : 1.0f);
    const std::uint16_t got = mpt::float_bits_to_fp16_bits(std::bit_cast<std::uint32_t>(x));
    const std::uint16_t want = fp16_by_definition(x);
    if (got != want) {
      CAPTURE(x);
      CHECK(got == want);
    }
    // Eigen's own conversion agrees on every non-NaN value.
    if (mpt::fp16_bits(Eigen::half(x)) != got) {
      CAPTURE(x);
      CHECK(mpt::fp16_bits(Eigen::half(x)) == got);
    }
  }
}

TEST_CASE("fp16 conversions: F16C and AVX-512 paths give the scalar reference's bits") {
  const unsigned seed = 99;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  std::vector<float> in(4099);
  for (auto& x : in) x = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));  // every class: NaN, Inf, subnormal
  in[0] = std::bit_cast<float>(0x7F800001u);                                       // signalling NaN
  in[1] = 65520.0f;
  std::vector<mpt::fp16> want(in.size());
  mpt::convert_with(Isa::scalar, std::span<const float>(in), std::span<mpt::fp16>(want));
  // Every half bit pattern widens exactly.
  std::vector<mpt::fp16> all(65536);
  for (std::uint32_t h = 0; h < 65536; ++h) all[h] = mpt::fp16_from_bits(static_cast<std::uint16_t>(h));
  std::vector<float> widened_ref(all.size());
  mpt::convert_with(Isa::scalar, std::span<const mpt::fp16>(all), std::span<float>(widened_ref));
  for (std::uint32_t h = 0; h < 65536; h += 997) {
    const float f = widened_ref[h];
    if (!std::isnan(f)) CHECK(mpt::to_fp16(f).x == h);  // round trip
  }
  for (Isa isa : mpt::supported_isas()) {
    CAPTURE(mpt::isa_name(isa));
    std::vector<mpt::fp16> got(in.size());
    mpt::convert_with(isa, std::span<const float>(in), std::span<mpt::fp16>(got));
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < in.size(); ++i) mismatches += got[i].x != want[i].x;
    CHECK(mismatches == 0);
    std::vector<float> widened(all.size());
    mpt::convert_with(isa, std::span<const mpt::fp16>(all), std::span<float>(widened));
    mismatches = 0;
    for (std::size_t i = 0; i < all.size(); ++i)
      mismatches += std::bit_cast<std::uint32_t>(widened[i]) != std::bit_cast<std::uint32_t>(widened_ref[i]);
    CHECK(mismatches == 0);
  }
}

TEST_CASE_TEMPLATE("global L2 norm: same bits on every path and thread count, accurate", Acc, float, double) {
  const unsigned seed = 7;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{16384}, std::size_t{16385},
                        std::size_t{100003}}) {
    CAPTURE(n);
    std::vector<float> x(n);
    for (auto& v : x) v = normal(rng) * 1e-3f;
    const std::span<const float> one[] = {x};
    long double exact = 0;
    for (float v : x) exact += static_cast<long double>(v) * v;
    const Acc reference = mpt::kernels::sum_of_squares_with<Acc>(Isa::scalar, one);
    CHECK(rel_diff_floor(static_cast<double>(reference), static_cast<double>(exact), 1e-30) < (std::is_same_v<Acc, float> ? 1e-5 : 1e-13));
    for (Isa isa : mpt::supported_isas()) {
      for (int threads : {1, 2, 3}) {
        mpt::ScopedNumThreads guard(threads);
        CAPTURE(mpt::isa_name(isa));
        CAPTURE(threads);
        CHECK(std::bit_cast<std::conditional_t<std::is_same_v<Acc, float>, std::uint32_t, std::uint64_t>>(mpt::kernels::sum_of_squares_with<Acc>(
                  isa, one)) == std::bit_cast<std::conditional_t<std::is_same_v<Acc, float>, std::uint32_t, std::uint64_t>>(reference));
      }
    }
  }
  // Several buffers read as one concatenation (same value up to rounding).
  std::vector<float> a(20000), b(777);
  for (auto& v : a) v = normal(rng);
  for (auto& v : b) v = normal(rng);
  std::vector<float> ab(a);
  ab.insert(ab.end(), b.begin(), b.end());
  const std::span<const float> parts[] = {a, b};
  CHECK(rel_diff(mpt::kernels::global_l2_norm<Acc>(std::span<const std::span<const float>>(parts)), mpt::kernels::global_l2_norm<Acc>(ab)) < 1e-6);
  // A non-finite element makes the norm non-finite.
  ab[12345] = std::numeric_limits<float>::quiet_NaN();
  CHECK(!std::isfinite(mpt::kernels::global_l2_norm<Acc>(ab)));
  ab[12345] = std::numeric_limits<float>::infinity();
  CHECK(!std::isfinite(mpt::kernels::global_l2_norm<Acc>(ab)));
}

TEST_CASE("learning-rate schedules match transformers' formulas at every step") {
  const json fixture = read_fixture("schedules.json");
  int cases = 0;
  for (const auto& c : fixture.at("cases")) {
    optim::LrSchedule s;
    s.kind = optim::parse_schedule_kind(c.at("kind").get<std::string>());
    s.base_lr = c.at("lr").get<double>();
    s.warmup_steps = c.at("warmup_steps").get<std::int64_t>();
    s.total_steps = c.at("total_steps").get<std::int64_t>();
    s.num_cycles = c.at("num_cycles").get<double>();
    s.power = c.at("power").get<double>();
    s.lr_end = c.at("lr_end").get<double>();
    const auto lrs = c.at("lrs").get<std::vector<double>>();
    double worst = 0;
    for (std::size_t step = 0; step < lrs.size(); ++step) {
      worst = std::max(worst, std::fabs(s.lr(static_cast<std::int64_t>(step)) - lrs[step]) / s.base_lr);
    }
    CAPTURE(c.at("kind").get<std::string>());
    CAPTURE(s.warmup_steps);
    CAPTURE(s.total_steps);
    CHECK(worst < 1e-15);  // double arithmetic in both; cos/pow may differ by an ulp
    ++cases;
  }
  CHECK(cases > 40);
  for (const auto& c : fixture.at("warmup_ratio_cases")) {
    CHECK(optim::warmup_steps_for(0, c.at("ratio").get<double>(), c.at("total").get<std::int64_t>()) == c.at("warmup_steps").get<std::int64_t>());
  }
  CHECK(optim::warmup_steps_for(5, 0.5, 100) == 5);  // warmup_steps wins over the ratio
  // get_scheduler's per-kind defaults, and the settings round trip.
  const auto restarts = optim::LrSchedule::for_trainer("cosine_with_restarts", 3e-5, 10, 100);
  CHECK(restarts.num_cycles == 1.0);
  CHECK(optim::LrSchedule::for_trainer("cosine", 3e-5, 10, 100).num_cycles == 0.5);
  optim::LrSchedule loaded;
  loaded.load_state(restarts.state());
  for (std::int64_t step = 0; step < 110; ++step) CHECK(loaded.lr(step) == restarts.lr(step));
  CHECK_THROWS_WITH_AS(optim::parse_schedule_kind("cosine_annealing"), doctest::Contains("lr_scheduler_type"), mpt::Error);
}

TEST_CASE("ParameterTable: offsets in order, decay as the model decides, names unique") {
  optim::ParameterTable t;
  t.add("a.weight", 10).add("a.bias", 3, false).add("b.LayerNorm.weight", 4, false);
  CHECK(t.size() == 17);
  CHECK(t.find("a.bias").offset == 10);
  CHECK(t.find("a.weight").decay);
  CHECK(!t.find("b.LayerNorm.weight").decay);
  CHECK_THROWS_WITH_AS(t.add("a.bias", 1), doctest::Contains("already in the table"), mpt::Error);
  std::vector<float> p(16);
  CHECK_THROWS_WITH_AS((optim::AdamW<mpt::precision::fp32>(p, t)), doctest::Contains("describes 17"), mpt::Error);
}

namespace {
// Replays a torch trajectory fixture through an optimizer on one ISA: the
// parameters after every step within `tolerance`, relative to max(|torch|, floor).
template <class MakeOptimizer>
void replay_trajectory(const json& fx, Isa isa, MakeOptimizer make, double tolerance, double floor) {
  mpt::ScopedIsa guard(isa);
  optim::ParameterTable table;
  for (const auto& p : fx.at("params")) {
    // tools/gen_optim_fixtures.py's parameter groups: no decay for "bias" and "LayerNorm" names.
    const auto name = p.at("name").get<std::string>();
    const bool decay = name.find("bias") == std::string::npos && name.find("LayerNorm") == std::string::npos;
    table.add(name, p.at("numel").get<std::size_t>(), decay);
  }
  auto params = fx.at("initial").get<std::vector<float>>();
  auto optimizer = make(std::span<float>(params), table);
  const auto& cfg = fx.at("config");
  optim::LrSchedule schedule{optim::ScheduleKind::linear, cfg.at("lr").get<double>(), cfg.at("warmup").get<std::int64_t>(),
                             fx.at("steps").get<std::int64_t>()};
  optim::NoLossScaling scaler;
  double worst = 0, worst_norm = 0;
  for (std::size_t step = 0; step < fx.at("grads").size(); ++step) {
    const auto grads = fx.at("grads")[step].get<std::vector<float>>();
    const double lr = schedule.lr(static_cast<std::int64_t>(step));
    CHECK(rel_diff_floor(lr, fx.at("lr")[step].get<double>(), 1e-12) < 1e-15);
    const auto report = optim::clip_and_step(optimizer, scaler, std::span<const float>(grads), lr, cfg.at("max_grad_norm").get<double>());
    worst_norm = std::max(worst_norm, rel_diff(report.grad_norm, fx.at("grad_norm")[step].get<double>()));
    const auto want = fx.at("after")[step].get<std::vector<float>>();
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, rel_diff_floor(params[i], want[i], floor));
  }
  MESSAGE(mpt::isa_name(isa) << ": max relative difference to torch " << worst << ", grad norm " << worst_norm);
  CHECK(worst < tolerance);
  CHECK(worst_norm < 1e-6);
}
}  // namespace

TEST_CASE("AdamW fp32 follows torch.optim.AdamW: weight decay, exemptions, clipping, warmup") {
  const json fx = read_fixture("adamw_trajectory.json");
  const auto& cfg = fx.at("config");
  for (Isa isa : mpt::supported_isas()) {
    replay_trajectory(
        fx, isa,
        [&](std::span<float> p, const optim::ParameterTable& t) {
          optim::AdamWOptions o;
          o.lr = cfg.at("lr").get<double>();
          o.beta1 = cfg.at("betas")[0].get<double>();
          o.beta2 = cfg.at("betas")[1].get<double>();
          o.eps = cfg.at("eps").get<double>();
          o.weight_decay = cfg.at("weight_decay").get<double>();
          return optim::AdamW<mpt::precision::fp32>(p, t, o);
        },
        1e-6, 1e-3);
  }
}

TEST_CASE("SGD fp32 follows torch.optim.SGD: momentum (Nesterov; dampening), weight decay, exemptions, clipping") {
  for (const char* file : {"sgd_trajectory.json", "sgd_momentum_trajectory.json"}) {
    CAPTURE(file);
    const json fx = read_fixture(file);
    const auto& cfg = fx.at("config");
    for (Isa isa : mpt::supported_isas()) {
      replay_trajectory(
          fx, isa,
          [&](std::span<float> p, const optim::ParameterTable& t) {
            optim::SgdOptions o;
            o.lr = cfg.at("lr").get<double>();
            o.momentum = cfg.at("momentum").get<double>();
            o.dampening = cfg.at("dampening").get<double>();
            o.nesterov = cfg.at("nesterov").get<bool>();
            o.weight_decay = cfg.at("weight_decay").get<double>();
            return optim::Sgd<mpt::precision::fp32>(p, t, o);
          },
          1e-6, 1e-2);  // parameters crossing zero: below 0.01, 1e-8 absolute (the clip coefficient's last bit differs)
    }
  }
}
