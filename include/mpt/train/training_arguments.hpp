#pragma once
// TrainingArguments: transformers' TrainingArguments, the names, meanings and
// defaults a run_qa.py user already types (the subset that means something on
// a CPU). Strategies are the strings transformers accepts ("no", "steps",
// "epoch"; save_strategy also "best"); logging/save/eval steps below 1 are
// ratios of the total number of optimizer steps, as in transformers.
//
//   TrainingArguments args;
//   args.output_dir = "out";  args.learning_rate = 3e-5;  args.bf16 = true;
//   args.validate();          // an mpt::Error naming the argument and the fix
//   args.to_json();           // training_args.json in every checkpoint

#include <mpt/core/error.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mpt::train {

enum class IntervalStrategy { no, steps, epoch };
enum class SaveStrategy { no, steps, epoch, best };

inline std::string_view strategy_name(IntervalStrategy s) noexcept {
  return s == IntervalStrategy::no ? "no" : s == IntervalStrategy::steps ? "steps" : "epoch";
}
inline std::string_view strategy_name(SaveStrategy s) noexcept {
  switch (s) {
    case SaveStrategy::no:
      return "no";
    case SaveStrategy::steps:
      return "steps";
    case SaveStrategy::epoch:
      return "epoch";
    case SaveStrategy::best:
      return "best";
  }
  return "?";
}
inline IntervalStrategy parse_interval_strategy(std::string_view name, std::string_view argument) {
  if (name == "no") return IntervalStrategy::no;
  if (name == "steps") return IntervalStrategy::steps;
  if (name == "epoch") return IntervalStrategy::epoch;
  throw_error("--", argument, " '", name, "' is not a strategy: use no, steps or epoch");
}
inline SaveStrategy parse_save_strategy(std::string_view name) {
  if (name == "no") return SaveStrategy::no;
  if (name == "steps") return SaveStrategy::steps;
  if (name == "epoch") return SaveStrategy::epoch;
  if (name == "best") return SaveStrategy::best;
  throw_error("--save_strategy '", name, "' is not a strategy: use no, steps, epoch or best");
}

struct TrainingArguments {
  std::string output_dir = "trainer_output";
  bool overwrite_output_dir = false;
  bool do_train = false, do_eval = false, do_predict = false;

  // Optimizer (AdamW) and schedule.
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;  // 0: no clipping
  double num_train_epochs = 3.0;
  std::int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  std::string lr_scheduler_type = "linear";
  double warmup_ratio = 0.0;
  std::int64_t warmup_steps = 0;  // > 0 overrides warmup_ratio

  // Batches.
  std::int64_t per_device_train_batch_size = 8;
  std::int64_t per_device_eval_batch_size = 8;
  std::int64_t gradient_accumulation_steps = 1;
  bool dataloader_drop_last = false;

  // When to log, evaluate and save.
  IntervalStrategy logging_strategy = IntervalStrategy::steps;
  double logging_steps = 500;
  bool logging_first_step = false;
  IntervalStrategy eval_strategy = IntervalStrategy::no;
  std::optional<double> eval_steps;  // unset: logging_steps
  SaveStrategy save_strategy = SaveStrategy::steps;
  double save_steps = 500;
  std::optional<std::int64_t> save_total_limit;
  bool load_best_model_at_end = false;
  std::optional<std::string> metric_for_best_model;  // unset: "loss" when load_best_model_at_end
  std::optional<bool> greater_is_better;             // unset: false for *loss, else true

  // Randomness and resuming.
  std::uint64_t seed = 42;
  std::optional<std::uint64_t> data_seed;             // unset: seed
  std::optional<std::string> resume_from_checkpoint;  // a folder, or "true": the last one in output_dir

  // Precision and device. mpt always runs its CPU kernels: use_cpu, no_cuda and
  // use_ipex are accepted for the commands people paste.
  bool bf16 = false;
  bool fp16 = false;
  bool use_cpu = false;
  bool no_cuda = false;
  bool use_ipex = false;

