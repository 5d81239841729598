#pragma once
// TrainerState and TrainerControl, as transformers names them.
//
//   TrainerState    where training is (global_step, epoch, max_steps, ...), the
//                   log history and the best checkpoint so far; saved as
//                   trainer_state.json in every checkpoint, with transformers' keys
//   TrainerControl  what callbacks ask of the loop after an event: log,
//                   evaluate, save, stop the epoch, stop training

#include <mpt/core/error.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/json_depth.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace mpt::train {

struct TrainerState {
  double epoch = 0.0;            // fractional: epoch + (batch + 1) / batches per epoch
  std::int64_t global_step = 0;  // optimizer steps taken (updates, skipped ones included)
  std::int64_t max_steps = 0;
  std::int64_t logging_steps = 500;
  std::int64_t eval_steps = 500;
  std::int64_t save_steps = 500;
  std::int64_t train_batch_size = 8;
  std::int64_t num_train_epochs = 0;
  std::int64_t num_input_tokens_seen = 0;
  double total_flos = 0.0;
  nlohmann::ordered_json log_history = nlohmann::ordered_json::array();
  std::optional<double> best_metric;
  std::optional<std::int64_t> best_global_step;
  std::optional<std::string> best_model_checkpoint;

  // trainer_state.json as TrainerState.save_to_json writes it (keys sorted, indent 2).
  nlohmann::ordered_json to_json() const {
    const auto optional = [](const auto& v) { return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr); };
    nlohmann::ordered_json j;
    j["best_global_step"] = optional(best_global_step);
    j["best_metric"] = optional(best_metric);
    j["best_model_checkpoint"] = optional(best_model_checkpoint);
    j["epoch"] = epoch;
    j["eval_steps"] = eval_steps;
    j["global_step"] = global_step;
    j["is_hyper_param_search"] = false;
    j["is_local_process_zero"] = true;
    j["is_world_process_zero"] = true;
    j["log_history"] = log_history;
    j["logging_steps"] = logging_steps;
    j["max_steps"] = max_steps;
    j["num_input_tokens_seen"] = num_input_tokens_seen;
    j["num_train_epochs"] = num_train_epochs;
    j["save_steps"] = save_steps;
    j["stateful_callbacks"] = nlohmann::ordered_json::object();
    j["total_flos"] = total_flos;
    j["train_batch_size"] = train_batch_size;
    j["trial_name"] = nullptr;
    j["trial_params"] = nullptr;
    return j;
  }

  // Reads trainer_state.json (transformers' own files too); `source` names it in errors.
  static TrainerState from_json(const nlohmann::ordered_json& j, const std::string& source) {
    if (!j.is_object()) throw_error(source, ": trainer state must be a JSON object");
    TrainerState s;
    const auto integer = [&](const char* key, std::int64_t& out) {
      if (!j.contains(key)) return;
      if (!j[key].is_number_integer()) throw_error(source, ": \"", key, "\" is ", j[key].dump(), ", not an integer");
      if (j[key].is_number_unsigned() && j[key].get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
        throw_error(source, ": \"", key, "\" is ", j[key].dump(), ", beyond 64-bit integers");
      }
      out = j[key].get<std::int64_t>();
    };
    const auto number = [&](const char* key, double& out) {
      if (!j.contains(key)) return;
      if (!j[key].is_number()) throw_error(source, ": \"", key, "\" is ", j[key].dump(), ", not a number");
      out = j[key].get<double>();
    };
    if (!j.contains("global_step")) throw_error(source, ": no \"global_step\"; this is not a trainer_state.json");
    integer("global_step", s.global_step);
    integer("max_steps", s.max_steps);
    integer("logging_steps", s.logging_steps);
    integer("eval_steps", s.eval_steps);
    integer("save_steps", s.save_steps);
    integer("train_batch_size", s.train_batch_size);
    integer("num_train_epochs", s.num_train_epochs);
    integer("num_input_tokens_seen", s.num_input_tokens_seen);
    number("epoch", s.epoch);
    number("total_flos", s.total_flos);
    if (j.contains("log_history")) {
      if (!j["log_history"].is_array()) throw_error(source, ": \"log_history\" is not an array");
      s.log_history = j["log_history"];
    }
    if (j.contains("best_metric") && !j["best_metric"].is_null()) {
      double b = 0;
      number("best_metric", b);
      s.best_metric = b;
    }
    if (j.contains("best_global_step") && !j["best_global_step"].is_null()) {
      std::int64_t b = 0;
      integer("best_global_step", b);
      s.best_global_step = b;
    }
    if (j.contains("best_model_checkpoint") && j["best_model_checkpoint"].is_string()) {
      s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
    }
    return s;
  }

  void save(const std::filesystem::path& path) const { io::write_file_atomic(path, to_json().dump(2) + "\n"); }
  // trainer_state.json's text; bad JSON is an mpt::Error naming `source`.
  static TrainerState from_json_text(std::string_view text, const std::string& source) {
    io::check_json_strings(text, source);
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw_error(source, ": not valid JSON (", e.what(), ")");
    }
    io::check_json_depth(text, source);
    return from_json(j, source);
  }
  static TrainerState load(const std::filesystem::path& path) { return from_json_text(io::read_text_file(path), path.string()); }
};

struct TrainerControl {
  bool should_training_stop = false;
  bool should_epoch_stop = false;
  bool should_save = false;
  bool should_evaluate = false;
  bool should_log = false;
};

}  // namespace mpt::train
