// Master-weight policies, loss scaling, state save/load and convergence:
// what mixed-precision training needs from the optimizer.
#include <doctest/doctest.h>
#include "test_seed.hpp"
#include <mpt/mpt.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>
#include <unistd.h>

using mpt::bf16;
using mpt::fp16;
using mpt::Isa;
namespace optim = mpt::optim;
namespace precision = mpt::precision;

namespace {
std::vector<float> random_vector(std::size_t n, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

template <class T>
std::vector<T> narrow_to(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_same_v<T, bf16>)
      out[i] = mpt::to_bf16(v[i]);
    else if constexpr (std::is_same_v<T, fp16>)
      out[i] = mpt::to_fp16(v[i]);
    else
      out[i] = static_cast<T>(v[i]);
  }
  return out;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// An optimizer configuration for TEST_CASE_TEMPLATE: policy, weights, optimizer.
template <template <class, class> class Opt, class P, class W>
struct Config {
  using policy = P;
  using param_t = typename P::param_t;
  using optimizer = Opt<P, W>;
  static auto options() {
    if constexpr (std::is_same_v<optimizer, optim::Sgd<P, W>>) {
      optim::SgdOptions o;
      o.momentum = 0.9;
      o.nesterov = true;
      o.weight_decay = 0.01;
      o.seed = 5;
      return o;
    } else {
      optim::AdamWOptions o;
      o.weight_decay = 0.01;
      o.seed = 5;
      return o;
    }
  }
};
using AdamWFp32 = Config<optim::AdamW, precision::fp32, optim::weights::direct>;
using AdamWMixed = Config<optim::AdamW, precision::bf16_mixed, optim::weights::fp32_master>;
using AdamWSplit = Config<optim::AdamW, precision::bf16_mixed, optim::weights::split_master>;
using AdamWPureSr = Config<optim::AdamW, precision::bf16_pure, optim::weights::stochastic_rounding>;
using AdamWPureNearest = Config<optim::AdamW, precision::bf16_pure, optim::weights::nearest_rounding>;
using AdamWFp16 = Config<optim::AdamW, precision::fp16_mixed, optim::weights::fp32_master>;
using SgdMixed = Config<optim::Sgd, precision::bf16_mixed, optim::weights::fp32_master>;
using SgdSplit = Config<optim::Sgd, precision::bf16_mixed, optim::weights::split_master>;
using SgdPureSr = Config<optim::Sgd, precision::bf16_pure, optim::weights::stochastic_rounding>;

optim::ParameterTable small_table(std::size_t n) {
  optim::ParameterTable t;
  t.add("layer.weight", n - n / 4).add("layer.bias", n / 8, false).add("layer.LayerNorm.weight", n / 4 - n / 8, false);
  return t;
}
}  // namespace

#define MPT_ALL_CONFIGS AdamWFp32, AdamWMixed, AdamWSplit, AdamWPureSr, AdamWPureNearest, AdamWFp16, SgdMixed, SgdSplit, SgdPureSr

TEST_CASE_TEMPLATE("every weight policy: the same bits on every instruction set and thread count", C, MPT_ALL_CONFIGS) {
  const std::size_t n = 70001;  // three update runs, an odd tail
  const auto init = random_vector(n, 11, 1.0f);
  std::vector<std::vector<typename C::param_t>> results;
  for (Isa isa : mpt::supported_isas()) {
    for (int threads : {1, 2}) {
      mpt::ScopedIsa isa_guard(isa);
      mpt::ScopedNumThreads thread_guard(threads);
      auto params = narrow_to<typename C::param_t>(init);
      typename C::optimizer opt(std::span{params}, small_table(n), C::options());
      for (int step = 0; step < 3; ++step) opt.step(random_vector(n, 100 + step, 0.1f), 1e-2, 0.5f);
      results.push_back(params);
    }
  }
  for (std::size_t r = 1; r < results.size(); ++r) CHECK(same_bits(results[r], results[0]));
}

namespace {
// A bf16-representable starting point, so every policy starts from the same weights.
std::vector<float> bf16_exact_vector(std::size_t n, unsigned seed) {
  auto v = random_vector(n, seed, 1.0f);
  for (auto& x : v) x = mpt::round_to_bf16(x);
  return v;
}
}  // namespace

