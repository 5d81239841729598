#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace {

void busy_for(std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

const mpt::profile::Entry* find(const std::vector<mpt::profile::Entry>& entries, const std::string& path) {
  for (const auto& e : entries)
    if (e.path == path) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("profile regions nest, and each is credited with its own time only") {
  mpt::profile::enable(true);
  mpt::profile::reset();
  for (int call = 0; call < 2; ++call) {
    MPT_PROFILE("test step");
    busy_for(std::chrono::milliseconds(10));
    {
      MPT_PROFILE("test inner");
      busy_for(std::chrono::milliseconds(30));
    }
  }
  {
    MPT_PROFILE("test inner");  // the same name at the top level is another region
    busy_for(std::chrono::milliseconds(5));
  }
  mpt::profile::enable(false);
  {
    MPT_PROFILE("test step");  // disabled: not counted
    busy_for(std::chrono::milliseconds(5));
  }
  const auto entries = mpt::profile::report();
  const auto* step = find(entries, "test step");
  const auto* inner = find(entries, "test step / test inner");
  const auto* top_inner = find(entries, "test inner");
  REQUIRE(step != nullptr);
  REQUIRE(inner != nullptr);
  REQUIRE(top_inner != nullptr);
  CHECK(step->calls == 2);
  CHECK(inner->calls == 2);
  CHECK(top_inner->calls == 1);
  CHECK(inner->depth == step->depth + 1);
  // Exclusive: the step's 2 x 10 ms of its own, not the 2 x 40 ms it encloses (busy waits
  // last at least their time; the comparison leaves 40 ms for a loaded machine's preemptions).
  CHECK(step->seconds >= 0.020);
  CHECK(inner->seconds >= 0.060);
  CHECK(step->seconds < inner->seconds);
  CHECK(top_inner->seconds >= 0.005);
  // A parent comes before its children.
  std::size_t step_at = 0, inner_at = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (&entries[i] == step) step_at = i;
    if (&entries[i] == inner) inner_at = i;
  }
  CHECK(step_at < inner_at);

  mpt::profile::reset();
  const auto zeroed = mpt::profile::report();
  REQUIRE(find(zeroed, "test step") != nullptr);
  CHECK(find(zeroed, "test step")->calls == 0);
  CHECK(find(zeroed, "test step")->seconds == 0.0);
}
