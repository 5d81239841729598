// bench_allreduce: what data-parallel training pays for its gradients, under mpirun.
//
//   mpirun --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1 build/bin/bench_allreduce [--config base] [--batch 6] [--seq 384] [--steps 3]
//
// 1. MPI all-reduce of fp32 buffers from 64 KiB to 256 MiB: algorithm bandwidth
//    (bytes / time) and bus bandwidth (x 2(p-1)/p, what a ring moves per rank).
// 2. A BERT-QA training step (forward + backward, bf16_mixed) with its gradient
//    all-reduce: without communication, with one all-reduce after backward, and with
//    25 MB buckets started while backward runs (as the Trainer does). The all-reduce's
//    share of the step, and how much of it the overlap hides.
// Rank 0 prints JSON lines and a table. Run it alone on the machine: it measures time.
#ifndef MPT_WITH_MPI
#include <cstdio>
int main() {
  std::fprintf(stderr, "bench_allreduce: built without MPI (scripts/install-deps.sh --mpi, then reconfigure)\n");
  return 1;
}
#else
#include <mpt/dist/mpi_communicator.hpp>
#include <mpt/mpt.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

mpt::nn::BertConfig config_named(const std::string& name) {
  mpt::nn::BertConfig c;  // bert-base-uncased
  if (name == "base") return c;
  c.num_hidden_layers = 4;
  if (name == "small")
    c.hidden_size = 512, c.num_attention_heads = 8, c.intermediate_size = 2048;
  else if (name == "mini")
    c.hidden_size = 256, c.num_attention_heads = 4, c.intermediate_size = 1024;
  else
    mpt::throw_error("bench_allreduce: unknown --config '", name, "': base, small or mini");
  return c;
}
}  // namespace

