// bench_bert: one BERT-QA training step (forward + backward) per precision
// policy, as tokens per second and as GFLOP/s of the matmul work the step
// performs, in one run. The fp32 step is the baseline the bf16_mixed step is
// measured against; the model is randomly initialized (weights do not change
// the speed).
//
//   bench_bert [--config base|small|mini|tiny] [--batch B] [--seq S] [--steps N] [--threads T]
#include <mpt/mpt.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {
mpt::nn::BertConfig config_named(const std::string& name) {
  mpt::nn::BertConfig c;  // bert-base-uncased
  if (name == "base") return c;
  const auto set = [&](std::int64_t layers, std::int64_t hidden, std::int64_t heads) {
    c.num_hidden_layers = layers;
    c.hidden_size = hidden;
    c.num_attention_heads = heads;
    c.intermediate_size = 4 * hidden;
  };
  if (name == "small")
    set(4, 512, 8);
  else if (name == "mini")
    set(4, 256, 4);
  else if (name == "tiny")
    set(2, 128, 2);
  else
    mpt::throw_error("bench_bert: unknown --config '", name, "': use base, small, mini or tiny");
  return c;
}

// Multiply-adds x 2 of every matmul in forward + backward (3 products each).
double step_flops(const mpt::nn::BertConfig& c, std::int64_t batch, std::int64_t seq) {
  const double t = double(batch * seq), h = double(c.hidden_size), i = double(c.intermediate_size);
  const double dense = t * (4 * h * h + 2 * h * i);              // Q, K, V, output; intermediate, output
  const double attention = 2.0 * double(batch) * seq * seq * h;  // Q·Kᵀ and P·V
  return 2.0 * 3.0 * (double(c.num_hidden_layers) * (dense + attention) + t * h * 2);
}

template <class P>
double seconds_per_step(const mpt::nn::BertConfig& config, std::int64_t batch, std::int64_t seq, int steps) {
  mpt::nn::BertForQuestionAnswering<P> model(config);
  model.init_weights(1);
  mpt::Tensor<std::int32_t> ids(mpt::Shape{batch, seq}), types(mpt::Shape{batch, seq}), mask(mpt::Shape{batch, seq}), start(mpt::Shape{batch}),
      end(mpt::Shape{batch});
  for (std::size_t k = 0; k < ids.size(); ++k) {
    ids[k] = static_cast<std::int32_t>(1000 + k % 20000);
    mask[k] = 1;
    types[k] = (k % static_cast<std::size_t>(seq)) > static_cast<std::size_t>(seq) / 4;
  }
  for (std::int64_t b = 0; b < batch; ++b) start[static_cast<std::size_t>(b)] = 5, end[static_cast<std::size_t>(b)] = 9;
  const mpt::nn::QaBatch inputs{ids.view(), types.view(), mask.view(), start.view(), end.view()};
  model.reserve(batch, seq, true);
  double best = 1e30;
  for (int s = 0; s <= steps; ++s) {  // step 0 warms up
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(inputs, {.training = true, .seed = 1, .forward_index = static_cast<std::uint32_t>(s)});
    model.backward();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::min(best, dt);
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  std::string name = "base";
  std::int64_t batch = 4, seq = 128;
  int steps = 3, threads = 0;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    const char* value = a + 1 < argc ? argv[a + 1] : nullptr;
    if (!value) {
      std::fprintf(stderr, "bench_bert: %s needs a value\n", arg.c_str());
      return 2;
    }
    if (arg == "--config")
      name = value;
    else if (arg == "--batch")
      batch = std::atol(value);
    else if (arg == "--seq")
      seq = std::atol(value);
    else if (arg == "--steps")
      steps = std::atoi(value);
    else if (arg == "--threads")
      threads = std::atoi(value);
    else {
      std::fprintf(stderr, "usage: bench_bert [--config base|small|mini|tiny] [--batch B] [--seq S] [--steps N] [--threads T]\n");
      return 2;
    }
    ++a;
  }
  try {
    if (threads > 0) mpt::set_num_threads(threads);
    const auto config = config_named(name);
    const double flops = step_flops(config, batch, seq);
    const double t32 = seconds_per_step<mpt::precision::fp32>(config, batch, seq, steps);
    const double t16 = seconds_per_step<mpt::precision::bf16_mixed>(config, batch, seq, steps);
    const double tokens = double(batch * seq);
    std::printf("BERT-%s, batch %lld x seq %lld, %d threads, ISA %s\n", name.c_str(), static_cast<long long>(batch), static_cast<long long>(seq),
                mpt::num_threads(), std::string(mpt::isa_name(mpt::active_isa())).c_str());
    for (auto [policy, t] : {std::pair{"fp32", t32}, std::pair{"bf16_mixed", t16}}) {
      std::printf("  %-10s %8.1f ms/step %9.0f tokens/s %7.1f matmul GFLOP/s  %.2fx fp32\n", policy, t * 1e3, tokens / t, flops / t / 1e9, t32 / t);
      std::printf(
          "{\"bench\":\"bert_step\",\"config\":\"%s\",\"policy\":\"%s\",\"batch\":%lld,\"seq\":%lld,\"threads\":%d,"
          "\"seconds\":%.5f,\"tokens_per_s\":%.1f,\"matmul_gflops\":%.1f,\"speedup_vs_fp32\":%.3f}\n",
          name.c_str(), policy, static_cast<long long>(batch), static_cast<long long>(seq), mpt::num_threads(), t, tokens / t, flops / t / 1e9,
          t32 / t);
    }
  } catch (const mpt::Error& e) {
    std::fprintf(stderr, "bench_bert: %s\n", e.what());
    return 1;
  }
}
