// bench_train: the whole training step as the Trainer runs it — zero-grad, forward,
// backward, gradient clipping at norm 1, AdamW step — for one model size, precision and
// weight policy per process, so that the peak RSS of a row belongs to that row alone.
//
//   bench_train [--configs tiny,mini,small,base,base_32] [--steps N] [--threads T]
//       every (config x precision x weight policy) in its own child process, then a table;
//       the machine's peaks are measured first, in the same run
//   bench_train --one CONFIG PRECISION WEIGHTS [--steps N] [--threads T] [--peak GFLOPS] [--profile]
//       one configuration, one JSON line; --profile adds where the step's time goes (mpt's
//       profile regions over the timed steps: one JSON line per region, then a table)
//
// Configs (the throughput issue's): tiny L2 H128, mini L4 H256, small L4 H512 at 32 x 128;
// BERT-base at 12 x 384 (base) and at 32 x 128 (base_32).
// Precisions: fp32 (weights: direct) and bf16_mixed with fp32_master, split_master,
// stochastic_rounding.
//
// JSON fields: config, precision, weights, batch, seq, threads, step_s (median of the timed
// steps), step_best_s, step_spread (slowest / fastest - 1), tokens_per_s (median),
// model_gflops (the matmul FLOPs of forward + backward over the median step),
// fraction_of_peak (of the peak of the instruction the precision's matmuls run on: the AMX
// tile unit for bf16_mixed where the CPU has it, else vdpbf16ps, else fp32 FMA), peak_rss_bytes, and the bytes of parameters,
// gradients, optimizer state and activations.
#include "bench_common.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Shape {
  std::string name;
  std::int64_t layers, hidden, heads, batch, seq;
};
const std::vector<Shape> shapes = {
    {"tiny", 2, 128, 2, 32, 128},   {"mini", 4, 256, 4, 32, 128},      {"small", 4, 512, 8, 32, 128},
    {"base", 12, 768, 12, 12, 384}, {"base_32", 12, 768, 12, 32, 128},
};

const Shape& shape_named(const std::string& name) {
  for (const Shape& s : shapes)
    if (s.name == name) return s;
  mpt::throw_error("bench_train: unknown config '", name, "': use tiny, mini, small, base or base_32");
}

mpt::nn::BertConfig bert_config(const Shape& s) {
  mpt::nn::BertConfig c;  // bert-base-uncased's vocabulary and positions
  c.num_hidden_layers = s.layers;
  c.hidden_size = s.hidden;
  c.num_attention_heads = s.heads;
  c.intermediate_size = 4 * s.hidden;
  return c;
}

// Multiply-adds x 2 of every matmul in forward + backward (3 products each).
double step_flops(const mpt::nn::BertConfig& c, std::int64_t batch, std::int64_t seq) {
  const double t = double(batch * seq), h = double(c.hidden_size), i = double(c.intermediate_size);
  const double dense = t * (4 * h * h + 2 * h * i);
  const double attention = 2.0 * double(batch) * double(seq) * double(seq) * h;
  return 2.0 * 3.0 * (double(c.num_hidden_layers) * (dense + attention) + t * h * 2);
}

std::size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;
}

struct Result {
  std::vector<double> step_seconds;
  mpt::nn::MemoryReport memory;
  std::size_t optimizer_state = 0;
};

template <class P, class W>
Result run(const Shape& shape, int steps, bool profile) {
  const auto config = bert_config(shape);
  mpt::nn::BertForQuestionAnswering<P> model(config);
  model.init_weights(1);
  const std::int64_t b = shape.batch, s = shape.seq;
  mpt::Tensor<std::int32_t> ids(mpt::Shape{b, s}), types(mpt::Shape{b, s}), mask(mpt::Shape{b, s}), start(mpt::Shape{b}), end(mpt::Shape{b});
  for (std::size_t k = 0; k < ids.size(); ++k) {
    ids[k] = static_cast<std::int32_t>(1000 + (k * 7919) % 20000);
    mask[k] = 1;
    types[k] = (k % static_cast<std::size_t>(s)) > static_cast<std::size_t>(s) / 4;
  }
  for (std::size_t k = 0; k < start.size(); ++k) start[k] = static_cast<std::int32_t>(5 + k % 20), end[k] = start[k] + 3;
  const mpt::nn::QaBatch batch{ids.view(), types.view(), mask.view(), start.view(), end.view()};
  model.reserve(b, s, true);
  auto& params = model.parameters();
  auto optimizer = mpt::train::make_adamw<W>(params, {.lr = 3e-5, .weight_decay = 0.01, .seed = 1});
  mpt::optim::NoLossScaling no_scaling;

  Result r;
  for (int step = 0; step <= steps; ++step) {  // step 0 warms up (arenas, scratch, page faults)
    if (step == 1) mpt::profile::enable(profile);
    const double t0 = mpt::bench::now_seconds();
    params.zero_grad();
    {
      MPT_PROFILE("forward");
      model.forward(batch, {.training = true, .seed = 1, .forward_index = static_cast<std::uint32_t>(step)});
    }
    {
      MPT_PROFILE("backward");
      model.backward();
    }
    mpt::optim::clip_and_step(optimizer, no_scaling, params.grad_flat(), 3e-5, 1.0);
    const double dt = mpt::bench::now_seconds() - t0;
    if (step > 0) r.step_seconds.push_back(dt);
  }
  mpt::profile::enable(false);
  r.memory = model.memory();
  r.optimizer_state = optimizer.state_bytes();
  return r;
}

