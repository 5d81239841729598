#pragma once
// Trainer<Model, Optimizer, Scaler>: transformers' Trainer as a template.
//
//   train::Trainer<nn::BertForQuestionAnswering<precision::bf16_mixed>> trainer(model, args);
//   trainer.set_evaluate(evaluate_fn);              // eval_* metrics, at eval_strategy points
//   trainer.set_save_extra(save_tokenizer_fn);      // tokenizer files into every model folder
//   TrainOutput out = trainer.train(train_set);     // the loop below; resumes from a checkpoint
//   trainer.save_model(args.output_dir);
//
// The model is anything with the TrainableModel shape (forward / backward(loss_multiplier)
// over an nn::Parameters, save_pretrained); the training set anything with the
// TrainDataset shape (size, collate into a reusable batch). The precision policy is
// the model's; Optimizer names the update rule and master-weight policy of the matmul
// parameters (default: AdamW with the policy's default weights); Scaler the loss
// scaling (default: dynamic for fp16 policies, none otherwise).
//
// Determinism: the same arguments and data give the same bits, for any thread
// count; a run resumed from any checkpoint reproduces, bit for bit, the losses and
// final weights of the run that wrote it (every kernel's result is independent of
// the thread count, so a resume may use another one).

#include <mpt/core/error.hpp>
#include <mpt/core/profile.hpp>
#include <mpt/dist/communicator.hpp>
#include <mpt/io/checksum.hpp>
#include <mpt/io/safetensors.hpp>
#include <mpt/kernels/global_norm.hpp>
#include <mpt/nn/bert.hpp>
#include <mpt/optim/adamw.hpp>
#include <mpt/optim/checkpoint.hpp>
#include <mpt/optim/loss_scaler.hpp>
#include <mpt/optim/optimizer_step.hpp>
#include <mpt/optim/schedule.hpp>
#include <mpt/train/callbacks.hpp>
#include <mpt/train/checkpoint_folder.hpp>
#include <mpt/train/model_optimizer.hpp>
#include <mpt/train/progress.hpp>
#include <mpt/train/sampler.hpp>
#include <mpt/train/signals.hpp>
#include <mpt/train/trainer_state.hpp>
#include <mpt/train/training_arguments.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <sys/resource.h>

namespace mpt::train {

// What the Trainer needs of a model.
template <class M>
concept TrainableModel = requires(M& m, const M& cm, double multiplier, const std::filesystem::path& dir) {
  typename M::policy;
  { m.parameters() } -> std::same_as<nn::Parameters<typename M::policy>&>;
  m.backward(multiplier);
  cm.save_pretrained(dir);
};

// What the Trainer needs of a training set: its size, and batches collated into a
// reusable batch object whose view() the model's forward takes.
template <class D, class M>
concept TrainDataset = requires(const D& d, std::span<const std::size_t> indices, typename D::batch_type& batch, M& m,
                                const nn::StepOptions& options) {
  { d.size() } -> std::convertible_to<std::size_t>;
  d.collate(indices, batch);
  { batch.tokens() } -> std::convertible_to<std::size_t>;  // input_ids elements, padding included (for total_flos)
  { m.forward(batch.view(), options).loss } -> std::convertible_to<double>;
};

// Loss scaling each precision policy gets unless told otherwise.
template <PrecisionPolicy P>
using default_scaler_t = std::conditional_t<std::is_same_v<typename P::param_t, fp16>, optim::DynamicLossScaler, optim::NoLossScaling>;

// What an evaluation returns: its metrics (unprefixed: "exact_match", "f1"), and how
// many samples and batches it ran.
struct EvalResult {
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
  std::size_t samples = 0;
  std::size_t batches = 0;
};

struct TrainOutput {
  std::int64_t global_step = 0;
  double training_loss = 0.0;
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();  // train_runtime, ..., and the memory report
  int stopped_by_signal = 0;                                          // SIGINT / SIGTERM when interrupted (a checkpoint was written first)
  std::optional<std::filesystem::path> interrupt_checkpoint;
};

// Bytes of what a run holds, as the Trainer reports it at the end.
struct MemoryUse {
  std::size_t parameters = 0;  // masters and compute copies
  std::size_t gradients = 0;
  std::size_t optimizer_state = 0;  // moments, split-master low halves
  std::size_t activations = 0;      // the model's arenas, when it reports them
  std::size_t peak_rss = 0;         // of the process
};

// Peak resident set of this process, in bytes (getrusage).
inline std::size_t peak_rss_bytes() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;
}

