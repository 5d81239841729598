// Machine peaks: fp32 FMA and bf16 dot-product GFLOP/s per ISA, on 1 core and
// on all cores; triad memory bandwidth on 1 and all threads.
// Output: one JSON object per line, then a table.   bench_peak [--quick]

#include "bench_common.hpp"

#include <cstring>

int main(int argc, char** argv) {
  using namespace mpt;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int all = static_cast<int>(std::thread::hardware_concurrency());
  const double seconds = quick ? 0.05 : 0.2;
  std::printf("# cpu: %s, %d threads, load average %.2f\n", bench::cpu_model().c_str(), all, bench::load_average());
  struct Row {
    std::string what;
    int threads;
    double value;
    const char* unit;
  };
  std::vector<Row> rows;
  for (Isa isa : supported_isas()) {
    if (isa == Isa::scalar || isa >= Isa::avx512_bf16) continue;
    for (int t : {1, all}) {
      rows.push_back(
          {std::string("fma_fp32_") + std::string(isa_name(isa)), t, bench::measure_peak(bench::PeakKind::fma_fp32, isa, t, seconds), "GFLOP/s"});
    }
  }
  if (detected_isa() >= Isa::avx512_bf16) {
    for (int t : {1, all}) {
      rows.push_back({"dot_bf16_avx512_bf16", t, bench::measure_peak(bench::PeakKind::bf16_dot, Isa::avx512_bf16, t, seconds), "GFLOP/s"});
    }
  }
  if (detected_isa() >= Isa::amx_bf16) {
    for (int t : {1, all})
      rows.push_back({"tile_bf16_amx_bf16", t, bench::measure_peak(bench::PeakKind::amx_bf16, Isa::amx_bf16, t, seconds), "GFLOP/s"});
  }
  for (int t : {1, all}) rows.push_back({"triad", t, bench::measure_triad_gbps(t), "GB/s"});
  for (const Row& r : rows) {
    std::printf("{\"op\": \"peak\", \"what\": \"%s\", \"threads\": %d, \"value\": %.1f, \"unit\": \"%s\"}\n", r.what.c_str(), r.threads, r.value,
                r.unit);
  }
  std::printf("\n%-24s %8s %12s\n", "peak", "threads", "value");
  for (const Row& r : rows) std::printf("%-24s %8d %9.1f %s\n", r.what.c_str(), r.threads, r.value, r.unit);
  return 0;
}