TEST_CASE("bf16_mixed and split master weights follow the fp32 trajectory given the same gradients") {
  const std::size_t n = 1000;
  const auto init = bf16_exact_vector(n, 3);
  auto fp32_params = init;
  auto mixed_params = narrow_to<bf16>(init);
  auto split_params = narrow_to<bf16>(init);
  optim::AdamWOptions o;
  o.weight_decay = 0.1;
  optim::AdamW<precision::fp32> fp32(std::span{fp32_params}, small_table(n), o);
  optim::AdamW<precision::bf16_mixed> mixed(std::span{mixed_params}, small_table(n), o);
  optim::AdamW<precision::bf16_mixed, optim::weights::split_master> split(std::span{split_params}, small_table(n), o);
  for (int step = 0; step < 20; ++step) {
    const auto g = random_vector(n, 40 + step, 0.3f);
    fp32.step(g, 1e-3);
    mixed.step(g, 1e-3);
    split.step(g, 1e-3);
  }
  std::size_t master_mismatch = 0, copy_mismatch = 0, split_mismatch = 0, trunc_mismatch = 0, moved = 0;
  const auto master = mixed.weights().master();
  const auto trail = mixed.state_dict();  // (fp32_master's state holds "master")
  (void)trail;
  auto split_state = split.state_dict();
  const auto* split_trail = reinterpret_cast<const std::uint16_t*>(split_state.find("master_trail").data);
  for (std::size_t i = 0; i < n; ++i) {
    master_mismatch += std::bit_cast<std::uint32_t>(master[i]) != std::bit_cast<std::uint32_t>(fp32_params[i]);
    copy_mismatch += mpt::bf16_bits(mixed_params[i]) != mpt::float_to_bf16_bits(master[i]);
    const std::uint32_t split_master = static_cast<std::uint32_t>(mpt::bf16_bits(split_params[i])) << 16 | split_trail[i];
    split_mismatch += split_master != std::bit_cast<std::uint32_t>(fp32_params[i]);
    trunc_mismatch += mpt::bf16_bits(split_params[i]) != (std::bit_cast<std::uint32_t>(fp32_params[i]) >> 16);
    moved += fp32_params[i] != init[i];
  }
  CHECK(master_mismatch == 0);  // the fp32 master is the fp32 run, bit for bit
  CHECK(copy_mismatch == 0);    // the bf16 copy is its round-to-nearest-even image
  CHECK(split_mismatch == 0);   // param bits << 16 | trail is the same fp32 master
  CHECK(trunc_mismatch == 0);   // and the split's bf16 copy is its top half
  CHECK(moved > n * 9 / 10);
  std::vector<float> from_mixed(n), from_split(n);
  mixed.copy_master_weights(from_mixed);
  split.copy_master_weights(from_split);
  CHECK(same_bits(from_mixed, fp32_params));
  CHECK(same_bits(from_split, fp32_params));
}

TEST_CASE_TEMPLATE("set_master_weights keeps the full fp32 values where the policy has room for them", C, MPT_ALL_CONFIGS) {
  const std::size_t n = 257;
  const auto fp32 = random_vector(n, 31, 1.0f);  // not bf16-representable
  auto params = narrow_to<typename C::param_t>(std::vector<float>(n, 0.0f));
  typename C::optimizer opt(std::span{params}, small_table(n), C::options());
  opt.set_master_weights(fp32);
  std::vector<float> master(n);
  opt.copy_master_weights(master);
  using W = typename C::optimizer::weight_store;
  constexpr bool full = std::is_same_v<W, optim::WeightStore<typename C::policy, optim::weights::direct>> ||
                        std::is_same_v<W, optim::WeightStore<typename C::policy, optim::weights::fp32_master>> ||
                        std::is_same_v<W, optim::WeightStore<typename C::policy, optim::weights::split_master>>;
  std::size_t exact = 0, copy_ok = 0;
  for (std::size_t i = 0; i < n; ++i) {
    exact += master[i] == fp32[i];
    const float copy = mpt::to_float(params[i]);
    if constexpr (std::is_same_v<W, optim::WeightStore<typename C::policy, optim::weights::split_master>>) {
      copy_ok += std::bit_cast<std::uint32_t>(copy) == (std::bit_cast<std::uint32_t>(fp32[i]) & 0xFFFF0000u);  // top half
    } else {
      copy_ok += copy == mpt::to_float(narrow_to<typename C::param_t>(std::vector<float>{fp32[i]})[0]);  // nearest
    }
  }
  CHECK(copy_ok == n);
  if (full)
    CHECK(exact == n);
  else
    CHECK(exact < n / 10);  // pure bf16: only the rounded copy exists
}