// The checkpoint run_qa resumes from: resume_from_checkpoint when given ("true":
// the last in output_dir), else output_dir's last checkpoint unless
// overwrite_output_dir. A non-empty output_dir without checkpoints is an error.
inline std::optional<std::filesystem::path> detect_checkpoint(const TrainingArguments& args) {
  const std::filesystem::path out = args.output_dir;
  if (args.resume_from_checkpoint && *args.resume_from_checkpoint != "false") {
    if (*args.resume_from_checkpoint == "true") {
      auto last = last_checkpoint(out);
      if (!last) throw_error("No valid checkpoint found in output directory (", out.string(), ")");
      return last;
    }
    const std::filesystem::path given = *args.resume_from_checkpoint;
    if (!std::filesystem::is_directory(given)) {
      throw_error("--resume_from_checkpoint ", given,
                  " is not a folder; pass a checkpoint-N folder, or true for the "
                  "last one in --output_dir");
    }
    return given;
  }
  std::error_code ec;
  if (!args.do_train || args.overwrite_output_dir || !std::filesystem::is_directory(out, ec)) return std::nullopt;
  remove_stale_temporaries(out);
  if (auto last = last_checkpoint(out)) return last;
  if (!std::filesystem::is_empty(out, ec)) {
    throw_error("Output directory (", out.string(),
                ") already exists and is not empty. Use --overwrite_output_dir to "
                "overcome.");
  }
  return std::nullopt;
}

template <TrainableModel Model, class Optimizer = optim::AdamW<typename Model::policy>,
          optim::LossScaler Scaler = default_scaler_t<typename Model::policy>>
class Trainer {
 public:
  using policy = typename Model::policy;
  using model_optimizer = ModelOptimizer<Optimizer>;
  using EvaluateFn = std::function<EvalResult(Model&, const std::function<void(std::size_t, std::size_t)>& progress)>;
  using SaveExtraFn = std::function<void(const std::filesystem::path&)>;
  static_assert(std::is_same_v<typename Optimizer::policy, policy>,
                "Trainer: the optimizer's precision policy must be the model's (e.g. optim::AdamW<P> for a model<P>)");

  // The model's weights must be loaded (from_pretrained or initialized) before:
  // the optimizer takes over the masters here.
  Trainer(Model& model, TrainingArguments args, Scaler scaler = Scaler())
      : model_(model), args_(std::move(args)), optimizer_(model.parameters(), optimizer_options(args_)), scaler_(std::move(scaler)) {
    args_.validate();
    callbacks_.push_back(std::make_unique<DefaultFlowCallback>());
    callbacks_.push_back(std::make_unique<ProgressCallback>());
    if (args_.report_to != "none") callbacks_.push_back(std::make_unique<JsonLinesReporter>(args_.report_to));
  }

  void add_callback(std::unique_ptr<TrainerCallback> callback) { callbacks_.push_back(std::move(callback)); }
  // Replaces the progress display (tests: a ProgressCallback on another stream).
  void set_progress(std::unique_ptr<TrainerCallback> progress) {
    for (auto& c : callbacks_)
      if (c->name() == "ProgressCallback") c = std::move(progress);
  }
  // Where the Trainer's own lines (the plan, skipped steps, the memory report) go; default stdout.
  void set_output(std::FILE* out) { out_ = out; }
  // Data-parallel training over `comm` (its lifetime must cover train()). Every rank runs
  // the same loop on its shard of each batch; gradients are averaged over the ranks
  // before clipping, so every rank takes the same step. Rank 0 alone prints, reports
  // and writes checkpoints. Default: one process.
  void set_communicator(dist::Communicator& comm) { comm_ = &comm; }
  // All-reduce buckets of this many bytes (DDP's bucket_cap_mb: 25 MB).
  void set_bucket_bytes(std::size_t bytes) { bucket_elements_ = std::max<std::size_t>(1, bytes / sizeof(float)); }
  // After every step, check that every rank holds the same weights (a checksum per rank).
  void set_verify_replicas(bool on) { verify_replicas_ = on; }
  void set_evaluate(EvaluateFn evaluate) { evaluate_ = std::move(evaluate); }
  void set_save_extra(SaveExtraFn save_extra) { save_extra_ = std::move(save_extra); }

  Model& model() noexcept { return model_; }
  const TrainerState& state() const noexcept { return state_; }
  const TrainingArguments& args() const noexcept { return args_; }
  model_optimizer& optimizer() noexcept { return optimizer_; }
  const Scaler& scaler() const noexcept { return scaler_; }
  std::uint32_t forward_count() const noexcept { return forward_index_; }

  MemoryUse memory() {
    MemoryUse m;
    const auto& params = model_.parameters();
    m.parameters = params.master_bytes() + params.compute_bytes();
    m.gradients = params.grad_bytes();
    m.optimizer_state = optimizer_.state_bytes();
    if constexpr (requires(const Model& cm) { cm.memory().activations; }) m.activations = model_.memory().activations;
    m.peak_rss = peak_rss_bytes();
    return m;
  }

  // ---- training ----------------------------------------------------------------------

