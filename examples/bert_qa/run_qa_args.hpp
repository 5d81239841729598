// The command line of bert_qa: run_qa.py's flags (ModelArguments,
// DataTrainingArguments, TrainingArguments) with their names, meanings and
// defaults, parsed with CLI11. A run_qa user's command works as it is.
//
//   bool flags take no value or one: --do_train, --do_train true, --pad_to_max_length False;
//   defaults-true flags also have a --no_ form (--no_pad_to_max_length), as HfArgumentParser.
//   An unknown flag names the closest known one; a bad value names the flag and the value.
#pragma once

#include <mpt/core/error.hpp>
#include <mpt/train/training_arguments.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace bert_qa {

struct ModelArguments {
  std::string model_name_or_path;  // a Hugging Face model folder on disk
  std::string config_name;
  std::string tokenizer_name;
  std::string config_overrides;  // "hidden_size=128,num_hidden_layers=2": from scratch, BertConfig's defaults + these
};

struct DataArguments {
  std::string dataset_name;
  std::string train_file, validation_file, test_file;
  std::int64_t max_seq_length = 384;
  std::int64_t doc_stride = 128;
  bool pad_to_max_length = true;
  std::int64_t max_answer_length = 30;
  std::int64_t n_best_size = 20;
  bool version_2_with_negative = false;
  double null_score_diff_threshold = 0.0;
  std::optional<std::int64_t> max_train_samples, max_eval_samples, max_predict_samples;
  std::optional<std::int64_t> preprocessing_num_workers;
};

struct MptArguments {
  std::optional<int> num_threads;              // default: all cores (OMP_NUM_THREADS / MPT_NUM_THREADS honoured)
  std::string master_weights = "fp32_master";  // bf16 only: fp32_master, split_master, stochastic_rounding
  std::optional<int> early_stopping_patience;
  double early_stopping_threshold = 0.0;
  bool demo = false;
  std::string demo_data_dir = "synthetic_squad";
  std::int64_t demo_entities_per_paragraph = 1;
  double ddp_bucket_cap_mb = 25;  // gradient all-reduce buckets under mpirun (DDP's default)
  bool debug_ranks = false;       // check every step that all ranks hold the same weights
  bool profile = false;           // time the training step's operations (mpt::profile)
};

struct Arguments {
  ModelArguments model;
  DataArguments data;
  mpt::train::TrainingArguments training;
  MptArguments mpt;
  std::vector<std::string> ignored;  // accepted for compatibility, no effect here
  std::vector<std::string> given;    // the flags on the command line (for --demo's defaults)
  bool was_given(std::string_view flag) const { return std::find(given.begin(), given.end(), std::string(flag)) != given.end(); }
};

// The result of parsing: arguments, or an exit code and what to print.
struct ParseResult {
  std::optional<Arguments> args;
  int exit_code = 0;
  std::string message;  // help text (exit 0) or the error (exit 2)
};

namespace detail {

// The Levenshtein distance of a and b if it is at most `bound`, else bound + 1: rows
// stop as soon as every entry exceeds the bound (the distance never falls below a
// row's smallest entry).
inline std::size_t edit_distance_within(std::string_view a, std::string_view b, std::size_t bound) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    std::size_t row_min = row[0];
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min(std::min(row[j], row[j - 1]) + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
      diagonal = up;
      row_min = std::min(row_min, row[j]);
    }
    if (row_min > bound) return bound + 1;
  }
  return std::min(row[b.size()], bound + 1);
}

inline std::optional<bool> parse_bool(std::string_view v) {
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "true" || s == "1" || s == "yes" || s == "y") return true;
  if (s == "false" || s == "0" || s == "no" || s == "n") return false;
  return std::nullopt;
}

}  // namespace detail

// The closest known flag to an unknown one, if close enough to be a misspelling
// (a distance of at most a quarter of its length, and at least 2).
inline std::optional<std::string> closest_flag(std::string_view unknown, const std::vector<std::string>& known) {
  const std::size_t limit = std::max<std::size_t>(2, unknown.size() / 4);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const std::string& k : known) {
    // Only a closer flag than the best so far matters: the bound shrinks as they are found;
    // the distance is at least the difference in length.
    const std::size_t bound = best_distance - 1;
    if ((k.size() > unknown.size() ? k.size() - unknown.size() : unknown.size() - k.size()) > bound) continue;
    const std::size_t d = detail::edit_distance_within(unknown, k, bound);
    if (d < best_distance) best_distance = d, best = k;
  }
  return best;
}