TEST_CASE("weight decay skips biases and LayerNorm weights") {
  const std::size_t n = 64;
  const auto init = random_vector(n, 8, 1.0f);
  auto params = init;
  const auto table = small_table(n);
  optim::AdamWOptions o;
  o.weight_decay = 0.5;
  optim::AdamW<precision::fp32> opt(std::span{params}, table, o);
  opt.step(std::vector<float>(n, 0.0f), 0.1);  // zero gradients: only the decay moves weights
  for (const auto& e : table.entries()) {
    for (std::size_t i = e.offset; i < e.offset + e.count; ++i) {
      CAPTURE(e.name);
      CHECK(params[i] == (e.decay ? init[i] * static_cast<float>(1.0 - 0.1 * 0.5) : init[i]));
    }
  }
}

TEST_CASE("stochastic rounding is unbiased; nearest rounding drops small updates") {
  const float base = 1.0f;  // bf16 spacing at 1 is 2^-7
  const float x = base + 0.3f * 0x1p-7f;
  const std::uint32_t key = optim::detail::rounding_key(42, 1);
  std::size_t up = 0;
  const std::size_t trials = 200000;
  for (std::size_t i = 0; i < trials; ++i) {
    up += optim::detail::stochastic_round_bf16_bits(x, optim::detail::rounding_bits(key, i)) != mpt::float_to_bf16_bits(base);
  }
  const double fraction = static_cast<double>(up) / trials;
  MESSAGE("rounded up " << fraction << " of the time; 0.3 expected");
  CHECK(std::fabs(fraction - 0.3) < 0.005);                            // 5 standard deviations of a binomial at n = 2e5
  CHECK(mpt::float_to_bf16_bits(x) == mpt::float_to_bf16_bits(base));  // nearest: the 0.3-spacing update is lost
  // Special values keep their meaning.
  CHECK(std::isinf(mpt::to_float(mpt::bf16_from_bits(optim::detail::stochastic_round_bf16_bits(std::numeric_limits<float>::infinity(), 0xFFFFu)))));
  CHECK(std::isnan(mpt::to_float(mpt::bf16_from_bits(optim::detail::stochastic_round_bf16_bits(std::numeric_limits<float>::quiet_NaN(), 0xFFFFu)))));
}

TEST_CASE("dynamic loss scaler: GradScaler's growth and backoff") {
  optim::DynamicLossScaler scaler;
  CHECK(scaler.scale() == 65536.0f);
  CHECK(scaler.inv_scale() == 1.0f / 65536.0f);
  for (int i = 0; i < 1999; ++i) CHECK(scaler.update(false));
  CHECK(scaler.scale() == 65536.0f);
  CHECK(scaler.update(false));
  CHECK(scaler.scale() == 131072.0f);  // x2 after 2000 clean steps
  for (int i = 0; i < 1000; ++i) scaler.update(false);
  CHECK(!scaler.update(true));          // inf/NaN: skip
  CHECK(scaler.scale() == 65536.0f);    // x0.5
  CHECK(scaler.growth_tracker() == 0);  // and the clean-step count restarts
  CHECK(scaler.skipped_steps() == 1);
  for (int i = 0; i < 1999; ++i) scaler.update(false);
  CHECK(scaler.scale() == 65536.0f);
  scaler.update(false);
  CHECK(scaler.scale() == 131072.0f);
  CHECK_THROWS_AS(optim::DynamicLossScaler({.init_scale = 1.0f, .growth_factor = 0.5f}), mpt::Error);
}