  // transformers' _inner_training_loop, top to bottom.
  // (clang-format 14 would fold the requires clause into the declaration)
  // clang-format off
  template <class Dataset>
    requires TrainDataset<Dataset, Model>
  TrainOutput train(const Dataset& dataset, std::optional<std::filesystem::path> resume = std::nullopt) {
    // clang-format on
    // The plan: batches per epoch, optimizer updates, epochs. An epoch whose batch
    // count is not a multiple of gradient_accumulation_steps ends with a smaller group.
    const auto batch_size = static_cast<std::size_t>(args_.per_device_train_batch_size);
    const auto accumulation = static_cast<std::size_t>(args_.gradient_accumulation_steps);
    const int world = comm_->size();
    EpochSampler sampler(dataset.size(), batch_size, args_.dataloader_drop_last, args_.sampler_seed(), comm_->rank(), world);
    if (!comm_->is_main()) out_ = null_stream();
    const std::size_t batches_per_epoch = sampler.batches_per_epoch();
    const auto updates_per_epoch = static_cast<std::int64_t>((batches_per_epoch + accumulation - 1) / accumulation);
    std::int64_t max_steps = 0, epochs = 0;
    if (args_.max_steps > 0) {
      max_steps = args_.max_steps;
      epochs = (max_steps + updates_per_epoch - 1) / updates_per_epoch;
    } else {
      max_steps = static_cast<std::int64_t>(std::ceil(args_.num_train_epochs * static_cast<double>(updates_per_epoch)));
      epochs = static_cast<std::int64_t>(std::ceil(args_.num_train_epochs));
    }
    if (max_steps < 1) throw_error("Trainer: --num_train_epochs ", args_.num_train_epochs, " makes no optimizer step");
    schedule_ = optim::LrSchedule::for_trainer(args_.lr_scheduler_type, args_.learning_rate,
                                               optim::warmup_steps_for(args_.warmup_steps, args_.warmup_ratio, max_steps), max_steps);
    state_ = TrainerState{};
    state_.max_steps = max_steps;
    state_.num_train_epochs = epochs;
    state_.train_batch_size = args_.per_device_train_batch_size;
    state_.logging_steps = resolve_steps(args_.logging_steps, max_steps);
    if (args_.eval_strategy == IntervalStrategy::steps) state_.eval_steps = resolve_steps(args_.eval_steps.value_or(args_.logging_steps), max_steps);
    state_.save_steps = resolve_steps(args_.save_steps, max_steps);
    forward_index_ = 0;
    loss_since_log_ = 0.0;
    last_logged_step_ = 0;
    total_loss_ = 0.0;
    control_ = TrainerControl{};
    model_.parameters().zero_grad();

    if (args_.eval_strategy != IntervalStrategy::no && !evaluate_) {
      throw_error("--eval_strategy ", strategy_name(args_.eval_strategy),
                  " needs an evaluation: give a validation set "
                  "(--do_eval --validation_file) or set --eval_strategy no");
    }
    // Resume: weights, optimizer, scaler, schedule, counters and callbacks as they were.
    std::filesystem::create_directories(args_.output_dir);
    if (comm_->is_main()) remove_stale_temporaries(args_.output_dir);
    if (resume) load_checkpoint(*resume);
    const std::int64_t first_epoch = state_.global_step / updates_per_epoch;
    const std::int64_t updates_done_in_epoch = state_.global_step % updates_per_epoch;
    print_plan(dataset.size(), batches_per_epoch, updates_per_epoch, resume);

    StopSignals signals;
    const auto started = std::chrono::steady_clock::now();
    const std::int64_t start_step = state_.global_step;
    std::size_t samples_seen = 0;
    TrainOutput output;
    typename Dataset::batch_type batch{};
    // With several ranks, the model tells when the gradients of its later layers are final,
    // and their all-reduce starts while backward computes the earlier ones.
    if constexpr (requires { model_.on_gradients_ready(std::function<void(std::size_t)>{}); }) {
      if (world > 1) model_.on_gradients_ready([this](std::size_t from) { buckets_ready(from); });
    }
    event([&](TrainerCallback& c) { c.on_train_begin(args_, state_, control_); });
    control_.should_training_stop = state_.global_step >= state_.max_steps;  // a finished run resumed: nothing to do

    for (std::int64_t epoch = first_epoch; epoch < epochs && !control_.should_training_stop; ++epoch) {
      sampler.start_epoch(epoch);
      control_.should_epoch_stop = false;
      event([&](TrainerCallback& c) { c.on_epoch_begin(args_, state_, control_); });
      const std::int64_t first_update = epoch == first_epoch ? updates_done_in_epoch : 0;
      for (std::int64_t update = first_update; update < updates_per_epoch; ++update) {
        // One optimizer step: forward + backward of each micro-batch of the group, the
        // loss divided by the group's size (and multiplied by the loss scale).
        const std::size_t first_batch = static_cast<std::size_t>(update) * accumulation;
        const std::size_t group = std::min(accumulation, batches_per_epoch - first_batch);
        double step_loss = 0.0, step_tokens = 0.0;
        for (std::size_t b = first_batch; b < first_batch + group; ++b) {
          const auto indices = sampler.batch(b);
          profile::Region collate_region("collate batch");
          dataset.collate(indices, batch);
          collate_region.end();
          profile::Region forward_region("forward");
          const double loss = model_.forward(batch.view(), {.training = true, .seed = args_.seed, .forward_index = forward_index_++}).loss;
          forward_region.end();
          profile::Region backward_region("backward");
          // Each rank's gradients carry 1/ranks: their all-reduced sum is the average.
          const bool reduce = world > 1 && b + 1 == first_batch + group;
          if (reduce) buckets_begin();
          model_.backward(static_cast<double>(scaler_.scale()) / static_cast<double>(group * static_cast<std::size_t>(world)));
          if (reduce) buckets_finish();
          backward_region.end();
          step_loss += loss / static_cast<double>(group);
          samples_seen += indices.size();
          step_tokens += static_cast<double>(batch.tokens());
        }
        // What every rank must agree on: the mean loss, the tokens, and whether to stop.
        std::array<double, 4> shared = {step_loss, step_tokens, StopSignals::received() == SIGINT ? 1.0 : 0.0,
                                        StopSignals::received() == SIGTERM ? 1.0 : 0.0};
        if (world > 1) comm_->allreduce_sum(std::span<double>(shared));
        step_loss = shared[0] / world;
        state_.total_flos += 6.0 * shared[1] * static_cast<double>(non_embedding_parameters());
        state_.num_input_tokens_seen += static_cast<std::int64_t>(shared[1]);
        const int stop_signal = shared[2] > 0 ? SIGINT : shared[3] > 0 ? SIGTERM : 0;
        const StepInfo info = optimizer_step(step_loss);
        if (verify_replicas_ && world > 1) verify_replicas();
        ++state_.global_step;
        state_.epoch = static_cast<double>(epoch) + static_cast<double>(first_batch + group) / static_cast<double>(batches_per_epoch);
        loss_since_log_ += step_loss;
        event([&](TrainerCallback& c) { c.on_step_end(args_, state_, control_, info); });
        maybe_log_save_evaluate(info);
        if (stop_signal != 0) {
          output.stopped_by_signal = stop_signal;
          output.interrupt_checkpoint =
              last_saved_step_ == state_.global_step ? checkpoint_folder(args_.output_dir, state_.global_step) : save_checkpoint();
          control_.should_training_stop = true;
          break;
        }
        if (control_.should_epoch_stop || control_.should_training_stop) break;
      }
      if (output.stopped_by_signal != 0) break;
      event([&](TrainerCallback& c) { c.on_epoch_end(args_, state_, control_); });
      maybe_log_save_evaluate(last_info_);
    }

    // The summary entry, as transformers logs it at the end of training.
    const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const std::int64_t steps_run = state_.global_step - start_step;
    total_loss_ += loss_since_log_;
    output.global_step = state_.global_step;
    output.training_loss = state_.global_step > 0 ? total_loss_ / static_cast<double>(state_.global_step) : 0.0;
    nlohmann::ordered_json summary;
    summary["train_runtime"] = round_to(runtime, 4);
    summary["train_samples_per_second"] =
        round_to(runtime > 0 ? static_cast<double>(samples_seen * static_cast<std::size_t>(world)) / runtime : 0.0, 3);
    summary["train_steps_per_second"] = round_to(runtime > 0 ? static_cast<double>(steps_run) / runtime : 0.0, 3);
    summary["total_flos"] = state_.total_flos;
    summary["train_loss"] = output.training_loss;
    if (output.stopped_by_signal == 0) log(summary);
    output.metrics = summary;
    output.metrics["epoch"] = state_.epoch;

    if (output.stopped_by_signal == 0 && args_.load_best_model_at_end && state_.best_model_checkpoint) {
      std::fprintf(out_, "Loading best model from %s (score: %s).\n", state_.best_model_checkpoint->c_str(),
                   python_float(state_.best_metric.value_or(NAN)).c_str());
      load_weights(*state_.best_model_checkpoint);
    }
    event([&](TrainerCallback& c) { c.on_train_end(args_, state_, control_); });

    const MemoryUse mem = memory();
    output.metrics["parameters_bytes"] = mem.parameters;
    output.metrics["gradients_bytes"] = mem.gradients;
    output.metrics["optimizer_state_bytes"] = mem.optimizer_state;
    output.metrics["activations_bytes"] = mem.activations;
    output.metrics["peak_rss_bytes"] = mem.peak_rss;
    if (output.stopped_by_signal != 0) {
      std::fprintf(out_,
                   "Stopped by %s after step %lld; checkpoint %s. Resume with the same command (its last checkpoint is "
                   "picked up) or --resume_from_checkpoint %s\n",
                   output.stopped_by_signal == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(state_.global_step),
                   output.interrupt_checkpoint->c_str(), output.interrupt_checkpoint->c_str());
    } else {
      std::fprintf(out_, "memory: parameters %s, gradients %s, optimizer state %s, activations %s; peak RSS %s\n",
                   human_bytes(mem.parameters).c_str(), human_bytes(mem.gradients).c_str(), human_bytes(mem.optimizer_state).c_str(),
                   human_bytes(mem.activations).c_str(), human_bytes(mem.peak_rss).c_str());
    }
    std::fflush(out_);
    return output;
  }