class ArgumentParser {
 public:
  ArgumentParser()
      : app_(
            "bert_qa: fine-tune BERT for extractive question answering (SQuAD), as transformers' "
            "run_qa.py --bf16 --use_ipex --no_cuda, in one native program. Flags are run_qa.py's.",
            "bert_qa") {
    app_.set_help_flag("-h,--help", "Print this help and exit");
    app_.get_formatter()->column_width(44);
    Arguments& a = args_;
    auto& m = a.model;
    auto& d = a.data;
    auto& t = a.training;
    auto& x = a.mpt;

    // ---- model
    text("--model_name_or_path", m.model_name_or_path, "A Hugging Face model folder on disk (config.json, model.safetensors, vocab.txt)", "Model");
    text("--config_name", m.config_name, "Config folder or config.json, if not the model's", "Model");
    text("--tokenizer_name", m.tokenizer_name, "Tokenizer folder (vocab.txt) or vocab file, if not the model's", "Model");
    text("--config_overrides", m.config_overrides,
         "Train from scratch: BertConfig's defaults (bert-base-uncased) with these, e.g. \"hidden_size=128,num_hidden_layers=2\"", "Model");
    for (const char* f : {"--cache_dir", "--model_revision", "--token", "--use_auth_token"}) ignored_value(f, "Model");
    ignored_flag("--trust_remote_code", "Model");

    // ---- data
    text("--dataset_name", d.dataset_name, "A datasets hub name: not available here (no downloads); use --train_file", "Data");
    ignored_value("--dataset_config_name", "Data");
    text("--train_file", d.train_file, "Training data: SQuAD nested JSON, or flattened JSON / JSON lines (.jsonl)", "Data");
    text("--validation_file", d.validation_file, "Evaluation data (same formats)", "Data");
    text("--test_file", d.test_file, "Prediction data (same formats; answers optional)", "Data");
    number("--max_seq_length", d.max_seq_length, "Tokens per feature (question + context window + 3)", "Data");
    number("--doc_stride", d.doc_stride, "Overlap of the context windows of a long paragraph", "Data");
    flag("--pad_to_max_length", d.pad_to_max_length, "Pad every feature to max_seq_length (false: pad each batch to its longest)", "Data");
    number("--max_answer_length", d.max_answer_length, "Longest answer, in tokens", "Data");
    number("--n_best_size", d.n_best_size, "Start and end candidates per feature in post-processing", "Data");
    flag("--version_2_with_negative", d.version_2_with_negative, "SQuAD v2.0: some questions have no answer", "Data");
    number("--null_score_diff_threshold", d.null_score_diff_threshold, "v2: answer \"\" when null score - best > this", "Data");
    optional_number("--max_train_samples", d.max_train_samples, "Use the first N training examples (and features)", "Data");
    optional_number("--max_eval_samples", d.max_eval_samples, "Use the first N evaluation examples (and features)", "Data");
    optional_number("--max_predict_samples", d.max_predict_samples, "Use the first N prediction examples (and features)", "Data");
    optional_number("--preprocessing_num_workers", d.preprocessing_num_workers, "Accepted; tokenization runs on --num_threads", "Data");
    ignored_flag("--overwrite_cache", "Data");

    // ---- training
    text("--output_dir", t.output_dir, "Where the model, predictions, results and checkpoints go", "Training");
    flag("--overwrite_output_dir", t.overwrite_output_dir, "Train from scratch even when output_dir has checkpoints", "Training");
    flag("--do_train", t.do_train, "Train on --train_file", "Training");
    flag("--do_eval", t.do_eval, "Evaluate on --validation_file", "Training");
    flag("--do_predict", t.do_predict, "Predict on --test_file", "Training");
    number("--learning_rate", t.learning_rate, "AdamW learning rate", "Training");
    number("--weight_decay", t.weight_decay, "AdamW weight decay (not on biases and LayerNorm)", "Training");
    number("--adam_beta1", t.adam_beta1, "AdamW beta1", "Training");
    number("--adam_beta2", t.adam_beta2, "AdamW beta2", "Training");
    number("--adam_epsilon", t.adam_epsilon, "AdamW epsilon", "Training");
    number("--max_grad_norm", t.max_grad_norm, "Clip the gradient's global L2 norm (0: no clipping)", "Training");
    number("--num_train_epochs", t.num_train_epochs, "Epochs (fractions allowed)", "Training");
    number("--max_steps", t.max_steps, "Optimizer steps; > 0 overrides num_train_epochs", "Training");
    choice("--lr_scheduler_type", t.lr_scheduler_type, {"linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"},
           "Learning-rate schedule", "Training");
    number("--warmup_ratio", t.warmup_ratio, "Warm-up as a fraction of the steps", "Training");
    number("--warmup_steps", t.warmup_steps, "Warm-up steps; > 0 overrides warmup_ratio", "Training");
    number("--per_device_train_batch_size", t.per_device_train_batch_size, "Training batch", "Training");
    number("--per_device_eval_batch_size", t.per_device_eval_batch_size, "Evaluation batch", "Training");
    number("--gradient_accumulation_steps", t.gradient_accumulation_steps, "Micro-batches per optimizer step", "Training");
    flag("--dataloader_drop_last", t.dataloader_drop_last, "Drop an epoch's last incomplete batch", "Training");
    strategy("--logging_strategy", logging_strategy_, "When to log: no, steps, epoch", "Training");
    number("--logging_steps", t.logging_steps, "Log every N steps (below 1: a ratio of the total)", "Training");
    flag("--logging_first_step", t.logging_first_step, "Also log the first step", "Training");
    strategy("--eval_strategy", eval_strategy_, "When to evaluate during training: no, steps, epoch", "Training");
    strategy("--evaluation_strategy", eval_strategy_, "Old name of --eval_strategy", "Training");
    optional_number("--eval_steps", t.eval_steps, "Evaluate every N steps (default: logging_steps)", "Training");
    strategy("--save_strategy", save_strategy_, "When to save a checkpoint: no, steps, epoch, best", "Training");
    number("--save_steps", t.save_steps, "Save every N steps (below 1: a ratio of the total)", "Training");
    optional_number("--save_total_limit", t.save_total_limit, "Keep at most N checkpoints (never the best)", "Training");
    flag("--load_best_model_at_end", t.load_best_model_at_end, "Load the best checkpoint at the end", "Training");
    optional_text("--metric_for_best_model", t.metric_for_best_model, "Metric checkpoints compete on (exact_match, f1, ...)", "Training");
    optional_flag("--greater_is_better", t.greater_is_better, "Whether a higher metric is better", "Training");
    number("--seed", t.seed, "Seed of initialization, shuffling and dropout", "Training");
    optional_number("--data_seed", t.data_seed, "Seed of the shuffling alone", "Training");
    optional_text("--resume_from_checkpoint", t.resume_from_checkpoint, "A checkpoint folder, or true: the last in output_dir", "Training");
    flag("--bf16", t.bf16, "bf16 mixed precision (autocast's rules): bf16 matmuls, fp32 masters and sums", "Training");
    flag("--fp16", t.fp16, "fp16 mixed precision with dynamic loss scaling", "Training");
    flag("--use_cpu", t.use_cpu, "Accepted: mpt always runs on the CPU", "Training");
    flag("--no_cuda", t.no_cuda, "Accepted: mpt always runs on the CPU", "Training");
    flag("--use_ipex", t.use_ipex, "Accepted: mpt's own CPU kernels are always on", "Training");
    text("--report_to", t.report_to, "none, or a .jsonl file that receives every log entry", "Training");
    flag("--disable_tqdm", t.disable_tqdm, "No progress bar: plain log lines", "Training");
    for (const char* f : {"--logging_dir", "--run_name", "--dataloader_num_workers", "--optim", "--half_precision_backend", "--save_safetensors",
                          "--local_rank", "--ddp_backend", "--push_to_hub", "--hub_model_id"})
      ignored_value(f, "Training");

    // ---- mpt
    auto* threads = app_.add_option("--num_threads", a.mpt.num_threads, "Threads (default: all cores; OMP_NUM_THREADS / MPT_NUM_THREADS honoured)");
    threads->group("mpt")->check(CLI::Range(1, 4096));
    known_.push_back("--num_threads");
    choice("--master_weights", x.master_weights, {"fp32_master", "split_master", "stochastic_rounding"},
           "--bf16: where the fp32 master lives (split: bf16 + 16-bit trail; stochastic: bf16 only)", "mpt");
    auto* patience = app_.add_option("--early_stopping_patience", x.early_stopping_patience,
                                     "Stop after N evaluations without improvement of metric_for_best_model");
    patience->group("mpt")->check(CLI::Range(1, 1000000));
    known_.push_back("--early_stopping_patience");
    number("--early_stopping_threshold", x.early_stopping_threshold, "Smallest improvement that counts", "mpt");
    number("--ddp_bucket_cap_mb", x.ddp_bucket_cap_mb,
           "Under mpirun: all-reduce gradients in buckets of this many MB, "
           "overlapped with backward",
           "mpt");
    flag("--debug_ranks", x.debug_ranks, "Under mpirun: check after every step that all ranks hold the same weights", "mpt");
    flag("--profile", x.profile,
         "Time the operations of every training step (mpt::profile) and report where the training time went: a table at the end "
         "and profile.json in --output_dir",
         "mpt");
    flag("--demo", x.demo,
         "The quick start: generate a synthetic SQuAD task (if absent) and train a tiny BERT from scratch in bf16; "
         "other flags still apply",
         "mpt");
    text("--demo_data_dir", x.demo_data_dir, "Where --demo keeps its generated train.json and dev.json", "mpt");
    number("--demo_entities_per_paragraph", x.demo_entities_per_paragraph,
           "--demo's task: entities per paragraph (1: easy; 2-4: the model must match the entity)", "mpt");
    defaults_ = args_;
    default_strategies_ = {logging_strategy_, eval_strategy_, save_strategy_};
  }