TEST_CASE("injected inf and NaN gradients skip the step and back off the scale") {
  const std::size_t n = 100;
  auto params = narrow_to<bf16>(random_vector(n, 1, 1.0f));
  optim::AdamW<precision::bf16_mixed> opt(std::span{params}, small_table(n));
  optim::DynamicLossScaler scaler({.init_scale = 1024.0f, .growth_interval = 3});
  auto grads = random_vector(n, 2, 1024.0f);
  for (float poison : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    const auto before = params;
    const float scale = scaler.scale();
    grads[37] = poison;
    const auto report = optim::clip_and_step(opt, scaler, std::span<const float>(grads), 1e-3, 1.0);
    CHECK(!report.applied);
    CHECK(same_bits(params, before));
    CHECK(report.loss_scale == scale / 2);
  }
  CHECK(opt.steps() == 0);
  CHECK(scaler.skipped_steps() == 3);
  grads[37] = 0.5f;
  for (int i = 0; i < 3; ++i) CHECK(optim::clip_and_step(opt, scaler, std::span<const float>(grads), 1e-3, 1.0).applied);
  CHECK(opt.steps() == 3);
  CHECK(scaler.scale() == 256.0f);  // 1024 / 8, then x2 after 3 clean steps
  // A static scaler also skips, without changing its scale.
  optim::StaticLossScaler fixed(128.0f);
  grads[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK(!optim::clip_and_step(opt, fixed, std::span<const float>(grads), 1e-3, 0.0).applied);
  CHECK(fixed.scale() == 128.0f);
  CHECK(fixed.skipped_steps() == 1);
}

TEST_CASE("clipping: the reported norm is the unscaled global norm; loss scale and clipping compose") {
  const std::size_t n = 5000;
  const auto g = random_vector(n, 77, 0.1f);  // norm ~ 7: clipped to 1
  auto scaled = g;
  for (auto& x : scaled) x *= 4096.0f;
  auto a = bf16_exact_vector(n, 5), b = a;
  optim::AdamW<precision::fp32> oa(std::span{a}, small_table(n)), ob(std::span{b}, small_table(n));
  optim::NoLossScaling none;
  optim::StaticLossScaler fixed(4096.0f);
  const auto ra = optim::clip_and_step(oa, none, std::span<const float>(g), 1e-2, 1.0);
  const auto rb = optim::clip_and_step(ob, fixed, std::span<const float>(scaled), 1e-2, 1.0);
  CHECK(ra.grad_norm == rb.grad_norm);  // power-of-two scales unscale exactly
  CHECK(ra.grad_norm == doctest::Approx(std::sqrt(mpt::kernels::sum_of_squares<double>(g))).epsilon(1e-6));
  CHECK(same_bits(a, b));
}

TEST_CASE("gradient accumulation: micro-batches sum to the full-batch gradient") {
  // Linear regression gradient of mean((x.w - y)^2 / 2) over a batch.
  const std::size_t d = 16, batch = 8;
  const auto x = random_vector(batch * d, 1, 1.0f), y = random_vector(batch, 2, 1.0f), w = random_vector(d, 3, 1.0f);
  auto grad_of = [&](std::size_t begin, std::size_t end, float loss_multiplier, std::vector<float>& grad) {
    for (std::size_t s = begin; s < end; ++s) {
      float r = -y[s];
      for (std::size_t j = 0; j < d; ++j) r += x[s * d + j] * w[j];
      for (std::size_t j = 0; j < d; ++j) grad[j] += loss_multiplier * r * x[s * d + j] / static_cast<float>(end - begin);
    }
  };
  std::vector<float> full(d), accumulated(d);
  grad_of(0, batch, 1.0f, full);
  optim::GradientAccumulation accumulation(2);
  CHECK(accumulation.loss_multiplier() == 0.5f);
  grad_of(0, batch / 2, accumulation.loss_multiplier(), accumulated);
  CHECK(!accumulation.end_micro_batch());
  grad_of(batch / 2, batch, accumulation.loss_multiplier(), accumulated);
  CHECK(accumulation.end_micro_batch());
  for (std::size_t j = 0; j < d; ++j) CHECK(accumulated[j] == doctest::Approx(full[j]).epsilon(1e-5));
  CHECK_THROWS_AS(optim::GradientAccumulation(0), mpt::Error);
}

TEST_CASE_TEMPLATE("state save and load: a resumed run continues bit-identically", C, MPT_ALL_CONFIGS) {
  const std::size_t n = 3001;
  const auto init = narrow_to<typename C::param_t>(bf16_exact_vector(n, 21));
  const optim::LrSchedule schedule{optim::ScheduleKind::linear, 1e-2, 2, 8};
  auto run_step = [&](typename C::optimizer& opt, optim::DynamicLossScaler& scaler, int step) {
    auto g = random_vector(n, 300 + step, 0.2f * scaler.scale());
    if (step == 4) g[9] = std::numeric_limits<float>::infinity();  // one skipped step inside the resumed part
    optim::clip_and_step(opt, scaler, std::span<const float>(g), schedule.lr(opt.steps()), 1.0);
  };
  // Reference: 8 steps without interruption, saving after 3.
  auto params = init;
  typename C::optimizer opt(std::span{params}, small_table(n), C::options());
  optim::DynamicLossScaler scaler({.init_scale = 256.0f, .growth_interval = 2});
  for (int step = 0; step < 3; ++step) run_step(opt, scaler, step);
  const optim::SavedState saved(opt.state_dict());
  const nlohmann::json saved_scaler = scaler.state();
  const auto saved_params = params;  // the model checkpoint's job
  for (int step = 3; step < 8; ++step) run_step(opt, scaler, step);
  // Resume in a fresh optimizer (default options: the saved ones are restored).
  auto resumed_params = saved_params;
  typename C::optimizer resumed(std::span{resumed_params}, small_table(n), C::options());
  resumed.load_state_dict(saved.view());
  optim::DynamicLossScaler resumed_scaler;
  resumed_scaler.load_state(saved_scaler);
  CHECK(resumed.steps() == 3);
  for (int step = 3; step < 8; ++step) run_step(resumed, resumed_scaler, step);
  CHECK(same_bits(resumed_params, params));
  CHECK(resumed_scaler.state() == scaler.state());
  CHECK(scaler.skipped_steps() == 1);
  const optim::SavedState a(opt.state_dict()), b(resumed.state_dict());
  for (std::size_t t = 0; t < a.view().tensors.size(); ++t) {
    const auto& ta = a.view().tensors[t];
    const auto& tb = b.view().tensors[t];
    CHECK(ta.name == tb.name);
    CHECK(std::memcmp(ta.data, tb.data, ta.bytes()) == 0);
  }
  CHECK(a.view().scalars == b.view().scalars);
}

TEST_CASE("loading state saved by another weight policy fails with a clear message") {
  const std::size_t n = 64;
  auto p1 = narrow_to<bf16>(random_vector(n, 1, 1.0f)), p2 = p1;
  optim::AdamW<precision::bf16_mixed> mixed(std::span{p1}, small_table(n));
  optim::AdamW<precision::bf16_mixed, optim::weights::split_master> split(std::span{p2}, small_table(n));
  const optim::SavedState saved(mixed.state_dict());
  CHECK_THROWS_WITH_AS(split.load_state_dict(saved.view()), doctest::Contains("split_master"), mpt::Error);
}

TEST_CASE_TEMPLATE("bytes per parameter: declared equals allocated", C, MPT_ALL_CONFIGS) {
  const std::size_t n = 1000;
  auto params = narrow_to<typename C::param_t>(random_vector(n, 1, 1.0f));
  typename C::optimizer opt(std::span{params}, small_table(n), C::options());
  std::size_t bytes = n * sizeof(typename C::param_t);
  for (const auto& t : opt.state_dict().tensors) bytes += t.bytes();
  const double measured = static_cast<double>(bytes) / n;
  MESSAGE(opt.state_dict().scalars.at("optimizer").template get<std::string>()
          << " " << opt.state_dict().scalars.at("weights").template get<std::string>() << ": " << measured
          << " bytes per parameter (weights + optimizer state)");
  CHECK(measured == opt.bytes_per_parameter());
  // By hand: the weights the model reads, + what the weight policy keeps beside them,
  // + the rule's state (AdamW: exp_avg and exp_avg_sq; SGD with momentum: one buffer), fp32 each.
  //   fp32 direct 4 + 8 = 12;  bf16 + fp32 master 2 + 4 + 8 = 14;  bf16 + low 16 bits 2 + 2 + 8 = 12;
  //   bf16 alone (stochastic or nearest rounding) 2 + 8 = 10;  SGD: 2 + 4 + 4, 2 + 2 + 4, 2 + 4.
  const double by_hand = std::is_same_v<C, AdamWFp32>                                            ? 12
                         : std::is_same_v<C, AdamWMixed>                                         ? 14
                         : std::is_same_v<C, AdamWSplit>                                         ? 12
                         : std::is_same_v<C, AdamWPureSr> || std::is_same_v<C, AdamWPureNearest> ? 10
                         : std::is_same_v<C, AdamWFp16>                                          ? 14
                         : std::is_same_v<C, SgdMixed>                                           ? 10
                         : std::is_same_v<C, SgdSplit>                                           ? 8
                                                                                                 : 6;
  CHECK(opt.bytes_per_parameter() == by_hand);
}

namespace {
// A small least-squares problem: y = X w* + noise, loss = mean((X w - y)^2) / 2.
// The weights w* are of order 1 to 2, where bf16's spacing (2^-7 .. 2^-6)
// is larger than AdamW's per-step update (~lr = 1e-3).
struct Regression {
  static constexpr std::size_t d = 32, n = 128;
  std::vector<float> x, y, w_start;
  Regression() : x(random_vector(n * d, 1234, 1.0f)), y(n) {
    std::mt19937 rng(mpt::test::seed(99));
    std::uniform_real_distribution<float> magnitude(1.0f, 2.0f), offset(-0.25f, 0.25f);
    std::normal_distribution<float> noise(0.0f, 0.1f);
    std::vector<float> w_true(d);
    for (std::size_t j = 0; j < d; ++j) w_true[j] = magnitude(rng) * (j % 2 ? -1.0f : 1.0f);
    for (std::size_t s = 0; s < n; ++s) {
      float acc = noise(rng);
      for (std::size_t j = 0; j < d; ++j) acc += x[s * d + j] * w_true[j];
      y[s] = acc;
    }
    for (std::size_t j = 0; j < d; ++j) w_start.push_back(mpt::round_to_bf16(w_true[j] + offset(rng)));
  }
  // Loss at weights w (in fp32), gradient into grad.
  float loss_and_gradient(const std::vector<float>& w, std::vector<float>& grad) const {
    double loss = 0;
    std::fill(grad.begin(), grad.end(), 0.0f);
    for (std::size_t s = 0; s < n; ++s) {
      float r = -y[s];
      for (std::size_t j = 0; j < d; ++j) r += x[s * d + j] * w[j];
      loss += 0.5 * static_cast<double>(r) * r / n;
      for (std::size_t j = 0; j < d; ++j) grad[j] += r * x[s * d + j] / static_cast<float>(n);
    }
    return static_cast<float>(loss);
  }
};

template <class P, class W>
float train_regression(const Regression& problem, int steps) {
  using param_t = typename P::param_t;
  auto params = narrow_to<param_t>(problem.w_start);
  optim::AdamWOptions o;
  o.seed = 17;
  optim::AdamW<P, W> opt(std::span{params}, optim::ParameterTable::single("w", Regression::d), o);
  const optim::LrSchedule schedule{optim::ScheduleKind::linear, 1e-3, 0, steps};
  std::vector<float> w(Regression::d), grad(Regression::d);
  for (int step = 0; step < steps; ++step) {
    for (std::size_t j = 0; j < w.size(); ++j) w[j] = mpt::to_float(params[j]);  // what the model computes with
    problem.loss_and_gradient(w, grad);
    opt.step(grad, schedule.lr(step));
  }
  for (std::size_t j = 0; j < w.size(); ++j) w[j] = mpt::to_float(params[j]);
  return problem.loss_and_gradient(w, grad);
}
}  // namespace

TEST_CASE("convergence: bf16_mixed and pure bf16 with stochastic rounding reach the fp32 loss; nearest rounding stalls") {
  const Regression problem;
  const int steps = 1500;
  std::vector<float> w(problem.w_start), grad(Regression::d);
  const float start = problem.loss_and_gradient(w, grad);
  const float fp32 = train_regression<precision::fp32, optim::weights::direct>(problem, steps);
  const float mixed = train_regression<precision::bf16_mixed, optim::weights::fp32_master>(problem, steps);
  const float split = train_regression<precision::bf16_mixed, optim::weights::split_master>(problem, steps);
  const float stochastic = train_regression<precision::bf16_pure, optim::weights::stochastic_rounding>(problem, steps);
  const float nearest = train_regression<precision::bf16_pure, optim::weights::nearest_rounding>(problem, steps);
  MESSAGE("loss after " << steps << " AdamW steps (start " << start << "): fp32 " << fp32 << ", bf16_mixed " << mixed << ", split master " << split
                        << ", pure bf16 stochastic " << stochastic << ", pure bf16 nearest " << nearest);
  CHECK(fp32 < start / 20);
  // bf16 compute weights cost a little (their spacing is ~1e-2 here): within 10 %.
  CHECK(mixed < fp32 * 1.10f);
  CHECK(split < fp32 * 1.10f);
  // Stochastic rounding also jitters the weights by up to one spacing: within 25 %.
  CHECK(stochastic < fp32 * 1.25f);
  // Round-to-nearest drops every update smaller than half a spacing: no progress.
  CHECK(nearest > start * 0.5f);
}

TEST_CASE("fp16 storage: small gradients underflow without loss scaling and survive with dynamic scaling") {
  // A model whose output gradient is tiny (a loss weighted by 1e-6): the
  // backward pass stores the output gradient in fp16 (act_t), as fp16 mixed
  // precision does, then accumulates the weight gradient in fp32.
  using P = precision::fp16_mixed;
  const Regression problem;
  const float loss_weight = 1e-6f;
  auto train = [&](auto& scaler, int steps) {
    auto params = narrow_to<fp16>(problem.w_start);
    optim::AdamW<P> opt(std::span{params}, optim::ParameterTable::single("w", Regression::d), {.lr = 1e-3});
    std::vector<float> w(Regression::d), grad(Regression::d);
    std::vector<fp16> dy(Regression::n);
    std::size_t nonzero_dy = 0;
    for (int step = 0; step < steps; ++step) {
      for (std::size_t j = 0; j < w.size(); ++j) w[j] = mpt::to_float(params[j]);
      for (std::size_t s = 0; s < Regression::n; ++s) {
        float r = -problem.y[s];
        for (std::size_t j = 0; j < Regression::d; ++j) r += problem.x[s * Regression::d + j] * w[j];
        dy[s] = mpt::to_fp16(scaler.scale() * loss_weight * r / static_cast<float>(Regression::n));  // fp16 store
        nonzero_dy += mpt::to_float(dy[s]) != 0.0f;
      }
      std::fill(grad.begin(), grad.end(), 0.0f);
      for (std::size_t s = 0; s < Regression::n; ++s)
        for (std::size_t j = 0; j < Regression::d; ++j) grad[j] += mpt::to_float(dy[s]) * problem.x[s * Regression::d + j];
      optim::clip_and_step(opt, scaler, std::span<const float>(grad), 1e-3, 0.0);
    }
    for (std::size_t j = 0; j < w.size(); ++j) w[j] = mpt::to_float(params[j]);
    return std::pair{problem.loss_and_gradient(w, grad), nonzero_dy};
  };
  std::vector<float> w(problem.w_start), grad(Regression::d);
  const float start = problem.loss_and_gradient(w, grad);
  optim::NoLossScaling none;
  const auto [loss_unscaled, nonzero_unscaled] = train(none, 300);
  // Start too high on purpose: the first steps overflow fp16 and are skipped.
  optim::DynamicLossScaler dynamic({.init_scale = 0x1p44f, .growth_interval = 100});
  const auto [loss_scaled, nonzero_scaled] = train(dynamic, 300);
  MESSAGE("fp16 after 300 steps (start " << start << "): no scaling " << loss_unscaled << " (" << nonzero_unscaled
                                         << " nonzero output gradients), dynamic scaling " << loss_scaled << " (scale " << dynamic.scale() << ", "
                                         << dynamic.skipped_steps() << " skipped steps)");
  CHECK(nonzero_unscaled == 0);        // every output gradient flushed to zero in fp16
  CHECK(loss_unscaled == start);       // so nothing was learned
  CHECK(dynamic.skipped_steps() > 0);  // overflow at 2^44 was detected and backed off
  CHECK(loss_scaled < start / 4);      // and the scaled gradients trained the model
}

TEST_CASE_TEMPLATE("state through files: save_optimizer_state / load_optimizer_state resume bit-identically", C, MPT_ALL_CONFIGS) {
  const std::size_t n = 1001;
  const auto dir = std::filesystem::temp_directory_path() / ("mpt_optim_state_resume_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto init = narrow_to<typename C::param_t>(bf16_exact_vector(n, 31));
  optim::LrSchedule schedule{optim::ScheduleKind::linear, 1e-2, 2, 8};
  auto run_step = [&](typename C::optimizer& opt, optim::DynamicLossScaler& scaler, int step) {
    const auto g = random_vector(n, 500 + step, 0.2f * scaler.scale());
    optim::clip_and_step(opt, scaler, std::span<const float>(g), schedule.lr(opt.steps()), 1.0);
  };
  auto params = init;
  typename C::optimizer opt(std::span{params}, small_table(n), C::options());
  optim::DynamicLossScaler scaler({.init_scale = 256.0f, .growth_interval = 2});
  for (int step = 0; step < 3; ++step) run_step(opt, scaler, step);
  optim::save_optimizer_state(dir, opt.state_dict(), scaler.state(), schedule.state());
  const auto saved_params = params;
  for (int step = 3; step < 6; ++step) run_step(opt, scaler, step);

  auto resumed_params = saved_params;
  typename C::optimizer resumed(std::span{resumed_params}, small_table(n), C::options());
  optim::DynamicLossScaler resumed_scaler;
  optim::LrSchedule resumed_schedule{optim::ScheduleKind::constant, 1.0, 0, 1};
  const auto loaded = optim::load_optimizer_state(dir);
  resumed.load_state_dict(loaded.optimizer.view());
  resumed_scaler.load_state(loaded.scaler);
  resumed_schedule.load_state(loaded.scheduler);
  CHECK(resumed_schedule.state() == schedule.state());
  for (int step = 3; step < 6; ++step) run_step(resumed, resumed_scaler, step);
  CHECK(same_bits(resumed_params, params));
  CHECK(resumed_scaler.state() == scaler.state());
  std::filesystem::remove_all(dir);
}

TEST_CASE("optimizer state files: damage is an error that names the file") {
  const std::size_t n = 64;
  const auto dir = std::filesystem::temp_directory_path() / ("mpt_optim_state_damaged_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto p = narrow_to<bf16>(random_vector(n, 1, 1.0f));
  optim::AdamW<precision::bf16_mixed> opt(std::span{p}, small_table(n));
  CHECK_THROWS_WITH_AS(optim::load_optimizer_state(dir), doctest::Contains("optimizer_state.json"), mpt::Error);
  optim::save_optimizer_state(dir, opt.state_dict());
  { std::ofstream(dir / "optimizer_state.json") << "{\"optimizer\": {"; }
  CHECK_THROWS_WITH_AS(optim::load_optimizer_state(dir), doctest::Contains("is not valid JSON"), mpt::Error);
  optim::save_optimizer_state(dir, opt.state_dict());
  std::filesystem::resize_file(dir / "optimizer.safetensors", 20);
  CHECK_THROWS_WITH_AS(optim::load_optimizer_state(dir), doctest::Contains("optimizer.safetensors"), mpt::Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a saved state that lacks a field, or holds one of another type, is an mpt::Error naming what was loaded; nothing changes") {
  const std::size_t n = 64;
  auto p = narrow_to<bf16>(random_vector(n, 1, 1.0f));
  optim::AdamW<precision::bf16_mixed> opt(std::span{p}, small_table(n));
  optim::StateDict saved = opt.state_dict();
  saved.scalars.erase("step");
  CHECK_THROWS_WITH_AS(opt.load_state_dict(saved), doctest::Contains("AdamW::load_state_dict: the saved state lacks a field"), mpt::Error);
  CHECK(opt.steps() == 0);
  optim::DynamicLossScaler scaler;
  auto scaler_state = scaler.state();
  scaler_state["scale"] = "large";
  CHECK_THROWS_WITH_AS(scaler.load_state(scaler_state), doctest::Contains("DynamicLossScaler::load_state: the saved state"), mpt::Error);
  optim::LrSchedule schedule;
  auto schedule_state = schedule.state();
  schedule_state.erase("warmup_steps");
  CHECK_THROWS_WITH_AS(schedule.load_state(schedule_state), doctest::Contains("LrSchedule::load_state: the saved state"), mpt::Error);
}
