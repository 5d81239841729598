#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <cstdint>

TEST_CASE("Tensor is zeroed, 64-byte aligned and row-major") {
  mpt::Tensor<float> t(mpt::Shape{2, 3, 4});
  CHECK(t.size() == 24);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  for (float v : t.span()) CHECK(v == 0.0f);
  t(1, 2, 3) = 5.0f;
  CHECK(t[1 * 12 + 2 * 4 + 3] == 5.0f);
  mpt::TensorView<const float> v = t;
  CHECK(v(1, 2, 3) == 5.0f);
  CHECK(v.dim(-1) == 4);
  mpt::MatrixView<const float> m = mpt::as_matrix(v);
  CHECK(m.rows == 6);
  CHECK(m.cols == 4);
  CHECK(m(5, 3) == 5.0f);
}

TEST_CASE("shape errors name the operation and both shapes") {
  mpt::Tensor<float> t(mpt::Shape{2, 3});
  CHECK_THROWS_WITH_AS(mpt::check_shape("layer_norm_forward", "gamma", t.shape(), mpt::Shape{4}),
                       "layer_norm_forward: gamma has shape [2, 3] but [4] is required", mpt::Error);
  CHECK_THROWS_WITH_AS(t.reshape(mpt::Shape{4, 2}), "reshape: cannot view [2, 3] (6 elements) as [4, 2]", mpt::Error);
  CHECK_THROWS_WITH_AS((mpt::Shape{1, 2, 3, 4, 5}), "Shape: rank 5 exceeds the maximum of 4", mpt::Error);
  CHECK_THROWS_AS(t.shape().dim(2), mpt::Error);
}

TEST_CASE("clone copies, moves transfer") {
  mpt::Tensor<mpt::bf16> a(mpt::Shape{3});
  a[1] = mpt::to_bf16(2.5f);
  mpt::Tensor<mpt::bf16> b = a.clone();
  a[1] = mpt::to_bf16(1.0f);
  CHECK(mpt::to_float(b[1]) == 2.5f);
  mpt::Tensor<mpt::bf16> c = std::move(b);
  CHECK(c.shape() == mpt::Shape{3});
}

TEST_CASE("precision policies carry their types") {
  using namespace mpt::precision;
  static_assert(std::is_same_v<bf16_mixed::param_t, mpt::bf16>);
  static_assert(std::is_same_v<bf16_mixed::accum_t, float>);
  static_assert(bf16_mixed::has_master && !fp32::has_master && !fp64::has_master && !bf16_pure::has_master);
  static_assert(mpt::PrecisionPolicy<fp64> && !mpt::PrecisionPolicy<float>);
  CHECK(true);
}
