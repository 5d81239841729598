#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <cstdint>

TEST_CASE_TEMPLATE("Parameters: flat buffers, offsets, names", P, mpt::precision::fp32, mpt::precision::bf16_mixed, mpt::precision::fp64) {
  mpt::nn::Parameters<P> params;
  const auto w = params.declare("encoder.dense.weight", mpt::Shape{3, 5}, mpt::nn::ParamRole::linear_weight);
  const auto b = params.declare("encoder.dense.bias", mpt::Shape{3}, mpt::nn::ParamRole::linear_bias);
  CHECK_THROWS_WITH_AS(params.declare("encoder.dense.bias", mpt::Shape{3}, mpt::nn::ParamRole::linear_bias),
                       "Parameters::declare: 'encoder.dense.bias' is declared twice", mpt::Error);
  CHECK_THROWS_AS(params.master(w), mpt::Error);  // before allocate
  params.allocate();
  CHECK(params.numel() == 18);
  CHECK(params.entry(b).offset == 16);  // 15 elements rounded up to a 64-byte boundary
  CHECK(reinterpret_cast<std::uintptr_t>(params.grad(b).data()) % 64 == 0);
  CHECK(params.find("encoder.dense.weight") == &params.entry(w));
  CHECK(params.find("nope") == nullptr);
  CHECK_FALSE(mpt::nn::weight_decay_applies(params.entry(b).role));

  params.master(w)(2, 4) = typename P::master_t(1.00390625);  // a bf16 tie: rounds to 1.0 in bf16
  params.sync_compute_copy();
  const double seen = static_cast<double>(mpt::to_float(params.compute(w)(2, 4)));
  if constexpr (std::is_same_v<typename P::param_t, mpt::bf16>) {
    CHECK(seen == 1.0);
    CHECK(params.compute_bytes() == params.master_bytes() / 2);
  } else {
    CHECK(seen == 1.00390625);
    CHECK(params.compute_bytes() == 0);
  }
  params.grad(w)(0, 0) = 2;
  params.zero_grad();
  CHECK(params.grad(w)(0, 0) == 0);
}