  // Reporting: "none", or a path ending in .jsonl that receives every log entry.
  std::string report_to = "none";
  bool disable_tqdm = false;  // no progress bar, plain log lines

  // The metric checkpoints compete on ("eval_" prefixed, as transformers compares).
  std::string best_metric_key() const {
    const std::string m = metric_for_best_model.value_or("loss");
    return m.rfind("eval_", 0) == 0 ? m : "eval_" + m;
  }
  bool best_is_greater() const {
    if (greater_is_better) return *greater_is_better;
    const std::string m = metric_for_best_model.value_or("loss");
    return !(m == "loss" || m.ends_with("_loss"));
  }
  std::uint64_t sampler_seed() const { return data_seed.value_or(seed); }
  // Whether checkpoints are compared on a metric (to keep the best, or load it at the end).
  bool tracks_best() const { return load_best_model_at_end || metric_for_best_model.has_value() || save_strategy == SaveStrategy::best; }

  // Checks values and combinations, as TrainingArguments.__post_init__ does.
  void validate() const {
    const auto positive = [](std::int64_t v, const char* name) {
      if (v < 1) throw_error("--", name, " is ", v, " but must be at least 1");
    };
    positive(per_device_train_batch_size, "per_device_train_batch_size");
    positive(per_device_eval_batch_size, "per_device_eval_batch_size");
    positive(gradient_accumulation_steps, "gradient_accumulation_steps");
    const auto non_negative = [](double v, const char* name) {
      if (!(v >= 0.0) || !std::isfinite(v)) throw_error("--", name, " is ", v, " but must be a finite number >= 0");
    };
    non_negative(learning_rate, "learning_rate");
    non_negative(weight_decay, "weight_decay");
    non_negative(adam_epsilon, "adam_epsilon");
    non_negative(max_grad_norm, "max_grad_norm");
    non_negative(num_train_epochs, "num_train_epochs");
    if (!(adam_beta1 >= 0.0 && adam_beta1 < 1.0)) throw_error("--adam_beta1 is ", adam_beta1, " but must lie in [0, 1)");
    if (!(adam_beta2 >= 0.0 && adam_beta2 < 1.0)) throw_error("--adam_beta2 is ", adam_beta2, " but must lie in [0, 1)");
    if (!(warmup_ratio >= 0.0 && warmup_ratio <= 1.0)) throw_error("--warmup_ratio is ", warmup_ratio, " but must lie in [0, 1]");
    if (warmup_steps < 0) throw_error("--warmup_steps is ", warmup_steps, " but must be >= 0");
    if (max_steps == 0 || max_steps < -1) throw_error("--max_steps is ", max_steps, " but must be positive (or -1: use num_train_epochs)");
    const auto steps_value = [](double v, const char* name) {
      if (!(v > 0.0) || (v > 1.0 && v != std::floor(v))) {
        throw_error("--", name, " is ", v, " but must be a whole number of steps, or a ratio in (0, 1) of the total");
      }
    };
    if (logging_strategy == IntervalStrategy::steps) steps_value(logging_steps, "logging_steps");
    if (save_strategy == SaveStrategy::steps) steps_value(save_steps, "save_steps");
    if (eval_strategy == IntervalStrategy::steps) steps_value(eval_steps.value_or(logging_steps), "eval_steps");
    if (save_total_limit && *save_total_limit < 1) {
      throw_error("--save_total_limit is ", *save_total_limit, " but must be at least 1 (or unset: keep every checkpoint)");
    }
    if (bf16 && fp16) throw_error("--bf16 and --fp16 are both set; choose one precision");
    if (load_best_model_at_end || save_strategy == SaveStrategy::best) {
      if (eval_strategy == IntervalStrategy::no) {
        throw_error(
            "--load_best_model_at_end and --save_strategy best need evaluations: set --eval_strategy to steps or "
            "epoch (and --do_eval with a validation file)");
      }
    }
    if (load_best_model_at_end && save_strategy != SaveStrategy::best) {
      if (static_cast<int>(save_strategy) != static_cast<int>(eval_strategy)) {
        throw_error(
            "--load_best_model_at_end requires the save and eval strategy to match, but found\n- Evaluation "
            "strategy: ",
            strategy_name(eval_strategy), "\n- Save strategy: ", strategy_name(save_strategy));
      }
      if (eval_strategy == IntervalStrategy::steps) {
        const double e = eval_steps.value_or(logging_steps);
        if (save_steps < 1 || e < 1 ? save_steps != e : std::fmod(save_steps, e) != 0.0) {
          throw_error(
              "--load_best_model_at_end requires the saving steps to be a round multiple of the evaluation "
              "steps, but found ",
              save_steps, ", which is not a round multiple of ", e, ".");
        }
      }
    }
    if (report_to != "none" && !std::string_view(report_to).ends_with(".jsonl")) {
      throw_error("--report_to '", report_to, "': mpt reports to none or to a JSON-lines file (a path ending in .jsonl)");
    }
  }