  // ---- evaluation --------------------------------------------------------------------

  // Runs the evaluation function; logs and returns "<prefix>_" metrics with the speed
  // metrics (runtime, samples and steps per second), as transformers' evaluate.
  nlohmann::ordered_json evaluate(const std::string& prefix = "eval") {
    if (!evaluate_) throw_error("Trainer::evaluate: no evaluation function (set_evaluate)");
    MPT_PROFILE("evaluation");
    const auto started = std::chrono::steady_clock::now();
    const EvalResult result = evaluate_(model_, [&](std::size_t done, std::size_t total) {
      event([&](TrainerCallback& c) { c.on_prediction_step(args_, state_, control_, done, total); });
    });
    const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    nlohmann::ordered_json metrics;
    for (const auto& [key, value] : result.metrics.items()) {
      metrics[key.rfind(prefix + "_", 0) == 0 ? key : prefix + "_" + key] = value;
    }
    metrics[prefix + "_runtime"] = round_to(runtime, 4);
    if (runtime > 0) {
      metrics[prefix + "_samples_per_second"] = round_to(static_cast<double>(result.samples) / runtime, 3);
      metrics[prefix + "_steps_per_second"] = round_to(static_cast<double>(result.batches) / runtime, 3);
    }
    if (prefix == "eval") {
      log(metrics);
      event([&](TrainerCallback& c) { c.on_evaluate(args_, state_, control_, metrics); });
    }
    return metrics;
  }

