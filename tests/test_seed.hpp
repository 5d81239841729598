#pragma once
// Seeds of the tests' random inputs. Each test keeps a fixed seed, so a run is
// reproducible; MPT_TEST_SEED=<n> changes every one of them (a different stream per
// site) to try other inputs, and the seed in use is printed once per process so that a
// failure can be rerun exactly: MPT_TEST_SEED=<n> ctest -R <suite>.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace mpt::test {

// The value of MPT_TEST_SEED (0 when unset), printed on first use.
inline std::uint64_t seed_setting() {
  static const std::uint64_t setting = [] {
    const char* text = std::getenv("MPT_TEST_SEED");
    const std::uint64_t value = text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : 0;
    std::printf("random test inputs: MPT_TEST_SEED=%llu%s\n", static_cast<unsigned long long>(value), value == 0 ? " (the fixed seeds)" : "");
    return value;
  }();
  return setting;
}

// `fixed` unless MPT_TEST_SEED is set; then a seed drawn from (fixed, MPT_TEST_SEED).
inline std::uint32_t seed(std::uint32_t fixed) {
  const std::uint64_t s = seed_setting();
  if (s == 0) return fixed;
  std::seed_seq mix{static_cast<std::uint32_t>(fixed), static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(s >> 32)};
  std::uint32_t out = 0;
  mix.generate(&out, &out + 1);
  return out;
}

// For tests that try new inputs on every run: MPT_TEST_SEED when set, else a fresh
// random seed; printed either way.
inline std::uint32_t seed_or_random(const char* suite) {
  static const std::uint32_t value = [suite] {
    const std::uint64_t s = seed_setting();
    const std::uint32_t v = s != 0 ? static_cast<std::uint32_t>(s) : std::random_device{}();
    std::printf("%s: random inputs from seed %u (rerun with MPT_TEST_SEED=%u)\n", suite, v, v);
    return v;
  }();
  return value;
}

}  // namespace mpt::test
