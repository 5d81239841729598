// GEMM at BERT shapes: the three products of a linear layer, fp32 and bf16,
// 1 and all threads, against the machine peak measured in the same run, with
// Eigen's fp32 GEMM (single-threaded, this TU's flags) alongside.
//
//   forward      Y[M x N]  = X[M x K] W^T + b    W [N x K]   (bias fused; bf16: Y in bf16)
//   input grad   dX[M x K] = dY[M x N] W                      (bf16: dX in bf16)
//   weight grad  dW[N x K] += dY^T X                          (fp32 gradient buffer)
//
// bench_gemm [--quick] [--threads=1,2] [--m=1024,4608] [--dtype=fp32,bf16] [--ops=fwd,dgrad,wgrad]
//            [--isa=avx2|avx512|avx512_bf16|amx_bf16] [--eigen] [--seconds=S] [--no-references]
//            [--attention] [--seq=128,384] [--passes=N]
// --attention adds attention's batched bf16 products for 8 sequences x 12 heads of 64 at each
// --seq (M N K below are then the GEMM's own), called per sequence as nn::BertSelfAttention does:
//   attn_qk scores = Q K^T (bf16)   attn_pv ctx = P V   attn_dkept = dctx V^T (bf16)
//   attn_dv dV = P^T dctx           attn_dq dQ = dscores K
// --ops may add wgrad_bias: weight and bias gradient fused (linear_weight_grad), against
// the two calls gemm + bias_grad in the same run (impl "mpt-2pass").
// Built with OpenBLAS and/or oneDNN (see gemm_references.hpp), their GEMMs run the same
// products right after mpt's, with the same thread count, unless --no-references.
// Output: one JSON object per line per measurement, then a table; progress goes to stderr.
// `fraction` divides by the local peak (the higher of the peaks measured right before and
// right after the product, same kind and thread count); `run_fraction` by the highest
// peak measured in the whole run. --passes=N repeats the whole sweep N times and keeps, per
// product and implementation, the fastest pass over the highest local peak of its passes.

#include "bench_common.hpp"
#include "gemm_references.hpp"

#include <Eigen/Core>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}
bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

struct Result {
  std::string op, dtype, impl;
  std::size_t m, n, k;
  int threads;
  double gflops, median_gflops, cpu_gflops;
  double peak;          // local: the higher of the peaks measured right before and right after
  double run_peak = 0;  // the highest peak measured in the whole run for this kind and thread count
  int passes = 1;       // sweeps this result is the best of (--passes)
};

// One result per product and implementation: the pass with the most GFLOP/s, divided by
// the highest local peak measured around any of its passes.
std::vector<Result> best_of_passes(const std::vector<Result>& all) {
  std::vector<Result> best;
  for (const Result& r : all) {
    auto same = std::find_if(best.begin(), best.end(), [&](const Result& b) {
      return b.op == r.op && b.dtype == r.dtype && b.impl == r.impl && b.m == r.m && b.n == r.n && b.k == r.k && b.threads == r.threads;
    });
    if (same == best.end()) {
      best.push_back(r);
      continue;
    }
    const double peak = std::max(same->peak, r.peak);
    if (r.gflops > same->gflops) *same = r;
    same->peak = peak;
    same->passes += 1;
  }
  return best;
}

struct Timing {
  double best = 0, median = 0, cpu_best = 0;  // GFLOP/s
};

// Best and median wall-clock GFLOP/s of f over about `seconds` of repetitions (after
// one warm-up call), and the best by this thread's CPU time (meaningful on 1 thread:
// it leaves out time the OS gave to other processes on a shared machine).
template <class F>
Timing time_gflops(double flops, double seconds, F&& f) {
  f();
  std::vector<double> times;
  double cpu_best = 1e30;
  const double start = mpt::bench::now_seconds();
  do {
    const double c0 = mpt::bench::thread_cpu_seconds(), t0 = mpt::bench::now_seconds();
    f();
    times.push_back(mpt::bench::now_seconds() - t0);
    cpu_best = std::min(cpu_best, mpt::bench::thread_cpu_seconds() - c0);
  } while (mpt::bench::now_seconds() - start < seconds || times.size() < 3);
  std::sort(times.begin(), times.end());
  return {flops / times.front() * 1e-9, flops / times[times.size() / 2] * 1e-9, flops / cpu_best * 1e-9};
}