  // ---- model folders and checkpoints -----------------------------------------------------

  // The model folder (true master weights, fp32) plus the extra files, as save_model.
  void save_model(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    model_.save_pretrained(dir);
    if (save_extra_) save_extra_(dir);
  }

  // trainer_state.json in `dir`, as save_state writes it after training.
  void save_state(const std::filesystem::path& dir) { write_trainer_state(dir / "trainer_state.json"); }

 private:
  static constexpr bool scales_loss = !std::is_same_v<Scaler, optim::NoLossScaling>;

  static typename model_optimizer::options_type optimizer_options(const TrainingArguments& a) {
    typename model_optimizer::options_type o{};
    o.lr = a.learning_rate;
    o.weight_decay = a.weight_decay;
    o.seed = a.seed;
    if constexpr (std::is_same_v<decltype(o), optim::AdamWOptions>) {
      o.beta1 = a.adam_beta1;
      o.beta2 = a.adam_beta2;
      o.eps = a.adam_epsilon;
    }
    return o;
  }

  static double round_to(double v, int digits) {
    const double scale = std::pow(10.0, digits);
    return std::nearbyint(v * scale) / scale;
  }
  static std::string human_bytes(std::size_t bytes) {
    char buf[32];
    const double b = static_cast<double>(bytes);
    if (b >= 1024.0 * 1024 * 1024)
      std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
      std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
    else
      std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
    return buf;
  }

  template <class F>
  void event(F&& f) {
    for (auto& c : callbacks_)
      if (comm_->is_main() || !c->main_process_only()) f(*c);
  }

  static std::FILE* null_stream() {
    static std::FILE* null = std::fopen("/dev/null", "w");
    return null;
  }

  // ---- gradient all-reduce in buckets, overlapped with backward ----------------------
  // Buckets are cut from the end of the gradient buffer, where the model's last layers
  // (whose backward finishes first) keep their matmul parameters; the sum is element-wise,
  // so where the cuts fall never changes the result.
  void buckets_begin() {
    reduce_active_ = true;
    reduced_from_ = model_.parameters().grad_flat().size();
  }
  void buckets_ready(std::size_t from) {
    if (!reduce_active_) return;  // a micro-batch that only accumulates
    auto grads = model_.parameters().grad_flat();
    while (reduced_from_ > from && reduced_from_ - from >= bucket_elements_) {
      comm_->start_allreduce_sum(grads.subspan(reduced_from_ - bucket_elements_, bucket_elements_));
      reduced_from_ -= bucket_elements_;
    }
    comm_->progress();
  }
  void buckets_finish() {
    auto grads = model_.parameters().grad_flat();
    for (std::size_t end = reduced_from_; end > 0;) {
      const std::size_t begin = end > bucket_elements_ ? end - bucket_elements_ : 0;
      comm_->start_allreduce_sum(grads.subspan(begin, end - begin));
      end = begin;
    }
    comm_->wait_all();
    reduce_active_ = false;
  }

