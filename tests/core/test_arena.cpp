#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdint>

TEST_CASE("Arena hands out aligned views, poisoned in debug builds, and refuses to overflow") {
  const std::size_t capacity = mpt::Arena::bytes_for<float>(10) + mpt::Arena::bytes_for<mpt::bf16>(100);
  mpt::Arena arena(capacity);
  auto a = arena.allocate<float>(mpt::Shape{2, 5}, "a");
  auto b = arena.allocate<mpt::bf16>(mpt::Shape{100}, "b");
  CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
  CHECK(arena.used() == capacity);
  a(1, 4) = 3.0f;
  CHECK_THROWS_WITH_AS(arena.allocate<float>(mpt::Shape{1}, "scores"),
                       "Arena: allocating scores [1] (64 bytes) needs 384 bytes but the arena holds 320; size it "
                       "for the largest batch and sequence length before the step",
                       mpt::Error);
  arena.reset();
  auto c = arena.allocate<float>(mpt::Shape{2, 5});
  CHECK(c.data() == a.data());
#ifndef NDEBUG
  CHECK(std::isnan(c(1, 4)));  // poisoned again: a read before a write shows
#endif
  CHECK(arena.high_water() == capacity);
}
