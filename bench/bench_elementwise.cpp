// Element-wise kernels at BERT-base sizes, in GB/s against the triad
// bandwidth measured in the same run (these kernels are memory-bound: the
// target is >= 70% of triad). Bytes count what a kernel must read and write
// once (no write-allocate), as STREAM counts triad's three arrays.
//
//   bench_elementwise [--threads N] [--reps R]
// Prints one JSON line per measurement, then a table.
//
// The machine is shared: each figure is the fastest of R runs (the headline);
// "spread" is how much slower the median run was (median / fastest - 1). With one
// thread the run's CPU time is reported as well (cpu_gbps, from the calling
// thread's CPU clock, which does not count time the thread was preempted):
// on a loaded machine that is the better estimate of the unloaded speed.
#include <mpt/mpt.hpp>

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <time.h>
#include <vector>

using mpt::bf16;
using mpt::Shape;
using mpt::Tensor;
using mpt::TensorView;
namespace k = mpt::kernels;

namespace {

struct Result {
  std::string op, dtype;
  double bytes, seconds, gbps, peak, fraction, cpu_gbps, cpu_peak, spread;
  int threads;
};

struct Timing {
  double wall = 0, cpu = 0;  // seconds, fastest run each (the headline figures)
  double median = 0;         // seconds, median wall time of the runs
  double spread() const { return wall > 0 ? median / wall - 1.0 : 0.0; }
};

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Fastest of `reps` timed runs after two warm-ups (the machine is shared:
// the minimum is the run least disturbed by other processes), and their median, so
// that the output says how far the typical run is from the headline one.
// f(rep) picks its buffers by rep so that a small kernel's data is not still
// in cache from the previous run (L3 is 32 MiB here).
Timing time_best(int reps, const std::function<void(int)>& f) {
  f(reps);
  f(reps + 1);
  Timing best{1e30, 1e30, 0};
  std::vector<double> walls;
  for (int r = 0; r < reps; ++r) {
    const double cpu0 = thread_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    f(r);
    walls.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    best.wall = std::min(best.wall, walls.back());
    best.cpu = std::min(best.cpu, thread_cpu_seconds() - cpu0);
  }
  std::sort(walls.begin(), walls.end());
  best.median = walls[walls.size() / 2];
  return best;
}

MPT_TARGET_AVX512 void triad_avx512(float* a, const float* b, const float* c, float s, std::size_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  for (std::size_t i = 0; i < n; i += 16) _mm512_storeu_ps(a + i, _mm512_fmadd_ps(_mm512_loadu_ps(c + i), vs, _mm512_loadu_ps(b + i)));
}
MPT_TARGET_AVX2 void triad_avx2(float* a, const float* b, const float* c, float s, std::size_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  for (std::size_t i = 0; i < n; i += 8) _mm256_storeu_ps(a + i, _mm256_fmadd_ps(_mm256_loadu_ps(c + i), vs, _mm256_loadu_ps(b + i)));
}

// STREAM triad a = b + s c over 3 x 128 MiB, split into fixed chunks: {wall, cpu} GB/s.
std::pair<double, double> triad_gbps(int reps) {
  const std::size_t n = std::size_t(32) << 20, chunk = 1 << 16;
  Tensor<float> a(Shape{std::int64_t(n)}), b(Shape{std::int64_t(n)}), c(Shape{std::int64_t(n)});
  for (std::size_t i = 0; i < n; ++i) b[i] = 1.0f, c[i] = 2.0f;
  const mpt::Isa isa = mpt::active_isa();
  const Timing s = time_best(reps, [&](int) {
    mpt::parallel_for(n / chunk, [&](std::size_t t) {
      float* pa = a.data() + t * chunk;
      const float* pb = b.data() + t * chunk;
      const float* pc = c.data() + t * chunk;
      if (isa >= mpt::Isa::avx512)
        triad_avx512(pa, pb, pc, 3.0f, chunk);
      else if (isa == mpt::Isa::avx2)
        triad_avx2(pa, pb, pc, 3.0f, chunk);
      else
        for (std::size_t i = 0; i < chunk; ++i) pa[i] = pb[i] + 3.0f * pc[i];
    });
  });
  const double bytes = 3.0 * double(n) * sizeof(float);
  return {bytes / s.wall / 1e9, bytes / s.cpu / 1e9};
}

template <class T>
Tensor<T> random_tensor(Shape shape, std::uint32_t seed, float lo = -3.0f, float hi = 3.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor<T> t(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(dist(rng));
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = mpt::num_threads(), reps = 15;
  for (int i = 1; i < argc; i += 2) {
    const bool has_value = i + 1 < argc;
    if (has_value && std::strcmp(argv[i], "--threads") == 0)
      threads = std::atoi(argv[i + 1]);
    else if (has_value && std::strcmp(argv[i], "--reps") == 0)
      reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "bench_elementwise: unknown or incomplete option '%s'\nusage: bench_elementwise [--threads N] [--reps R]\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1) {
    std::fprintf(stderr, "bench_elementwise: --threads and --reps take positive whole numbers\n");
    return 2;
  }
  mpt::set_num_threads(threads);
  const auto [peak, cpu_peak] = triad_gbps(reps);
  std::vector<Result> results;
  auto record = [&](const char* op, const char* dtype, double bytes, Timing t) {
    const double gbps = bytes / t.wall / 1e9;
    const double cpu_gbps = threads == 1 ? bytes / t.cpu / 1e9 : 0.0;
    results.push_back({op, dtype, bytes, t.wall, gbps, peak, gbps / peak, cpu_gbps, cpu_peak, t.spread(), threads});
    std::printf(
        "{\"op\": \"%s\", \"dtype\": \"%s\", \"bytes\": %.0f, \"seconds\": %.6e, \"median_seconds\": %.6e, \"spread\": %.3f, "
        "\"gbps\": %.2f, \"peak_gbps\": %.2f, \"fraction\": %.3f, \"threads\": %d, \"isa\": \"%s\"",
        op, dtype, bytes, t.wall, t.median, t.spread(), gbps, peak, gbps / peak, threads, std::string(mpt::isa_name(mpt::active_isa())).c_str());
    if (threads == 1) std::printf(", \"cpu_gbps\": %.2f, \"cpu_fraction\": %.3f", cpu_gbps, cpu_gbps / cpu_peak);
    std::printf("}\n");
    std::fflush(stdout);
  };
  {
    const double triad_bytes = 3.0 * double(32 << 20) * 4;
    record("triad", "fp32", triad_bytes, {triad_bytes / peak / 1e9, triad_bytes / cpu_peak / 1e9, triad_bytes / peak / 1e9});
  }

  const std::int64_t batch = 8, seq = 384, hidden = 768, heads = 12, inter = 3072, tokens = batch * seq;
  {  // attention softmax [8, 12, 384, 384]: fp32 or bf16 scores in, probs out (57-113 MB: no cache reuse)
    Tensor<float> scores = random_tensor<float>(Shape{batch, heads, seq, seq}, 1, -20, 20);
    Tensor<float> mask(Shape{batch, seq});
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t j = 300; j < seq; ++j) mask(b, j) = std::numeric_limits<float>::lowest();
    Tensor<bf16> probs(scores.shape());
    Tensor<float> probs32(scores.shape());
    const double n = double(scores.size());
    record("softmax_forward", "fp32->bf16", n * 6,
           time_best(reps, [&](int) { k::softmax_forward(scores.view(), mask.view(), 0.125, probs.view()); }));
    record("softmax_forward", "fp32->fp32", n * 8,
           time_best(reps, [&](int) { k::softmax_forward(scores.view(), mask.view(), 0.125, probs32.view()); }));
    // bf16 scores in: what nn::BertSelfAttention runs under bf16_mixed (autocast's bf16 matmul output).
    Tensor<bf16> scores16(scores.shape());
    mpt::convert(std::span<const float>(scores.data(), scores.size()), std::span<bf16>(scores16.data(), scores16.size()));
    record("softmax_forward", "bf16->bf16", n * 4,
           time_best(reps, [&](int) { k::softmax_forward(scores16.view(), mask.view(), 0.125, probs.view()); }));
    Tensor<bf16> dprobs = random_tensor<bf16>(scores.shape(), 2);
    record("softmax_backward", "bf16,bf16->fp32", n * 8,
           time_best(reps, [&](int) { k::softmax_backward(probs.view(), dprobs.view(), 0.125, scores.view()); }));
    k::DropoutKey key{42, 2, 0};
    record("dropout_forward", "fp32->fp32 attn", n * 8, time_best(reps, [&](int) { k::dropout_forward(probs32.view(), scores.view(), 0.1f, key); }));
  }
  {  // [3072, 768] activations: LayerNorm, dropout, residual. 8 sets of buffers (> 64 MiB) in rotation.
    constexpr int sets = 8;
    const Shape shape{tokens, hidden};
    std::vector<Tensor<bf16>> x, y, dy, dx;
    std::vector<Tensor<float>> xf, yf;
    for (int i = 0; i < sets; ++i) {
      x.push_back(random_tensor<bf16>(shape, 3 + i));
      dy.push_back(random_tensor<bf16>(shape, 30 + i));
      y.emplace_back(shape);
      dx.emplace_back(shape);
      xf.push_back(random_tensor<float>(shape, 60 + i));
      yf.emplace_back(shape);
    }
    Tensor<float> gamma = random_tensor<float>(Shape{hidden}, 6), beta = random_tensor<float>(Shape{hidden}, 7);
    Tensor<float> mean(Shape{tokens}), rstd(Shape{tokens}), dgamma(Shape{hidden}), dbeta(Shape{hidden});
    const double n = double(shape.numel());
    record("layer_norm_forward", "bf16->bf16", n * 4, time_best(reps, [&](int r) {
             k::layer_norm_forward(x[r % sets].view(), gamma.view(), beta.view(), 1e-12, y[r % sets].view(), mean.view(), rstd.view());
           }));
    record("layer_norm_forward", "fp32->fp32", n * 8, time_best(reps, [&](int r) {
             k::layer_norm_forward(xf[r % sets].view(), gamma.view(), beta.view(), 1e-12, yf[r % sets].view(), mean.view(), rstd.view());
           }));
    record("layer_norm_backward", "bf16->bf16", n * 6, time_best(reps, [&](int r) {
             k::layer_norm_backward(dy[r % sets].view(), x[r % sets].view(), gamma.view(), mean.view(), rstd.view(), dx[r % sets].view(),
                                    dgamma.view(), dbeta.view());
           }));
    const k::DropoutKey key{42, 1, 0};
    record("dropout_forward", "bf16->bf16", n * 4,
           time_best(reps, [&](int r) { k::dropout_forward(x[r % sets].view(), y[r % sets].view(), 0.1f, key); }));
    record("dropout_forward", "fp32->fp32", n * 8,
           time_best(reps, [&](int r) { k::dropout_forward(xf[r % sets].view(), yf[r % sets].view(), 0.1f, key); }));
    record("dropout_add_forward", "bf16+bf16->bf16", n * 6,
           time_best(reps, [&](int r) { k::dropout_add_forward(x[r % sets].view(), dy[r % sets].view(), y[r % sets].view(), 0.1f, key); }));
    record("residual_add", "bf16+bf16->bf16", n * 6,
           time_best(reps, [&](int r) { k::residual_add(x[r % sets].view(), dy[r % sets].view(), y[r % sets].view()); }));
    // BERT's residual branch: LayerNorm(dropout(x) + residual), saving the sum. Fused: one pass.
    record("dropout_add_layer_norm", "bf16+bf16->bf16,bf16", n * 8, time_best(reps, [&](int r) {
             const int s = r % sets, t = (r + 1) % sets;
             k::dropout_add_layer_norm_forward(x[s].view(), dy[s].view(), 0.1f, key, gamma.view(), beta.view(), 1e-12, y[s].view(), dx[t].view(),
                                               mean.view(), rstd.view());
           }));
    record("unfused: dropout_add+LN", "bf16+bf16->bf16,bf16", n * 8, time_best(reps, [&](int r) {
             const int s = r % sets, t = (r + 1) % sets;
             k::dropout_add_forward(x[s].view(), dy[s].view(), y[s].view(), 0.1f, key);
             k::layer_norm_forward(y[s].view(), gamma.view(), beta.view(), 1e-12, dx[t].view(), mean.view(), rstd.view());
           }));
  }
  {  // GELU [3072, 3072] (38-75 MB: no cache reuse): fp32 GEMM output + bias -> bf16 out and saved pre-activation
    Tensor<float> x = random_tensor<float>(Shape{tokens, inter}, 9), bias = random_tensor<float>(Shape{inter}, 10);
    Tensor<bf16> y(x.shape()), pre(x.shape()), dy = random_tensor<bf16>(x.shape(), 11), dx(x.shape());
    Tensor<float> dbias(Shape{inter});
    const double n = double(x.size());
    record("gelu_bias_forward", "fp32+bias->bf16,bf16", n * 8,
           time_best(reps, [&](int) { k::gelu_bias_forward(x.view(), bias.view(), y.view(), pre.view()); }));
    record("gelu_forward", "bf16->bf16", n * 4, time_best(reps, [&](int) { k::gelu_forward(pre.view(), y.view()); }));
    record("gelu_backward", "bf16,bf16->bf16 +dbias", n * 6,
           time_best(reps, [&](int) { k::gelu_backward(dy.view(), pre.view(), dx.view(), dbias.view()); }));
  }

  std::printf("\n%-24s %-22s %7s %8s %7s %9s %7s %9s %9s\n", "op", "dtype", "MB", "ms", "GB/s", "of triad", "spread", "cpu GB/s", "of triad");
  for (const Result& r : results) {
    std::printf("%-24s %-22s %7.1f %8.3f %7.1f %8.0f%% %6.1f%%", r.op.c_str(), r.dtype.c_str(), r.bytes / 1e6, r.seconds * 1e3, r.gbps,
                r.fraction * 100, r.spread * 100);
    if (threads == 1) std::printf(" %9.1f %8.0f%%", r.cpu_gbps, r.cpu_gbps / r.cpu_peak * 100);
    std::printf("\n");
  }
  std::printf("threads %d, isa %s, triad %.1f GB/s\n", threads, std::string(mpt::isa_name(mpt::active_isa())).c_str(), peak);
}