  // Every rank's weights after this step must be the same bits: a CRC-32C of the
  // true masters, gathered and compared.
  void verify_replicas() {
    const auto& params = model_.parameters();
    std::vector<typename policy::master_t> values;
    std::uint32_t crc = 0;
    for (nn::ParamId id = 0; id < params.count(); ++id) {
      values.resize(params.entry(id).size());
      params.read_master(id, 0, values);
      crc ^= io::crc32c(std::as_bytes(std::span(values))) + static_cast<std::uint32_t>(id) * 0x9E3779B9u;
    }
    const auto all = comm_->allgather(std::to_string(crc));
    for (std::size_t r = 1; r < all.size(); ++r) {
      if (all[r] != all[0]) {
        throw_error("--debug_ranks: after step ", state_.global_step, " rank ", r,
                    " holds other weights than rank 0 "
                    "(checksums ",
                    all[r], " and ", all[0], "); the replicas diverged");
      }
    }
  }

  std::size_t non_embedding_parameters() const {
    if (non_embedding_ == 0) {
      for (const auto& e : model_.parameters().entries())
        if (e.role != nn::ParamRole::embedding) non_embedding_ += e.size();
    }
    return non_embedding_;
  }

  void print_plan(std::size_t samples, std::size_t batches, std::int64_t updates, const std::optional<std::filesystem::path>& resume) {
    std::fprintf(out_, "***** Running training *****\n");
    std::fprintf(out_, "  Num examples = %zu\n  Num Epochs = %lld\n  Instantaneous batch size per device = %lld\n", samples,
                 static_cast<long long>(state_.num_train_epochs), static_cast<long long>(args_.per_device_train_batch_size));
    std::fprintf(out_,
                 "  Total train batch size (w. parallel, distributed & accumulation) = %lld (%d processes x %lld x %lld)\n"
                 "  Gradient Accumulation steps = %lld\n",
                 static_cast<long long>(comm_->size() * args_.per_device_train_batch_size * args_.gradient_accumulation_steps), comm_->size(),
                 static_cast<long long>(args_.per_device_train_batch_size), static_cast<long long>(args_.gradient_accumulation_steps),
                 static_cast<long long>(args_.gradient_accumulation_steps));
    std::fprintf(out_, "  Total optimization steps = %lld (%zu batches, %lld updates per epoch)\n", static_cast<long long>(state_.max_steps), batches,
                 static_cast<long long>(updates));
    std::fprintf(out_, "  Number of trainable parameters = %zu\n", model_.parameters().numel());
    if (resume) {
      std::fprintf(out_, "  Continuing training from checkpoint %s, global step %lld\n", resume->c_str(), static_cast<long long>(state_.global_step));
    }
    std::fflush(out_);
  }

  // unscale -> clip -> optimizer step (or skip it) -> schedule (a function of the
  // optimizer's step count) -> zero grad.
  StepInfo optimizer_step(double step_loss) {
    auto& params = model_.parameters();
    const double lr = schedule_.lr(optimizer_.steps());
    const float scale_used = scaler_.scale();
    StepInfo info;
    info.loss = step_loss;
    info.learning_rate = lr;
    const optim::StepReport report = optim::clip_and_step(optimizer_, scaler_, params.grad_flat(), lr, args_.max_grad_norm, scales_loss);
    if (!scales_loss && (!report.applied || !std::isfinite(step_loss))) stop_on_non_finite(step_loss);
    info.grad_norm = report.grad_norm;
    info.applied = report.applied;
    info.loss_scale = report.loss_scale;
    if (!report.applied) {
      std::fprintf(out_, "step %lld skipped: inf/NaN gradients under loss scale %s; the scale is now %s (%lld skipped so far)\n",
                   static_cast<long long>(state_.global_step + 1), python_float(scale_used).c_str(), python_float(report.loss_scale).c_str(),
                   static_cast<long long>(report.skipped_steps));
    }
    params.zero_grad();
    last_info_ = info;
    return info;
  }

  // Without a loss scaler, inf/NaN never trains the model: stop before the update,
  // naming the step and the first parameter whose gradient is not finite.
  [[noreturn]] void stop_on_non_finite(double step_loss) const {
    const auto& params = model_.parameters();
    const std::string loss = std::isfinite(step_loss) ? "" : mpt::detail::concat(" the loss is ", step_loss, ";");
    for (const auto& e : params.entries()) {
      const auto* g = params.grad_flat().data() + e.offset;
      for (std::size_t i = 0; i < e.size(); ++i) {
        if (!std::isfinite(g[i])) {
          throw_error("training stopped at step ", state_.global_step + 1, ":", loss, " the gradient of '", e.name, "' is ", g[i], " at element ", i,
                      " (the first parameter with a non-finite gradient); no update "
                      "was applied. Lower --learning_rate or check the data, and resume from the last checkpoint");
        }
      }
    }
    throw_error("training stopped at step ", state_.global_step + 1, ":", loss,
                " no update was applied. Lower --learning_rate or check the data, and resume from the last checkpoint");
  }