  // Every call starts from the defaults, so one parser can parse many command lines
  // (building one costs more than parsing: 110 flags).
  ParseResult parse(int argc, const char* const* argv) {
    app_.clear();
    args_ = defaults_;
    logging_strategy_ = default_strategies_[0];
    eval_strategy_ = default_strategies_[1];
    save_strategy_ = default_strategies_[2];
    std::vector<std::string> tokens = normalize(argc, argv);
    ParseResult result;
    try {
      std::vector<std::string> reversed(tokens.rbegin(), tokens.rend());
      app_.parse(reversed);
    } catch (const CLI::CallForHelp&) {
      result.message = app_.help();
      return result;
    } catch (const CLI::ExtrasError&) {
      result.exit_code = 2;
      result.message = unknown_flags_message(tokens);
      return result;
    } catch (const CLI::ConversionError& e) {
      // CLI11 says "Could not convert: --flag = value".
      std::string what = e.what();
      const auto colon = what.find(": ");
      const auto eq = what.find(" = ");
      result.exit_code = 2;
      if (colon != std::string::npos && eq != std::string::npos && eq > colon) {
        const std::string flag = what.substr(colon + 2, eq - colon - 2), value = what.substr(eq + 3);
        result.message = "error: " + flag + ": '" + value + "' is not a valid value (bert_qa --help shows what " + flag + " takes)";
      } else {
        result.message = "error: " + what;
      }
      return result;
    } catch (const CLI::ParseError& e) {
      result.exit_code = 2;
      result.message = std::string("error: ") + e.what();
      return result;
    }
    Arguments& a = args_;
    try {
      a.training.logging_strategy = mpt::train::parse_interval_strategy(logging_strategy_, "logging_strategy");
      a.training.eval_strategy = mpt::train::parse_interval_strategy(eval_strategy_, "eval_strategy");
      a.training.save_strategy = mpt::train::parse_save_strategy(save_strategy_);
    } catch (const mpt::Error& e) {
      result.exit_code = 2;
      result.message = std::string("error: ") + e.what();
      return result;
    }
    for (const CLI::Option* o : app_.get_options()) {
      if (o->count() > 0) a.given.push_back(o->get_name());
    }
    for (const std::string& f : ignored_names_)
      if (a.was_given(f)) a.ignored.push_back(f);
    result.args = a;
    return result;
  }

