#pragma once
// Callbacks: what happens around the loop, as transformers' TrainerCallback.
// The loop calls the events; callbacks read the arguments and state and set
// TrainerControl flags (log, evaluate, save, stop). Logging decisions,
// checkpoint decisions, reporting and early stopping are callbacks here, not
// special cases in the loop.
//
//   DefaultFlowCallback     when to log / evaluate / save, from the strategies and steps
//   EarlyStoppingCallback   stop after `patience` evaluations without improvement
//   JsonLinesReporter       every log entry as one JSON line (--report_to file.jsonl)
//   (ProgressCallback, train/progress.hpp: the progress bar or plain log lines)
//
// A callback whose state must survive a resume (early stopping's counter)
// returns it from state(); it is saved in trainer_state.json's
// "stateful_callbacks", as transformers does.

#include <mpt/core/error.hpp>
#include <mpt/train/trainer_state.hpp>
#include <mpt/train/training_arguments.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace mpt::train {

// What the loop knows after an optimizer step.
struct StepInfo {
  double loss = 0.0;           // mean micro-batch loss of this step
  double learning_rate = 0.0;  // the rate this step used
  double grad_norm = 0.0;      // before clipping
  bool applied = true;         // false: a loss scaler skipped it (inf/NaN gradients)
  float loss_scale = 1.0f;
};

class TrainerCallback {
 public:
  virtual ~TrainerCallback() = default;
  // The name under which state() is saved ("EarlyStoppingCallback").
  virtual std::string name() const { return "TrainerCallback"; }
  // Runs on rank 0 only in data-parallel training (printing, reporting).
  virtual bool main_process_only() const { return false; }

  virtual void on_train_begin(const TrainingArguments&, const TrainerState&, TrainerControl&) {}
  virtual void on_epoch_begin(const TrainingArguments&, const TrainerState&, TrainerControl&) {}
  virtual void on_step_end(const TrainingArguments&, const TrainerState&, TrainerControl&, const StepInfo&) {}
  virtual void on_epoch_end(const TrainingArguments&, const TrainerState&, TrainerControl&) {}
  virtual void on_log(const TrainingArguments&, const TrainerState&, TrainerControl&, const nlohmann::ordered_json&) {}
  // During an evaluation: `done` of `total` batches predicted.
  virtual void on_prediction_step(const TrainingArguments&, const TrainerState&, TrainerControl&, std::size_t /*done*/, std::size_t /*total*/) {}
  virtual void on_evaluate(const TrainingArguments&, const TrainerState&, TrainerControl&, const nlohmann::ordered_json&) {}
  virtual void on_save(const TrainingArguments&, const TrainerState&, TrainerControl&, const std::filesystem::path& /*checkpoint*/) {}
  virtual void on_train_end(const TrainingArguments&, const TrainerState&, TrainerControl&) {}

  // State to carry across a resume (null: none).
  virtual nlohmann::ordered_json state() const { return nullptr; }
  virtual void load_state(const nlohmann::ordered_json&) {}
};

// An interval of `steps` (a count, or a ratio of max_steps below 1), as transformers resolves it.
inline std::int64_t resolve_steps(double steps, std::int64_t max_steps) {
  if (steps < 1.0) return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(static_cast<double>(max_steps) * steps)));
  return static_cast<std::int64_t>(steps);
}