  // transformers' _maybe_log_save_evaluate.
  void maybe_log_save_evaluate(const StepInfo& info) {
    if (control_.should_log && state_.global_step > last_logged_step_) {
      nlohmann::ordered_json logs;
      logs["loss"] = round_to(loss_since_log_ / static_cast<double>(state_.global_step - last_logged_step_), 4);
      if (args_.max_grad_norm > 0) logs["grad_norm"] = info.grad_norm;
      logs["learning_rate"] = info.learning_rate;
      total_loss_ += loss_since_log_;
      loss_since_log_ = 0.0;
      last_logged_step_ = state_.global_step;
      log(logs);
    }
    control_.should_log = false;
    if (control_.should_evaluate) {
      control_.should_evaluate = false;
      const nlohmann::ordered_json metrics = evaluate();
      if (args_.tracks_best() && update_best(metrics) && args_.save_strategy == SaveStrategy::best) control_.should_save = true;
    }
    if (control_.should_save) {
      control_.should_save = false;
      save_checkpoint();
    }
  }

  // transformers' _determine_best_metric: true when the evaluation set a new best.
  bool update_best(const nlohmann::ordered_json& metrics) {
    const std::string key = args_.best_metric_key();
    if (!metrics.contains(key) || !metrics[key].is_number()) {
      throw_error("--metric_for_best_model: the evaluation has no \"", key, "\" (it has ", metrics.dump(), "); name one of its metrics, e.g. f1");
    }
    const double value = metrics[key].get<double>();
    const bool better = !state_.best_metric || (args_.best_is_greater() ? value > *state_.best_metric : value < *state_.best_metric);
    if (!better) return false;
    state_.best_metric = value;
    state_.best_global_step = state_.global_step;
    return true;
  }

  void log(nlohmann::ordered_json logs) {
    logs["epoch"] = state_.epoch;
    nlohmann::ordered_json entry = logs;
    entry["step"] = state_.global_step;
    state_.log_history.push_back(entry);
    event([&](TrainerCallback& c) { c.on_log(args_, state_, control_, logs); });
  }

  // trainer_state.json: transformers' keys, sorted (recursively), indent 2.
  void write_trainer_state(const std::filesystem::path& path) {
    nlohmann::json j = nlohmann::json::parse(state_.to_json().dump());  // nlohmann::json sorts keys, as sort_keys=True
    nlohmann::json callbacks = nlohmann::json::object();
    for (const auto& c : callbacks_) {
      const nlohmann::ordered_json s = c->state();
      if (!s.is_null()) callbacks[c->name()] = nlohmann::json(s);
    }
    callbacks["TrainerControl"] = {{"args",
                                    {{"should_epoch_stop", control_.should_epoch_stop},
                                     {"should_evaluate", control_.should_evaluate},
                                     {"should_log", control_.should_log},
                                     {"should_save", control_.should_save},
                                     {"should_training_stop", control_.should_training_stop}}},
                                   {"attributes", nlohmann::json::object()}};
    j["stateful_callbacks"] = callbacks;
    io::write_file_atomic(path, j.dump(2) + "\n");
  }

  // output_dir/checkpoint-<global_step>: the model folder, optimizer, scaler and
  // schedule, trainer state, arguments, and the counters a bitwise resume needs.
  std::filesystem::path save_checkpoint() {
    const std::filesystem::path folder = checkpoint_folder(args_.output_dir, state_.global_step);
    if (state_.best_global_step && *state_.best_global_step == state_.global_step) {
      state_.best_model_checkpoint = folder.string();
    }
    if (comm_->is_main()) {  // every rank holds the same state: rank 0 writes it
      try {
        write_checkpoint();
      } catch (const Error& e) {
        // The writer removed its temporary folder: what is on disk is what was there before.
        const auto last = last_checkpoint(args_.output_dir);
        throw_error("saving ", folder, " at step ", state_.global_step, " failed, and nothing of it was kept: ", e.what(),
                    last ? "; the last complete checkpoint is " + last->string() + " (--resume_from_checkpoint continues from it)"
                         : std::string("; no checkpoint was saved before this one"));
      }
      if (args_.save_total_limit) rotate_checkpoints(args_.output_dir, *args_.save_total_limit, state_.best_model_checkpoint);
    }
    comm_->barrier();  // the checkpoint is complete before any rank goes on (or resumes from it)
    last_saved_step_ = state_.global_step;
    event([&](TrainerCallback& c) { c.on_save(args_, state_, control_, folder); });
    return folder;
  }

