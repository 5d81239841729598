#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <vector>

TEST_CASE("CPU features are consistent with the detected instruction set") {
  const mpt::CpuFeatures& f = mpt::cpu_features();
  const mpt::Isa isa = mpt::detected_isa();
  std::printf("detected ISA: %s (avx2 %d fma %d avx512f %d bw %d vl %d dq %d avx512_bf16 %d amx_bf16 %d)\n", std::string(mpt::isa_name(isa)).c_str(),
              f.avx2, f.fma, f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512_bf16, f.amx_bf16);
  if (isa >= mpt::Isa::avx2) CHECK((f.avx2 && f.fma));
  if (isa >= mpt::Isa::avx512) CHECK((f.avx512f && f.avx512bw && f.avx512vl));
  if (isa >= mpt::Isa::avx512_bf16) CHECK(f.avx512_bf16);
  // amx_bf16 only when the CPU has the tile unit and Linux granted this process its state.
  if (isa >= mpt::Isa::amx_bf16) CHECK((f.amx_tile && f.amx_bf16));
  // Every level up to the active one (MPT_ISA caps it; no ScopedIsa is alive here).
  CHECK(mpt::supported_isas().size() == static_cast<std::size_t>(mpt::active_isa()) + 1);
}

TEST_CASE("ScopedIsa lowers the active instruction set and restores it") {
  const mpt::Isa before = mpt::active_isa();
  {
    mpt::ScopedIsa scalar(mpt::Isa::scalar);
    CHECK(mpt::active_isa() == mpt::Isa::scalar);
  }
  CHECK(mpt::active_isa() == before);
  if (mpt::detected_isa() < mpt::Isa::amx_bf16) {
    CHECK_THROWS_AS(mpt::ScopedIsa(mpt::Isa::amx_bf16), mpt::Error);
  }
}

TEST_CASE("MPT_ISA, MPT_NUM_THREADS and OMP_NUM_THREADS: bad settings are refused with the variable, the value and the fix") {
  using mpt::Isa;
  CHECK(mpt::detail::isa_from_setting(nullptr, Isa::avx512) == Isa::avx512);
  CHECK(mpt::detail::isa_from_setting("", Isa::avx512) == Isa::avx512);
  CHECK(mpt::detail::isa_from_setting("avx2", Isa::avx512) == Isa::avx2);
  CHECK(mpt::detail::isa_from_setting("scalar", Isa::avx2) == Isa::scalar);
  CHECK_THROWS_WITH_AS(mpt::detail::isa_from_setting("avx9", Isa::avx2),
                       "MPT_ISA=avx9: unknown instruction set 'avx9': expected one of scalar, avx2, avx512, avx512_bf16, amx_bf16", mpt::Error);
  // The CPU level is injected: an AVX2-only machine refuses avx512_bf16 whatever this host has.
  CHECK_THROWS_WITH_AS(mpt::detail::isa_from_setting("avx512_bf16", Isa::avx2),
                       "MPT_ISA=avx512_bf16 asks for more than this CPU supports (avx2); MPT_ISA can only force a lower instruction set", mpt::Error);
  CHECK_THROWS_WITH_AS(mpt::detail::check_forced_isa(Isa::avx512, Isa::avx2), "ScopedIsa(avx512): this CPU supports only up to avx2", mpt::Error);
  CHECK_NOTHROW(mpt::detail::check_forced_isa(Isa::avx2, Isa::avx2));

  CHECK(mpt::detail::thread_count_from(nullptr, nullptr, 7) == 7);
  CHECK(mpt::detail::thread_count_from("", "", 7) == 7);
  CHECK(mpt::detail::thread_count_from(nullptr, "3", 7) == 3);
  CHECK(mpt::detail::thread_count_from("2", "3", 7) == 2);  // MPT_NUM_THREADS wins
  for (const char* bad : {"0", "-1", "two", "4097", "2x"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(
        mpt::detail::thread_count_from(bad, nullptr, 7),
        doctest::Contains(
            ("MPT_NUM_THREADS=" + std::string(bad) + " is not a thread count: give a whole number from 1 to 4096, or unset it").c_str()),
        mpt::Error);
    CHECK_THROWS_WITH_AS(mpt::detail::thread_count_from(nullptr, bad, 7), doctest::Contains(("OMP_NUM_THREADS=" + std::string(bad)).c_str()),
                         mpt::Error);
  }
}

TEST_CASE("instruction-set names parse, and unknown names are refused with the list") {
  CHECK(mpt::parse_isa("avx2") == mpt::Isa::avx2);
  CHECK(mpt::parse_isa("avx512_bf16") == mpt::Isa::avx512_bf16);
  CHECK(mpt::parse_isa("amx_bf16") == mpt::Isa::amx_bf16);
  CHECK_THROWS_WITH_AS(mpt::parse_isa("sse9"), "unknown instruction set 'sse9': expected one of scalar, avx2, avx512, avx512_bf16, amx_bf16",
                       mpt::Error);
}

TEST_CASE("backend::dispatch hands the matching tag, and tags inherit downwards") {
  static_assert(std::is_base_of_v<mpt::backend::avx2, mpt::backend::avx512_bf16>);
  static_assert(std::is_base_of_v<mpt::backend::avx512_bf16, mpt::backend::amx_bf16>);
  static_assert(mpt::backend::Backend<mpt::backend::avx512>);
  for (mpt::Isa isa : mpt::supported_isas()) {
    const mpt::Isa got = mpt::backend::dispatch(isa, [](auto tag) { return decltype(tag)::isa; });
    CHECK(got == isa);
  }
}

TEST_CASE("parallel_for runs every task exactly once, for 1 and 2 threads") {
  for (int threads : {1, 2}) {
    mpt::ScopedNumThreads scope(threads);
    CHECK(mpt::num_threads() == threads);
    std::vector<std::atomic<int>> hits(1000);
    mpt::parallel_for(hits.size(), [&](std::size_t t) { hits[t].fetch_add(1); });
    for (auto& h : hits) REQUIRE(h.load() == 1);
  }
  CHECK_THROWS_AS(mpt::set_num_threads(0), mpt::Error);
}

TEST_CASE("MPT_ISA in the environment sets the active instruction set") {
  // ctest runs this suite a second time with MPT_ISA=avx2 (tests/core/CMakeLists.txt),
  // so the default-dispatch paths of every test above also run on the AVX2 kernels.
  const char* env = std::getenv("MPT_ISA");
  if (env == nullptr) {
    CHECK(mpt::active_isa() == mpt::detected_isa());
  } else {
    MESSAGE("MPT_ISA=" << std::string(env));
    CHECK(mpt::active_isa() == mpt::parse_isa(env));
  }
}