// transformers' DefaultFlowCallback.
class DefaultFlowCallback : public TrainerCallback {
 public:
  std::string name() const override { return "DefaultFlowCallback"; }
  void on_step_end(const TrainingArguments& args, const TrainerState& state, TrainerControl& control, const StepInfo&) override {
    if (state.global_step == 1 && args.logging_first_step) control.should_log = true;
    if (args.logging_strategy == IntervalStrategy::steps && state.global_step % state.logging_steps == 0) {
      control.should_log = true;
    }
    if (args.eval_strategy == IntervalStrategy::steps && state.global_step % state.eval_steps == 0) {
      control.should_evaluate = true;
    }
    if (args.save_strategy == SaveStrategy::steps && state.global_step % state.save_steps == 0) control.should_save = true;
    if (state.global_step >= state.max_steps) {
      control.should_training_stop = true;
      if (args.save_strategy != SaveStrategy::no && args.save_strategy != SaveStrategy::best) control.should_save = true;
    }
  }
  void on_epoch_end(const TrainingArguments& args, const TrainerState&, TrainerControl& control) override {
    if (args.logging_strategy == IntervalStrategy::epoch) control.should_log = true;
    if (args.eval_strategy == IntervalStrategy::epoch) control.should_evaluate = true;
    if (args.save_strategy == SaveStrategy::epoch) control.should_save = true;
  }
};

// transformers' EarlyStoppingCallback: stops when metric_for_best_model has not
// improved (by more than `threshold`) for `patience` evaluations in a row.
class EarlyStoppingCallback : public TrainerCallback {
 public:
  explicit EarlyStoppingCallback(int patience = 1, double threshold = 0.0) : patience_(patience), threshold_(threshold) {
    if (patience < 1) throw_error("EarlyStoppingCallback: early_stopping_patience is ", patience, "; it must be at least 1");
  }
  std::string name() const override { return "EarlyStoppingCallback"; }
  void on_train_begin(const TrainingArguments& args, const TrainerState&, TrainerControl&) override {
    if (!args.tracks_best() || args.eval_strategy == IntervalStrategy::no) {
      throw_error(
          "early stopping needs evaluations and a metric: set --eval_strategy steps or epoch, --do_eval, and "
          "--metric_for_best_model (or --load_best_model_at_end)");
    }
  }
  void on_evaluate(const TrainingArguments& args, const TrainerState& state, TrainerControl& control,
                   const nlohmann::ordered_json& metrics) override {
    const std::string key = args.best_metric_key();
    if (!metrics.contains(key) || !metrics[key].is_number()) {
      throw_error("early stopping: the evaluation gave no \"", key, "\" (it gave ", metrics.dump(),
                  "); set --metric_for_best_model to one of its metrics");
    }
    const double value = metrics[key].get<double>();
    const bool better = !state.best_metric || ((args.best_is_greater() ? value > *state.best_metric : value < *state.best_metric) &&
                                               std::fabs(value - *state.best_metric) > threshold_);
    counter_ = better ? 0 : counter_ + 1;
    if (counter_ >= patience_) control.should_training_stop = true;
  }
  nlohmann::ordered_json state() const override {
    return {{"args", {{"early_stopping_patience", patience_}, {"early_stopping_threshold", threshold_}}},
            {"attributes", {{"early_stopping_patience_counter", counter_}}}};
  }
  void load_state(const nlohmann::ordered_json& j) override { counter_ = j.at("attributes").at("early_stopping_patience_counter").get<int>(); }
  int patience_counter() const noexcept { return counter_; }

 private:
  int patience_;
  double threshold_;
  int counter_ = 0;
};

// Every log entry (training, evaluation, the final summary) as one JSON line,
// flushed as it is written (what --report_to file.jsonl gives).
class JsonLinesReporter : public TrainerCallback {
 public:
  explicit JsonLinesReporter(std::filesystem::path path) : path_(std::move(path)) {}
  std::string name() const override { return "JsonLinesReporter"; }
  bool main_process_only() const override { return true; }
  void on_train_begin(const TrainingArguments&, const TrainerState&, TrainerControl&) override { open(); }
  void on_log(const TrainingArguments&, const TrainerState&, TrainerControl&, const nlohmann::ordered_json& logs) override {
    if (!out_.is_open()) open();
    out_ << logs.dump() << '\n';
    out_.flush();
    if (!out_) throw_error("--report_to ", path_, ": cannot write (disk full?)");
  }

 private:
  void open() {
    if (out_.is_open()) return;
    if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
    out_.open(path_, std::ios::app);
    if (!out_) throw_error("--report_to ", path_, ": cannot open for appending");
  }
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace mpt::train