  std::string help() const { return app_.help(); }

 private:
  // A bool flag with an optional value: --flag, --flag true, --flag=False; --no_flag for defaults-true ones.
  void flag(const std::string& name, bool& target, const std::string& description, const std::string& group) {
    const bool default_value = target;
    auto* o = app_.add_option(name, target, description + " [default: " + (default_value ? "true" : "false") + "]");
    o->group(group)->take_last();
    bool_flags_.push_back(name);
    known_.push_back(name);
    if (default_value) {
      const std::string negated = "--no_" + name.substr(2);
      app_.add_flag_callback(
              negated, [&target] { target = false; }, "Set " + name + " to false")
          ->group(group);
      known_.push_back(negated);
    }
  }
  void optional_flag(const std::string& name, std::optional<bool>& target, const std::string& description, const std::string& group) {
    auto* o = app_.add_option(name, target, description);
    o->group(group)->take_last();
    bool_flags_.push_back(name);
    known_.push_back(name);
  }
  template <class T>
  void number(const std::string& name, T& target, const std::string& description, const std::string& group) {
    app_.add_option(name, target, description)->group(group)->capture_default_str()->take_last();
    known_.push_back(name);
  }
  template <class T>
  void optional_number(const std::string& name, std::optional<T>& target, const std::string& description, const std::string& group) {
    app_.add_option(name, target, description)->group(group)->take_last();
    known_.push_back(name);
  }
  void text(const std::string& name, std::string& target, const std::string& description, const std::string& group) {
    app_.add_option(name, target, description)->group(group)->capture_default_str()->take_last();
    known_.push_back(name);
  }
  void optional_text(const std::string& name, std::optional<std::string>& target, const std::string& description, const std::string& group) {
    app_.add_option(name, target, description)->group(group)->take_last();
    known_.push_back(name);
  }
  void choice(const std::string& name, std::string& target, std::vector<std::string> values, const std::string& description,
              const std::string& group) {
    app_.add_option(name, target, description)->group(group)->capture_default_str()->take_last()->check(CLI::IsMember(values));
    known_.push_back(name);
  }
  void strategy(const std::string& name, std::string& target, const std::string& description, const std::string& group) {
    const std::vector<std::string> values =
        name == "--save_strategy" ? std::vector<std::string>{"no", "steps", "epoch", "best"} : std::vector<std::string>{"no", "steps", "epoch"};
    app_.add_option(name, target, description)->group(group)->capture_default_str()->take_last()->check(CLI::IsMember(values));
    known_.push_back(name);
  }
  void ignored_value(const std::string& name, const std::string& group) {
    ignored_values_.emplace_back();
    app_.add_option(name, ignored_values_.back(), "Accepted for compatibility; no effect here")->group(group);
    ignored_names_.push_back(name);
    known_.push_back(name);
  }
  void ignored_flag(const std::string& name, const std::string& group) {
    ignored_values_.emplace_back();
    app_.add_option(name, ignored_values_.back(), "Accepted for compatibility; no effect here")->group(group)->expected(0, 1);
    ignored_names_.push_back(name);
    known_.push_back(name);
  }