Result run_named(const Shape& shape, const std::string& precision, const std::string& weights, int steps, bool profile) {
  namespace p = mpt::precision;
  namespace w = mpt::optim::weights;
  if (precision == "fp32" && (weights == "direct" || weights.empty())) return run<p::fp32, w::direct>(shape, steps, profile);
  if (precision == "bf16_mixed") {
    if (weights == "fp32_master") return run<p::bf16_mixed, w::fp32_master>(shape, steps, profile);
    if (weights == "split_master") return run<p::bf16_mixed, w::split_master>(shape, steps, profile);
    if (weights == "stochastic_rounding") return run<p::bf16_mixed, w::stochastic_rounding>(shape, steps, profile);
  }
  mpt::throw_error("bench_train: no configuration ", precision, " / ", weights,
                   ": use fp32 direct, or bf16_mixed with fp32_master, split_master or stochastic_rounding");
}

// The peak of the instruction a precision's matmuls run on, on `threads` cores.
double measure_peak(const std::string& precision, int threads) {
  using mpt::Isa;
  if (precision == "bf16_mixed" && mpt::active_isa() >= Isa::amx_bf16) {
    return mpt::bench::measure_peak(mpt::bench::PeakKind::amx_bf16, Isa::amx_bf16, threads);
  }
  if (precision == "bf16_mixed" && mpt::active_isa() >= Isa::avx512_bf16) {
    return mpt::bench::measure_peak(mpt::bench::PeakKind::bf16_dot, Isa::avx512_bf16, threads);
  }
  const Isa isa = mpt::active_isa() >= Isa::avx512 ? Isa::avx512 : Isa::avx2;
  return mpt::bench::measure_peak(mpt::bench::PeakKind::fma_fp32, isa, threads);
}

// Each profile region's exclusive time per step, as JSON lines and as profile::table.
void print_profile(const std::string& config, const std::string& precision, const std::string& weights, int steps, double step_s) {
  for (const auto& e : mpt::profile::report()) {
    std::printf(
        "{\"bench\": \"train_profile\", \"config\": \"%s\", \"precision\": \"%s\", \"weights\": \"%s\", \"region\": \"%s\", "
        "\"ms_per_step\": %.3f, \"calls_per_step\": %.1f, \"share\": %.4f}\n",
        config.c_str(), precision.c_str(), weights.c_str(), e.path.c_str(), 1e3 * e.seconds / steps, double(e.calls) / steps,
        e.seconds / steps / step_s);
  }
  // The tree, in milliseconds per step and shares of the step.
  std::printf("\n%s", mpt::profile::table(step_s * steps, steps).c_str());
}

int run_one(const std::string& config, const std::string& precision, const std::string& weights, int steps, double peak, bool profile) {
  const Shape& shape = shape_named(config);
  const Result r = run_named(shape, precision, weights, steps, profile);
  std::vector<double> sorted = r.step_seconds;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2], best = sorted.front(), worst = sorted.back();
  const double tokens = double(shape.batch * shape.seq);
  const double gflops = step_flops(bert_config(shape), shape.batch, shape.seq) / median / 1e9;
  std::printf(
      "{\"bench\": \"train_step\", \"config\": \"%s\", \"precision\": \"%s\", \"weights\": \"%s\", \"batch\": %lld, \"seq\": %lld, "
      "\"threads\": %d, \"steps\": %d, \"step_s\": %.5f, \"step_best_s\": %.5f, \"step_spread\": %.4f, \"tokens_per_s\": %.1f, "
      "\"model_gflops\": %.1f, \"peak_gflops\": %.1f, \"fraction_of_peak\": %.4f, \"peak_rss_bytes\": %zu, \"parameter_bytes\": %zu, "
      "\"gradient_bytes\": %zu, \"optimizer_state_bytes\": %zu, \"activation_bytes\": %zu}\n",
      config.c_str(), precision.c_str(), weights.c_str(), static_cast<long long>(shape.batch), static_cast<long long>(shape.seq), mpt::num_threads(),
      steps, median, best, worst / best - 1.0, tokens / median, gflops, peak, peak > 0 ? gflops / peak : 0.0, peak_rss_bytes(), r.memory.parameters,
      r.memory.gradients, r.optimizer_state, r.memory.activations);
  if (profile) {
    double total = 0;
    for (double t : r.step_seconds) total += t;
    print_profile(config, precision, weights, steps, total / steps);
  }
  return 0;
}

// A number from a JSON line printed by run_one (the format above: "key": value).
double field(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\": ");
  return at == std::string::npos ? 0.0 : std::atof(line.c_str() + at + key.size() + 4);
}