  // training_args.json, the names transformers uses.
  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json j;
    j["output_dir"] = output_dir;
    j["overwrite_output_dir"] = overwrite_output_dir;
    j["do_train"] = do_train;
    j["do_eval"] = do_eval;
    j["do_predict"] = do_predict;
    j["eval_strategy"] = strategy_name(eval_strategy);
    j["per_device_train_batch_size"] = per_device_train_batch_size;
    j["per_device_eval_batch_size"] = per_device_eval_batch_size;
    j["gradient_accumulation_steps"] = gradient_accumulation_steps;
    j["eval_steps"] = eval_steps ? nlohmann::ordered_json(*eval_steps) : nlohmann::ordered_json(nullptr);
    j["learning_rate"] = learning_rate;
    j["weight_decay"] = weight_decay;
    j["adam_beta1"] = adam_beta1;
    j["adam_beta2"] = adam_beta2;
    j["adam_epsilon"] = adam_epsilon;
    j["max_grad_norm"] = max_grad_norm;
    j["num_train_epochs"] = num_train_epochs;
    j["max_steps"] = max_steps;
    j["lr_scheduler_type"] = lr_scheduler_type;
    j["warmup_ratio"] = warmup_ratio;
    j["warmup_steps"] = warmup_steps;
    j["logging_strategy"] = strategy_name(logging_strategy);
    j["logging_first_step"] = logging_first_step;
    j["logging_steps"] = logging_steps;
    j["save_strategy"] = strategy_name(save_strategy);
    j["save_steps"] = save_steps;
    j["save_total_limit"] = save_total_limit ? nlohmann::ordered_json(*save_total_limit) : nlohmann::ordered_json(nullptr);
    j["use_cpu"] = true;
    j["seed"] = seed;
    j["data_seed"] = data_seed ? nlohmann::ordered_json(*data_seed) : nlohmann::ordered_json(nullptr);
    j["bf16"] = bf16;
    j["fp16"] = fp16;
    j["dataloader_drop_last"] = dataloader_drop_last;
    j["load_best_model_at_end"] = load_best_model_at_end;
    j["metric_for_best_model"] = metric_for_best_model ? nlohmann::ordered_json(*metric_for_best_model) : nlohmann::ordered_json(nullptr);
    j["greater_is_better"] = greater_is_better ? nlohmann::ordered_json(*greater_is_better) : nlohmann::ordered_json(nullptr);
    j["resume_from_checkpoint"] = resume_from_checkpoint ? nlohmann::ordered_json(*resume_from_checkpoint) : nlohmann::ordered_json(nullptr);
    j["report_to"] = report_to == "none" ? nlohmann::ordered_json::array() : nlohmann::ordered_json::array({report_to});
    j["use_ipex"] = use_ipex;
    j["disable_tqdm"] = disable_tqdm;
    return j;
  }
};

}  // namespace mpt::train