  // "--flag value" for bool flags takes the value only when it reads as a bool, so
  // "--do_train --do_eval" and "--do_train True" both work; "--flag=value" stays as is.
  std::vector<std::string> normalize(int argc, const char* const* argv) const {
    std::vector<std::string> out;
    for (int i = 1; i < argc; ++i) {
      std::string token = argv[i];
      const bool is_bool_flag = std::find(bool_flags_.begin(), bool_flags_.end(), token) != bool_flags_.end();
      if (is_bool_flag && i + 1 < argc && detail::parse_bool(argv[i + 1])) {
        out.push_back(token + "=" + (*detail::parse_bool(argv[i + 1]) ? "true" : "false"));
        ++i;
        continue;
      }
      if (is_bool_flag) {
        out.push_back(token + "=true");
        continue;
      }
      // --flag=Value for bool flags: CLI11 reads true/false/1/0; accept Python's True/False too.
      const auto eq = token.find('=');
      if (eq != std::string::npos && std::find(bool_flags_.begin(), bool_flags_.end(), token.substr(0, eq)) != bool_flags_.end()) {
        if (const auto b = detail::parse_bool(token.substr(eq + 1))) token = token.substr(0, eq) + "=" + (*b ? "true" : "false");
      }
      out.push_back(token);
    }
    return out;
  }

  std::string unknown_flags_message(const std::vector<std::string>& tokens) const {
    // Each unknown flag once: the first ten listed, each with the closest known flag; the rest counted.
    constexpr std::size_t listed = 10;
    std::ostringstream message;
    std::unordered_set<std::string> unknown;
    for (const std::string& token : tokens) {
      if (token.rfind("--", 0) != 0) continue;
      const std::string name = token.substr(0, token.find('='));
      if (std::find(known_.begin(), known_.end(), name) != known_.end() || !unknown.insert(name).second) continue;
      if (unknown.size() > listed) continue;
      message << "error: unknown flag " << name;
      if (const auto close = closest_flag(name, known_)) message << "; did you mean " << *close << "?";
      message << "\n";
    }
    if (unknown.size() > listed) {
      const std::size_t more = unknown.size() - listed;
      message << "error: and " << more << " more unknown flag" << (more > 1 ? "s" : "") << "\n";
    }
    if (unknown.empty()) message << "error: unexpected argument(s); every value belongs to a --flag (see --help)\n";
    message << "Run bert_qa --help for the list of flags.";
    return message.str();
  }

  CLI::App app_;
  Arguments args_, defaults_;
  std::string logging_strategy_ = "steps", eval_strategy_ = "no", save_strategy_ = "steps";
  std::array<std::string, 3> default_strategies_;
  std::vector<std::string> bool_flags_, known_, ignored_names_;
  std::deque<std::string> ignored_values_;
};

}  // namespace bert_qa