template <class T>
std::vector<T> random_matrix(std::size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<T> v(count);
  for (auto& x : v) x = T(dist(rng));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mpt;
  using namespace mpt::kernels;
#if MPT_BENCH_OPENBLAS
  // OpenBLAS reads OPENBLAS_CORETYPE when it loads: run again without it, so that
  // it picks its kernels for this CPU itself (a preset "Haswell" means AVX2 only).
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("OPENBLAS_L2_SIZE")) {
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    execv("/proc/self/exe", argv);
  }
#endif
  std::vector<std::string> thread_list = {"1", std::to_string(std::thread::hardware_concurrency())};
  std::vector<std::string> m_list = {"1024", "4608"}, dtypes = {"fp32", "bf16"}, ops = {"fwd", "dgrad", "wgrad"};
  double seconds = 0.5;
  int passes = 1;
  bool eigen = false, references = true, attention = false;
  std::vector<std::string> seq_list = {"128", "384"};
  std::string isa_arg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* key) { return a.rfind(key, 0) == 0 ? a.substr(std::strlen(key)) : std::string(); };
    if (a == "--quick")
      m_list = {"1024"}, seconds = 0.15;
    else if (a == "--eigen")
      eigen = true;
    else if (a == "--no-references")
      references = false;
    else if (a == "--attention")
      attention = true;
    else if (!value("--seq=").empty())
      seq_list = split(value("--seq="));
    else if (!value("--threads=").empty())
      thread_list = split(value("--threads="));
    else if (!value("--m=").empty())
      m_list = split(value("--m="));
    else if (!value("--dtype=").empty())
      dtypes = split(value("--dtype="));
    else if (!value("--ops=").empty())
      ops = split(value("--ops="));
    else if (!value("--isa=").empty())
      isa_arg = value("--isa=");
    else if (!value("--seconds=").empty())
      seconds = std::atof(value("--seconds=").c_str());
    else if (!value("--passes=").empty())
      passes = std::max(1, std::atoi(value("--passes=").c_str()));
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const Isa isa = isa_arg.empty() ? detected_isa() : parse_isa(isa_arg);
  ScopedIsa scoped_isa(isa);
  std::printf("# cpu: %s, isa %s, load average %.2f\n", bench::cpu_model().c_str(), std::string(isa_name(isa)).c_str(), bench::load_average());
  std::printf("# references: %s\n", references ? bench::reference_versions().c_str() : "off");

  // Peaks for this run, per thread count: fp32 FMA at this ISA, bf16 dot if present.
  std::map<int, double> fma_peak, dot_peak;
  for (const auto& ts : thread_list) {
    const int t = std::stoi(ts);
    if (isa >= Isa::avx2) fma_peak[t] = bench::measure_peak(bench::PeakKind::fma_fp32, isa, t);
    dot_peak[t] = isa >= Isa::avx512_bf16 ? bench::measure_peak(bench::bf16_peak_kind(isa), isa, t) : fma_peak[t];
    std::printf("{\"op\": \"peak\", \"threads\": %d, \"fma_fp32_gflops\": %.1f, \"bf16_dot_gflops\": %.1f}\n", t, fma_peak[t], dot_peak[t]);
  }

  double cpu_peak_fma = 0, cpu_peak_dot = 0;
  if (isa >= Isa::avx2) {
    cpu_peak_fma = bench::measure_peak_cpu_time(bench::PeakKind::fma_fp32, isa);
    cpu_peak_dot = isa >= Isa::avx512_bf16 ? bench::measure_peak_cpu_time(bench::bf16_peak_kind(isa), isa) : cpu_peak_fma;
    std::printf("{\"op\": \"peak_cpu_time\", \"threads\": 1, \"fma_fp32_gflops\": %.1f, \"bf16_dot_gflops\": %.1f}\n", cpu_peak_fma, cpu_peak_dot);
  }

  const std::size_t kn[3][2] = {{768, 768}, {768, 3072}, {3072, 768}};
  std::mt19937 rng(42);
  std::vector<Result> results;
  // Printed at the end, once every peak of the run is known (progress goes to stderr).
  auto emit = [&](const Result& r) {
    results.push_back(r);
    std::fprintf(stderr, "%s %s %s M=%zu N=%zu K=%zu threads=%d: %.1f GFLOP/s (local peak %.1f)\n", r.op.c_str(), r.dtype.c_str(), r.impl.c_str(),
                 r.m, r.n, r.k, r.threads, r.gflops, r.peak);
  };

  // Each pass runs the whole sweep again; a product keeps its fastest pass over the highest
  // local peak of its passes (a shared machine disturbs single measurements, never in
  // the other direction).
  for (int pass = 0; pass < passes; ++pass) {
    for (const auto& ms : m_list) {
      const std::size_t M = std::stoul(ms);
      for (const auto& s : kn) {
        const std::size_t K = s[0], N = s[1];
        const double flops = 2.0 * M * N * K;
        const auto x32 = random_matrix<float>(M * K, rng), w32 = random_matrix<float>(N * K, rng), dy32 = random_matrix<float>(M * N, rng);
        std::vector<bf16> x16(x32.size()), w16(w32.size()), dy16(dy32.size());
        convert(std::span<const float>(x32), std::span<bf16>(x16));
        convert(std::span<const float>(w32), std::span<bf16>(w16));
        convert(std::span<const float>(dy32), std::span<bf16>(dy16));
        std::vector<float> y32(M * N), dx32(M * K), dw32(N * K), bias(N, 0.1f), db32(N);
        std::vector<bf16> y16(M * N), dx16(M * K);
        for (const auto& ts : thread_list) {
          const int t = std::stoi(ts);
          ScopedNumThreads threads(t);
          for (const auto& dt : dtypes) {
            const bool b16 = dt == "bf16";
            for (const auto& op : ops) {
              // The peak is measured right before and right after each product (each best
              // of 5 short runs): the clock of a shared machine drifts over a run, and one
              // measurement can be disturbed by another process. The product is divided by
              // the higher of the two ("local" peak) and, in the summary, also by the highest
              // peak of the whole run (the strictest reading).
              auto measure_local_peak = [&] {
                return b16 && isa >= Isa::avx512_bf16 ? bench::measure_peak(bench::bf16_peak_kind(isa), isa, t, 0.02, 5)
                                                      : bench::measure_peak(bench::PeakKind::fma_fp32, isa, t, 0.02, 5);
              };
              double peak_before = measure_local_peak();
              auto local_peak = [&] {
                const double after = measure_local_peak(), local = std::max(peak_before, after);
                peak_before = after;
                return local;
              };
              Timing g;
              if (op == "fwd") {  // with the layer's bias fused into the store
                GemmEpilogue<float> with_bias;
                with_bias.bias = bias.data();
                g = time_gflops(flops, seconds, [&] {
                  if (b16)
                    gemm(Trans::N, Trans::T, M, N, K, 1.0f, x16.data(), K, w16.data(), K, 0.0f, y16.data(), N, with_bias);
                  else
                    gemm(Trans::N, Trans::T, M, N, K, 1.0f, x32.data(), K, w32.data(), K, 0.0f, y32.data(), N, with_bias);
                });
              } else if (op == "dgrad") {
                g = time_gflops(flops, seconds, [&] {
                  if (b16)
                    gemm(Trans::N, Trans::N, M, K, N, 1.0f, dy16.data(), N, w16.data(), K, 0.0f, dx16.data(), K);
                  else
                    gemm(Trans::N, Trans::N, M, K, N, 1.0f, dy32.data(), N, w32.data(), K, 0.0f, dx32.data(), K);
                });
              } else if (op == "wgrad") {
                g = time_gflops(flops, seconds, [&] {
                  if (b16)
                    gemm(Trans::T, Trans::N, N, K, M, 1.0f, dy16.data(), N, x16.data(), K, 1.0f, dw32.data(), K);
                  else
                    gemm(Trans::T, Trans::N, N, K, M, 1.0f, dy32.data(), N, x32.data(), K, 1.0f, dw32.data(), K);
                });
              } else {  // wgrad_bias: the layer's weight and bias gradients, fused (one pass over dY)
                g = time_gflops(flops, seconds, [&] {
                  if (b16)
                    linear_weight_grad(M, N, K, dy16.data(), N, x16.data(), K, dw32.data(), K, db32.data());
                  else
                    linear_weight_grad(M, N, K, dy32.data(), N, x32.data(), K, dw32.data(), K, db32.data());
                });
                // ... and as two calls, gemm then bias_grad (a second pass over dY).
                const Timing two = time_gflops(flops, seconds, [&] {
                  if (b16) {
                    gemm(Trans::T, Trans::N, N, K, M, 1.0f, dy16.data(), N, x16.data(), K, 1.0f, dw32.data(), K);
                    bias_grad(dy16.data(), M, N, N, db32.data());
                  } else {
                    gemm(Trans::T, Trans::N, N, K, M, 1.0f, dy32.data(), N, x32.data(), K, 1.0f, dw32.data(), K);
                    bias_grad(dy32.data(), M, N, N, db32.data());
                  }
                });
                emit({op, dt, "mpt-2pass", M, N, K, t, two.best, two.median, two.cpu_best, local_peak()});
              }
              emit({op, dt, "mpt", M, N, K, t, g.best, g.median, g.cpu_best, local_peak()});
              if (references) {
                const bench::LinearOperands operands{M,           N,           K,           x32.data(), w32.data(),
                                                     dy32.data(), bias.data(), x16.data(),  w16.data(), dy16.data(),
                                                     y32.data(),  dx32.data(), dw32.data(), y16.data(), dx16.data()};
                bench::set_reference_threads(t);
                for (const auto& ref : bench::reference_gemms(op, dt, operands)) {
                  // Other libraries' worker threads spin for a while after a call: let them
                  // settle before timing the next library.
                  std::this_thread::sleep_for(std::chrono::milliseconds(200));
                  peak_before = measure_local_peak();
                  const Timing r = time_gflops(flops, seconds, ref.run);
                  emit({op, dt, ref.impl, M, N, K, t, r.best, r.median, r.cpu_best, local_peak()});
                  std::this_thread::sleep_for(std::chrono::milliseconds(200));
                }
              }
            }
          }
        }
        if (eigen && has(dtypes, "fp32")) {
          using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
          Eigen::Map<const Mat> X(x32.data(), M, K), W(w32.data(), N, K), dY(dy32.data(), M, N);
          Eigen::Map<Mat> Y(y32.data(), M, N), dX(dx32.data(), M, K), dW(dw32.data(), N, K);
          for (const auto& op : ops) {
            const double before = bench::measure_peak(bench::PeakKind::fma_fp32, isa, 1, 0.02, 5);
            Timing g;
            Eigen::Map<const Eigen::RowVectorXf> b(bias.data(), N);
            if (op == "fwd")
              g = time_gflops(flops, seconds, [&] {
                Y.noalias() = X * W.transpose();
                Y.rowwise() += b;
              });
            else if (op == "dgrad")
              g = time_gflops(flops, seconds, [&] { dX.noalias() = dY * W; });
            else
              g = time_gflops(flops, seconds, [&] { dW.noalias() += dY.transpose() * X; });
            const double after = bench::measure_peak(bench::PeakKind::fma_fp32, isa, 1, 0.02, 5);
            emit({op, "fp32", "eigen", M, N, K, 1, g.best, g.median, g.cpu_best, std::max(before, after)});
          }
        }
      }
    }

    if (attention) {
      const std::size_t B = 8, H = 12, D = 64, hidden = H * D;
      for (const auto& ss : seq_list) {
        const std::size_t S = std::stoul(ss);
        const double flops = 2.0 * B * H * S * S * D;
        auto bf16_matrix = [&](std::size_t count) {
          const auto v = random_matrix<float>(count, rng);
          std::vector<bf16> out(count);
          convert(std::span<const float>(v), std::span<bf16>(out));
          return out;
        };
        const auto q = bf16_matrix(B * S * hidden), k = bf16_matrix(B * S * hidden), v = bf16_matrix(B * S * hidden),
                   dctx = bf16_matrix(B * S * hidden), probs = bf16_matrix(B * H * S * S), dscores = bf16_matrix(B * H * S * S);
        std::vector<bf16> scores(B * H * S * S), ctx(B * S * hidden), dv(B * S * hidden), dq(B * S * hidden);
        std::vector<bf16> dkept(B * H * S * S);
        const bench::AttentionOperands operands{
            B,          H,         S,         D,           q.data(), k.data(), v.data(), probs.data(), dctx.data(), dscores.data(), scores.data(),
            ctx.data(), dv.data(), dq.data(), dkept.data()};
        const std::size_t rows = S * hidden, squares = H * S * S;
        struct AttentionOp {
          const char* name;
          std::size_t m, n, k;
          std::function<void(std::size_t)> per_sequence;
        };
        const std::vector<AttentionOp> attention_ops = {
            {"attn_qk", S, S, D,
             [&](std::size_t b) {
               gemm_strided_batched(Trans::N, Trans::T, S, S, D, 1.0f, q.data() + b * rows, hidden, D, k.data() + b * rows, hidden, D, 0.0f,
                                    scores.data() + b * squares, S, S * S, H);
             }},
            {"attn_pv", S, D, S,
             [&](std::size_t b) {
               gemm_strided_batched(Trans::N, Trans::N, S, D, S, 1.0f, probs.data() + b * squares, S, S * S, v.data() + b * rows, hidden, D, 0.0f,
                                    ctx.data() + b * rows, hidden, D, H);
             }},
            {"attn_dkept", S, S, D,
             [&](std::size_t b) {
               gemm_strided_batched(Trans::N, Trans::T, S, S, D, 1.0f, dctx.data() + b * rows, hidden, D, v.data() + b * rows, hidden, D, 0.0f,
                                    dkept.data() + b * squares, S, S * S, H);
             }},
            {"attn_dv", S, D, S,
             [&](std::size_t b) {
               gemm_strided_batched(Trans::T, Trans::N, S, D, S, 1.0f, probs.data() + b * squares, S, S * S, dctx.data() + b * rows, hidden, D, 0.0f,
                                    dv.data() + b * rows, hidden, D, H);
             }},
            {"attn_dq", S, D, S,
             [&](std::size_t b) {
               gemm_strided_batched(Trans::N, Trans::N, S, D, S, 1.0f, dscores.data() + b * squares, S, S * S, k.data() + b * rows, hidden, D, 0.0f,
                                    dq.data() + b * rows, hidden, D, H);
             }},
        };
        for (const auto& ts : thread_list) {
          const int t = std::stoi(ts);
          ScopedNumThreads threads(t);
          auto measure_local_peak = [&] {
            return isa >= Isa::avx512_bf16 ? bench::measure_peak(bench::bf16_peak_kind(isa), isa, t, 0.02, 5)
                                           : bench::measure_peak(bench::PeakKind::fma_fp32, isa, t, 0.02, 5);
          };
          for (const auto& aop : attention_ops) {
            double before = measure_local_peak();
            const Timing g = time_gflops(flops, seconds, [&] {
              for (std::size_t b = 0; b < B; ++b) aop.per_sequence(b);
            });
            double after = measure_local_peak();
            emit({aop.name, "bf16", "mpt", aop.m, aop.n, aop.k, t, g.best, g.median, g.cpu_best, std::max(before, after)});
            if (!references) continue;
            bench::set_reference_threads(t);
            for (const auto& ref : bench::reference_attention_gemms(aop.name, operands)) {
              std::this_thread::sleep_for(std::chrono::milliseconds(200));
              before = measure_local_peak();
              const Timing r = time_gflops(flops, seconds, ref.run);
              after = measure_local_peak();
              emit({aop.name, "bf16", ref.impl, aop.m, aop.n, aop.k, t, r.best, r.median, r.cpu_best, std::max(before, after)});
              std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
          }
        }
      }
    }
  }
  results = best_of_passes(results);

  // The highest peak of the run for the same kind and thread count (the strictest reading).
  std::map<std::pair<bool, int>, double> run_peak;
  for (const auto& [t, p] : fma_peak) run_peak[{false, t}] = p;
  for (const auto& [t, p] : dot_peak) run_peak[{true, t}] = p;
  for (const Result& r : results) {
    double& p = run_peak[{r.dtype == "bf16", r.threads}];
    p = std::max(p, r.peak);
  }
  for (Result& r : results) {
    r.run_peak = run_peak[{r.dtype == "bf16", r.threads}];
    std::printf(
        "{\"op\": \"%s\", \"dtype\": \"%s\", \"impl\": \"%s\", \"M\": %zu, \"N\": %zu, \"K\": %zu, \"threads\": %d, "
        "\"gflops\": %.1f, \"median_gflops\": %.1f, \"cpu_time_gflops\": %.1f, \"peak_gflops\": %.1f, "
        "\"fraction\": %.3f, \"run_peak_gflops\": %.1f, \"run_fraction\": %.3f, \"passes\": %d}\n",
        r.op.c_str(), r.dtype.c_str(), r.impl.c_str(), r.m, r.n, r.k, r.threads, r.gflops, r.median_gflops, r.threads == 1 ? r.cpu_gflops : 0.0,
        r.peak, r.gflops / r.peak, r.run_peak, r.gflops / r.run_peak, r.passes);
  }

  std::printf("\n%-10s %-5s %-9s %5s %5s %5s %3s %9s %9s %7s %9s %9s\n", "op", "dtype", "impl", "M", "N", "K", "thr", "GFLOP/s", "peak", "frac",
              "run-max", "cpu-time");
  std::map<std::string, std::pair<double, int>> mean, mean_run;
  std::map<std::string, double> mean_cpu;
  auto key_of = [](const Result& r) { return r.impl + " " + r.dtype + " threads=" + std::to_string(r.threads); };
  for (const Result& r : results) {
    std::printf("%-10s %-5s %-9s %5zu %5zu %5zu %3d %9.1f %9.1f %6.1f%% %8.1f%% %9.1f\n", r.op.c_str(), r.dtype.c_str(), r.impl.c_str(), r.m, r.n,
                r.k, r.threads, r.gflops, r.peak, 100 * r.gflops / r.peak, 100 * r.gflops / r.run_peak, r.threads == 1 ? r.cpu_gflops : 0.0);
    auto& acc = mean[key_of(r)];
    acc.first += r.gflops / r.peak, acc.second += 1;
    auto& acc_run = mean_run[key_of(r)];
    acc_run.first += r.gflops / r.run_peak, acc_run.second += 1;
    const double cpu_peak = r.dtype == "bf16" ? cpu_peak_dot : cpu_peak_fma;
    if (r.threads == 1 && cpu_peak > 0) mean_cpu[key_of(r)] += r.cpu_gflops / cpu_peak;
  }
  std::printf(
      "\nmean fraction of the local peak over the products measured (run max: of the highest peak of the "
      "run; 1 thread also by CPU time):\n");
  for (const auto& [key, v] : mean) {
    std::printf("  %-28s %6.1f%% (%d products)   run max %6.1f%%", key.c_str(), 100 * v.first / v.second, v.second,
                100 * mean_run[key].first / v.second);
    if (mean_cpu.count(key)) std::printf("   cpu-time %6.1f%%", 100 * mean_cpu[key] / v.second);
    std::printf("\n");
  }
  // mpt's speed over each reference's, product by product (the same machine state).
  std::map<std::string, std::pair<double, int>> ratio;
  for (const Result& r : results) {
    if (r.impl == "mpt") continue;
    for (const Result& m : results) {
      if (m.impl == "mpt" && m.op == r.op && m.dtype == r.dtype && m.m == r.m && m.n == r.n && m.k == r.k && m.threads == r.threads) {
        auto& acc = ratio["mpt / " + r.impl + " " + r.dtype + " threads=" + std::to_string(r.threads)];
        acc.first += m.gflops / r.gflops, acc.second += 1;
      }
    }
  }
  if (!ratio.empty()) std::printf("\nmean speed ratio, product by product:\n");
  for (const auto& [key, v] : ratio) std::printf("  %-36s %5.2fx (%d products)\n", key.c_str(), v.first / v.second, v.second);
  return 0;
}