  // The checkpoint's files into a temporary folder, renamed to checkpoint-<global_step> once whole.
  void write_checkpoint() {
    CheckpointWriter writer(args_.output_dir, state_.global_step);
    const std::filesystem::path& dir = writer.folder();
    model_.save_pretrained(dir);
    if (save_extra_) save_extra_(dir);
    detail::fault_point("model written");
    optim::save_optimizer_state(dir, optimizer_.state_dict(), scaler_.state(), schedule_.state());
    detail::fault_point("optimizer written");
    write_trainer_state(dir / "trainer_state.json");
    io::write_file_atomic(dir / "training_args.json", args_.to_json().dump(2) + "\n");
    const nlohmann::ordered_json counters = {
        {"forward_index", forward_index_}, {"loss_since_log", loss_since_log_}, {"last_logged_step", last_logged_step_},
        {"total_loss", total_loss_},       {"data_seed", args_.sampler_seed()}, {"seed", args_.seed},
        {"world_size", comm_->size()}};
    io::write_file_atomic(dir / "rng_state.json", counters.dump(2) + "\n");
    writer.commit();
  }

  // The true master weights from a checkpoint's model.safetensors (the names and
  // shapes of this model, any floating dtype).
  void load_weights(const std::filesystem::path& folder) {
    auto& params = model_.parameters();
    const auto file = io::SafetensorsFile::open(folder / "model.safetensors");
    std::vector<typename policy::master_t> values;
    for (nn::ParamId id = 0; id < params.count(); ++id) {
      const nn::ParamEntry& e = params.entry(id);
      const io::SafetensorsEntry* t = file.find(e.name);
      if (t == nullptr) throw_error("checkpoint ", folder, ": model.safetensors has no tensor '", e.name, "'");
      values.resize(e.size());
      file.read(*t, TensorView<typename policy::master_t>(values.data(), e.shape));
      params.write_master(id, 0, values);
    }
  }

  void load_checkpoint(const std::filesystem::path& folder) {
    verify_checkpoint(folder);
    try {
      load_checkpoint_files(folder);
    } catch (const nlohmann::json::exception& e) {
      // A field missing or of the wrong type in files whose checksums match: written by
      // another program, or edited along with its manifest.
      throw_error("checkpoint ", folder, " cannot be resumed: its JSON files lack a field mpt writes or hold it with another type (", e.what(),
                  "); resume from another checkpoint, or add --overwrite_output_dir to start over");
    }
  }

  void load_checkpoint_files(const std::filesystem::path& folder) {
    load_weights(folder);
    const auto loaded = optim::load_optimizer_state(folder);
    optimizer_.load_state_dict(loaded.optimizer.view());
    scaler_.load_state(loaded.scaler);
    schedule_.load_state(loaded.scheduler);
    const TrainerState saved = TrainerState::load(folder / "trainer_state.json");
    state_.global_step = saved.global_step;
    state_.epoch = saved.epoch;
    state_.log_history = saved.log_history;
    state_.best_metric = saved.best_metric;
    state_.best_global_step = saved.best_global_step;
    state_.best_model_checkpoint = saved.best_model_checkpoint;
    state_.total_flos = saved.total_flos;
    state_.num_input_tokens_seen = saved.num_input_tokens_seen;
    if (state_.global_step > state_.max_steps) {
      throw_error("checkpoint ", folder, " is at step ", state_.global_step, " but this run has ", state_.max_steps,
                  " steps in all; raise --num_train_epochs or --max_steps to continue it");
    }
    const nlohmann::json raw = nlohmann::json::parse(io::read_text_file(folder / "trainer_state.json"));
    if (raw.contains("stateful_callbacks")) {
      for (auto& c : callbacks_) {
        if (raw["stateful_callbacks"].contains(c->name())) c->load_state(nlohmann::ordered_json(raw["stateful_callbacks"][c->name()]));
      }
    }
    const nlohmann::json counters = nlohmann::json::parse(io::read_text_file(folder / "rng_state.json"));
    forward_index_ = counters.at("forward_index").get<std::uint32_t>();
    loss_since_log_ = counters.at("loss_since_log").get<double>();
    last_logged_step_ = counters.at("last_logged_step").get<std::int64_t>();
    total_loss_ = counters.at("total_loss").get<double>();
    last_saved_step_ = state_.global_step;
  }

  Model& model_;
  TrainingArguments args_;
  model_optimizer optimizer_;
  Scaler scaler_;
  optim::LrSchedule schedule_;
  TrainerState state_;
  TrainerControl control_;
  std::vector<std::unique_ptr<TrainerCallback>> callbacks_;
  EvaluateFn evaluate_;
  SaveExtraFn save_extra_;
  std::uint32_t forward_index_ = 0;
  double loss_since_log_ = 0.0;  // sum of step losses since the last log entry
  std::int64_t last_logged_step_ = 0;
  double total_loss_ = 0.0;  // sum of every logged step loss (train_loss)
  std::int64_t last_saved_step_ = -1;
  StepInfo last_info_;
  mutable std::size_t non_embedding_ = 0;
  std::FILE* out_ = stdout;
  dist::Communicator* comm_ = &dist::single_process();
  std::size_t bucket_elements_ = 25 * 1024 * 1024 / sizeof(float);
  bool reduce_active_ = false;
  std::size_t reduced_from_ = 0;
  bool verify_replicas_ = false;
};

}  // namespace mpt::train