int run_all(const char* self, const std::vector<std::string>& configs, int steps, int threads) {
  std::printf("# cpu: %s, %d threads, load average %.2f, ISA %s\n", mpt::bench::cpu_model().c_str(), threads, mpt::bench::load_average(),
              std::string(mpt::isa_name(mpt::active_isa())).c_str());
  const double peak_fp32 = measure_peak("fp32", threads), peak_bf16 = measure_peak("bf16_mixed", threads);
  std::printf("{\"bench\": \"peak\", \"threads\": %d, \"fp32_gflops\": %.1f, \"bf16_gflops\": %.1f}\n", threads, peak_fp32, peak_bf16);
  std::fflush(stdout);
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"fp32", "direct"}, {"bf16_mixed", "fp32_master"}, {"bf16_mixed", "split_master"}, {"bf16_mixed", "stochastic_rounding"}};
  std::vector<std::string> lines;
  for (const std::string& config : configs) {
    for (const auto& [precision, weights] : variants) {
      std::ostringstream command;
      command << '"' << self << "\" --one " << config << ' ' << precision << ' ' << weights << " --steps " << steps << " --threads " << threads
              << " --peak " << (precision == "fp32" ? peak_fp32 : peak_bf16);
      FILE* child = popen(command.str().c_str(), "r");
      if (child == nullptr) mpt::throw_error("bench_train: cannot start ", command.str());
      char buffer[4096];
      std::string line;
      while (std::fgets(buffer, sizeof buffer, child) != nullptr) line += buffer;
      const int status = pclose(child);
      if (status != 0 || line.empty()) mpt::throw_error("bench_train: ", command.str(), " failed (status ", status, ")");
      std::fputs(line.c_str(), stdout);
      std::fflush(stdout);
      lines.push_back(line);
    }
  }
  std::printf("\n%-8s %-10s %-20s %12s %12s %8s %8s %10s %10s %9s\n", "config", "precision", "weights", "step ms", "tokens/s", "spread", "GFLOP/s",
              "of peak", "vs fp32", "RSS GiB");
  double fp32_tokens = 0;
  for (const std::string& line : lines) {
    const auto text = [&](const std::string& key) {
      const auto at = line.find("\"" + key + "\": \"");
      return line.substr(at + key.size() + 5, line.find('"', at + key.size() + 5) - (at + key.size() + 5));
    };
    const double tokens = field(line, "tokens_per_s");
    if (text("precision") == "fp32") fp32_tokens = tokens;
    std::printf("%-8s %-10s %-20s %12.1f %12.0f %7.1f%% %8.1f %9.1f%% %9.2fx %9.2f\n", text("config").c_str(), text("precision").c_str(),
                text("weights").c_str(), 1e3 * field(line, "step_s"), tokens, 100 * field(line, "step_spread"), field(line, "model_gflops"),
                100 * field(line, "fraction_of_peak"), fp32_tokens > 0 ? tokens / fp32_tokens : 0.0, field(line, "peak_rss_bytes") / double(1 << 30));
  }
  return 0;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> one;
    std::vector<std::string> configs = {"tiny", "mini", "small", "base", "base_32"};
    int steps = 5, threads = mpt::num_threads();
    double peak = 0;
    bool profile = false;
    for (int a = 1; a < argc; ++a) {
      const std::string arg = argv[a];
      const auto value = [&]() -> std::string {
        if (a + 1 >= argc) mpt::throw_error("bench_train: ", arg, " needs a value");
        return argv[++a];
      };
      if (arg == "--one") {
        if (a + 3 >= argc) mpt::throw_error("bench_train: --one takes CONFIG PRECISION WEIGHTS");
        one = {argv[a + 1], argv[a + 2], argv[a + 3]};
        a += 3;
      } else if (arg == "--configs") {
        configs = split(value());
      } else if (arg == "--steps") {
        steps = std::max(1, std::atoi(value().c_str()));
      } else if (arg == "--threads") {
        threads = std::atoi(value().c_str());
      } else if (arg == "--profile") {
        profile = true;
      } else if (arg == "--peak") {
        peak = std::atof(value().c_str());
      } else {
        mpt::throw_error(
            "bench_train: unknown option '", arg,
            "'; usage: bench_train [--configs tiny,mini,small,base,base_32] [--steps N] [--threads T] | --one CONFIG PRECISION WEIGHTS [--profile]");
      }
    }
    if (threads > 0) mpt::set_num_threads(threads);
    if (!one.empty()) return run_one(one[0], one[1], one[2], steps, peak > 0 ? peak : measure_peak(one[1], mpt::num_threads()), profile);
    if (profile) mpt::throw_error("bench_train: --profile goes with --one CONFIG PRECISION WEIGHTS");
    for (const std::string& c : configs) (void)shape_named(c);  // refuse a misspelled config before minutes of work
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) mpt::throw_error("bench_train: cannot find its own executable (/proc/self/exe)");
    self[n] = '\0';
    return run_all(self, configs, steps, mpt::num_threads());
  } catch (const mpt::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