int main(int argc, char** argv) {
  mpt::dist::MpiCommunicator comm(argc, argv);
  std::string config_name = "base";
  std::int64_t batch = 6, seq = 384;
  int steps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--config")
      config_name = value;
    else if (flag == "--batch")
      batch = std::stoll(value);
    else if (flag == "--seq")
      seq = std::stoll(value);
    else if (flag == "--steps")
      steps = std::stoi(value);
    else {
      if (comm.is_main()) std::fprintf(stderr, "bench_allreduce: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const int p = comm.size();
  const bool main_rank = comm.is_main();
  if (main_rank) std::printf("# bench_allreduce: %d ranks x %d threads\n", p, mpt::num_threads());

  // ---- 1. all-reduce bandwidth ------------------------------------------------------
  if (main_rank) std::printf("\n%12s %12s %14s %14s\n", "bytes", "seconds", "algbw GB/s", "busbw GB/s");
  for (std::size_t bytes = std::size_t{64} << 10; bytes <= std::size_t{256} << 20; bytes *= 4) {
    std::vector<float> buffer(bytes / sizeof(float), 1.0f);
    comm.allreduce_sum(std::span<float>(buffer));  // warm-up (page faults, connections)
    const int repeats = bytes < (std::size_t{16} << 20) ? 20 : 4;
    comm.barrier();
    const double start = now();
    for (int r = 0; r < repeats; ++r) comm.allreduce_sum(std::span<float>(buffer));
    double seconds = (now() - start) / repeats;
    std::vector<double> slowest = {seconds};
    comm.allreduce_sum(std::span<double>(slowest));  // mean over ranks
    seconds = slowest[0] / p;
    const double algbw = static_cast<double>(bytes) / seconds / 1e9, busbw = algbw * 2.0 * (p - 1) / p;
    if (main_rank) {
      std::printf("%12zu %12.6f %14.2f %14.2f\n", bytes, seconds, algbw, busbw);
      std::printf("{\"op\": \"allreduce\", \"ranks\": %d, \"bytes\": %zu, \"seconds\": %.6g, \"algbw_GBps\": %.4g, \"busbw_GBps\": %.4g}\n", p, bytes,
                  seconds, algbw, busbw);
    }
  }

  // ---- 2. a training step and its all-reduce ------------------------------------------
  using P = mpt::precision::bf16_mixed;
  const auto config = config_named(config_name);
  mpt::nn::BertForQuestionAnswering<P> model(config);
  model.init_weights(1);
  auto& params = model.parameters();
  mpt::Tensor<std::int32_t> ids({batch, seq}), types({batch, seq}), mask({batch, seq}), start({batch}), end({batch});
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(1000 + (i * 7919) % 20000), mask[i] = 1;
  for (std::int64_t b = 0; b < batch; ++b) start[b] = 10, end[b] = 12;
  const mpt::nn::QaBatch inputs{ids.view(), types.view(), mask.view(), start.view(), end.view()};
  auto grads = params.grad_flat();
  const std::size_t bucket = 25 * 1024 * 1024 / sizeof(float);
  std::size_t reduced_from = 0;
  bool overlapping = false;
  model.on_gradients_ready([&](std::size_t from) {
    if (!overlapping) return;
    while (reduced_from > from && reduced_from - from >= bucket) {
      comm.start_allreduce_sum(grads.subspan(reduced_from - bucket, bucket));
      reduced_from -= bucket;
    }
    comm.progress();
  });
  // mode 0: no communication; 1: all-reduce after backward; 2: buckets during backward.
  const auto step = [&](int mode) {
    params.zero_grad();
    model.forward(inputs, {.training = true, .seed = 1});
    reduced_from = grads.size();
    overlapping = mode == 2;
    model.backward(1.0 / p);
    if (mode > 0) {
      for (std::size_t e = reduced_from; e > 0;) {
        const std::size_t b = e > bucket ? e - bucket : 0;
        comm.start_allreduce_sum(grads.subspan(b, e - b));
        e = b;
      }
      comm.wait_all();
    }
  };
  step(2);  // warm-up: arenas, scratch, connections
  double seconds[3] = {0, 0, 0};
  for (int mode : {0, 1, 2}) {
    comm.barrier();
    const double t0 = now();
    for (int s = 0; s < steps; ++s) step(mode);
    std::vector<double> t = {(now() - t0) / steps};
    comm.allreduce_sum(std::span<double>(t));
    seconds[mode] = t[0] / p;
  }
  comm.barrier();
  const double t0 = now();
  for (int s = 0; s < steps; ++s) comm.allreduce_sum(grads);
  std::vector<double> alone = {(now() - t0) / steps};
  comm.allreduce_sum(std::span<double>(alone));
  const double allreduce = alone[0] / p;
  if (main_rank) {
    const double exposed_blocking = seconds[1] - seconds[0], exposed_overlap = seconds[2] - seconds[0];
    const double hidden = exposed_blocking > 0 ? 1.0 - exposed_overlap / exposed_blocking : 0.0;
    std::printf("\nBERT-QA %s, bf16_mixed, %lld x %lld per rank, %d ranks x %d threads; gradients %.1f MB\n", config_name.c_str(),
                static_cast<long long>(batch), static_cast<long long>(seq), p, mpt::num_threads(), static_cast<double>(grads.size_bytes()) / 1e6);
    std::printf("  step without communication  %8.3f s\n", seconds[0]);
    std::printf("  all-reduce after backward   %8.3f s  (+%.3f s, %.1f%% of the step)\n", seconds[1], exposed_blocking,
                100.0 * exposed_blocking / seconds[1]);
    std::printf("  25 MB buckets in backward   %8.3f s  (+%.3f s: %.0f%% of the all-reduce hidden)\n", seconds[2], exposed_overlap, 100.0 * hidden);
    std::printf("  all-reduce alone            %8.3f s  (%.2f GB/s algbw)\n", allreduce, static_cast<double>(grads.size_bytes()) / allreduce / 1e9);
    std::printf(
        "{\"op\": \"bert_step_allreduce\", \"config\": \"%s\", \"batch\": %lld, \"seq\": %lld, \"ranks\": %d, \"threads\": %d, "
        "\"grad_bytes\": %zu, \"step_s\": %.4g, \"step_blocking_s\": %.4g, \"step_overlap_s\": %.4g, \"allreduce_s\": %.4g, "
        "\"hidden_fraction\": %.3f}\n",
        config_name.c_str(), static_cast<long long>(batch), static_cast<long long>(seq), p, mpt::num_threads(), grads.size_bytes(), seconds[0],
        seconds[1], seconds[2], allreduce, hidden);
  }
  return 0;
}
#endif
