// bert_qa's run after its inputs are read and checked: train (resuming from a
// checkpoint), save, evaluate, predict, write the results files. One template over
// the precision policy and the weight policy; its four instances are compiled in
// run_fp32.cpp and run_bf16.cpp, beside main (bert_qa.cpp), so that the program
// builds on two cores at once.
#pragma once

#include "outputs.hpp"
#include "run_qa_args.hpp"

#include <mpt/mpt.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

namespace bert_qa {

namespace fs = std::filesystem;

// Everything the run needs, read and checked before any training (prepare, in bert_qa.cpp).
struct Inputs {
  mpt::nn::BertConfig config;
  fs::path model_folder;  // empty: from scratch
  fs::path vocab;
  bool do_lower_case = true;
  std::optional<mpt::data::WordPieceTokenizer> tokenizer;
  std::optional<mpt::data::SquadDataset> train, eval, predict;
  mpt::data::QaFeatures train_features, eval_features, predict_features;
  std::size_t max_seq_length = 384;
};

inline std::string thousands(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  std::string s = buf, out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0 && s[i - 1] != '-') out += ',';
    out += s[i];
  }
  return out;
}

// --profile: where the training time went, per region of mpt::profile (exclusive times,
// every step, evaluation during training included), as a table and as profile.json.
inline void write_profile(const fs::path& output_dir, double train_seconds) {
  std::printf("\n***** Where the training time went (--profile: %.1f s) *****\n%s", train_seconds, mpt::profile::table(train_seconds).c_str());
  nlohmann::ordered_json regions = nlohmann::ordered_json::array();
  for (const auto& e : mpt::profile::report()) {
    regions.push_back(
        {{"region", e.path}, {"seconds", e.seconds}, {"calls", e.calls}, {"share", train_seconds > 0 ? e.seconds / train_seconds : 0.0}});
  }
  const nlohmann::ordered_json profile = {{"train_seconds", train_seconds}, {"regions", regions}};
  mpt::io::write_file_atomic(output_dir / "profile.json", profile.dump(2) + "\n");
  std::printf("bert_qa: wrote %s\n", (output_dir / "profile.json").c_str());
}

template <class P, class Weights>
int run(const Arguments& a, Inputs& in, const std::optional<fs::path>& checkpoint, mpt::dist::Communicator& comm) {
  const bool main_process = comm.is_main();  // rank 0 alone writes the outputs
  using Model = mpt::nn::BertForQuestionAnswering<P>;
  const auto& args = a.training;
  const fs::path output_dir = args.output_dir;
  Model model(in.config);
  if (!in.model_folder.empty()) {
    // Rank 0 alone prints transformers' two warnings; a new QA head is drawn from --seed.
    model.load_pretrained(in.model_folder, main_process ? mpt::io::warn_to_stderr : nullptr, args.seed);
  } else {
    model.init_weights(args.seed);
  }
  mpt::train::Trainer<Model, mpt::optim::AdamW<P, Weights>> trainer(model, args);
  trainer.set_communicator(comm);
  trainer.set_bucket_bytes(static_cast<std::size_t>(a.mpt.ddp_bucket_cap_mb * 1024 * 1024));
  trainer.set_verify_replicas(a.mpt.debug_ranks);
  if (a.mpt.early_stopping_patience) {
    trainer.add_callback(std::make_unique<mpt::train::EarlyStoppingCallback>(*a.mpt.early_stopping_patience, a.mpt.early_stopping_threshold));
  }
  trainer.set_save_extra([&](const fs::path& dir) {
    bert_qa::save_tokenizer(dir, in.vocab, in.do_lower_case, static_cast<std::int64_t>(in.max_seq_length > 512 ? in.max_seq_length : 512));
  });
  mpt::data::QaPostprocessOptions post;
  post.version_2_with_negative = a.data.version_2_with_negative;
  post.n_best_size = static_cast<std::size_t>(a.data.n_best_size);
  post.max_answer_length = static_cast<std::size_t>(a.data.max_answer_length);
  post.null_score_diff_threshold = a.data.null_score_diff_threshold;
  std::optional<mpt::train::QaEvalSet> eval_set;
  if (in.eval) {
    eval_set.emplace(mpt::train::QaEvalSet{
        *in.eval, in.eval_features, {static_cast<std::size_t>(args.per_device_eval_batch_size), &comm, post, output_dir, "eval"}});
    trainer.set_evaluate(eval_set->template evaluator<Model>());
  }

  fs::create_directories(output_dir);
  double train_tokens_per_second = 0, train_seconds = 0;
  if (args.do_train) {
    if (checkpoint && !args.resume_from_checkpoint) {
      std::printf(
          "Checkpoint detected, resuming training at %s. To avoid this behavior, change the `--output_dir` or "
          "add `--overwrite_output_dir` to train from scratch.\n",
          checkpoint->c_str());
    }
    const mpt::train::QaTrainSet train_set{in.train_features};
    const std::int64_t tokens_before = trainer.state().num_input_tokens_seen;
    mpt::profile::enable(a.mpt.profile);
    const auto train_started = std::chrono::steady_clock::now();
    const auto output = trainer.train(train_set, checkpoint);
    train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_started).count();
    mpt::profile::enable(false);
    if (output.stopped_by_signal != 0) return 128 + output.stopped_by_signal;
    if (main_process) trainer.save_model(output_dir);
    nlohmann::ordered_json metrics;
    for (const char* key : {"epoch", "total_flos", "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second"})
      metrics[key] = output.metrics[key];
    metrics["train_samples"] = in.train_features.size();
    const double runtime = output.metrics["train_runtime"].template get<double>();
    train_tokens_per_second = runtime > 0 ? static_cast<double>(trainer.state().num_input_tokens_seen - tokens_before) / runtime : 0;
    metrics["train_tokens_per_second"] = std::round(train_tokens_per_second * 1000) / 1000;
    for (const char* key : {"parameters_bytes", "gradients_bytes", "optimizer_state_bytes", "activations_bytes", "peak_rss_bytes"})
      metrics[key] = output.metrics[key];
    bert_qa::log_metrics("train", metrics);
    if (main_process) {
      bert_qa::save_metrics(output_dir, "train", metrics);
      trainer.save_state(output_dir);
      mpt::io::write_file_atomic(output_dir / "training_args.json", args.to_json().dump(2) + "\n");
    }
  }

  std::optional<nlohmann::ordered_json> eval_metrics;
  if (args.do_eval) {
    std::printf("***** Running Evaluation *****\n  Num examples = %zu (%zu features)\n  Batch size = %lld\n", in.eval->size(),
                in.eval_features.size(), static_cast<long long>(args.per_device_eval_batch_size));
    nlohmann::ordered_json metrics = trainer.evaluate();
    if (args.do_train) metrics["epoch"] = trainer.state().epoch;
    metrics["eval_samples"] = in.eval_features.size();
    const double runtime = metrics["eval_runtime"].get<double>();
    if (runtime > 0) {
      metrics["eval_tokens_per_second"] = std::round(static_cast<double>(in.eval_features.row_begin.back()) / runtime * 1000) / 1000;
    }
    bert_qa::log_metrics("eval", metrics);
    if (main_process) bert_qa::save_metrics(output_dir, "eval", metrics);
    eval_metrics = metrics;
    if (args.do_train && main_process) trainer.save_state(output_dir);
  }

  if (args.do_predict) {
    std::printf("***** Running Prediction *****\n  Num examples = %zu (%zu features)\n", in.predict->size(), in.predict_features.size());
    const mpt::train::QaEvalOptions options{static_cast<std::size_t>(args.per_device_eval_batch_size), &comm, post, output_dir, "predict"};
    const auto started = std::chrono::steady_clock::now();
    const mpt::train::EvalResult result = mpt::train::evaluate_qa(model, *in.predict, in.predict_features, options);
    const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    nlohmann::ordered_json metrics;
    for (const auto& [k, v] : result.metrics.items()) metrics["test_" + k] = v;
    metrics["test_runtime"] = std::round(runtime * 1e4) / 1e4;
    if (runtime > 0) {
      metrics["test_samples_per_second"] = std::round(static_cast<double>(result.samples) / runtime * 1e3) / 1e3;
      metrics["test_steps_per_second"] = std::round(static_cast<double>(result.batches) / runtime * 1e3) / 1e3;
    }
    metrics["predict_samples"] = in.predict_features.size();
    bert_qa::log_metrics("predict", metrics);
    if (main_process) bert_qa::save_metrics(output_dir, "predict", metrics);
  }

  if ((args.do_train || args.do_eval) && main_process) {
    bert_qa::write_training_curves(output_dir / "training_curves.svg", trainer.state().log_history);
  }

  if (a.mpt.profile && args.do_train && main_process) write_profile(output_dir, train_seconds);

  // The summary a person looks for.
  std::printf("\n");
  if (eval_metrics) {
    const auto& e = *eval_metrics;
    const char* em_key = e.contains("eval_exact_match") ? "eval_exact_match" : "eval_exact";
    if (e.contains(em_key) && e.contains("eval_f1")) {
      std::printf("bert_qa: EM %.2f  F1 %.2f on %zu questions of %s\n", e[em_key].get<double>(), e["eval_f1"].get<double>(), in.eval->size(),
                  a.data.validation_file.c_str());
    }
  }
  if (args.do_train) {
    const auto mem = trainer.memory();
    std::printf(
        "bert_qa: training %s tokens/s (%s), evaluation %s tokens/s; peak RSS %.2f GiB; parameters %.1f MiB, "
        "gradients %.1f MiB, optimizer state %.1f MiB, activations %.1f MiB\n",
        thousands(train_tokens_per_second).c_str(), args.bf16 ? "bf16" : "fp32",
        eval_metrics && eval_metrics->contains("eval_tokens_per_second") ? thousands((*eval_metrics)["eval_tokens_per_second"].get<double>()).c_str()
                                                                         : "-",
        static_cast<double>(mem.peak_rss) / (1 << 30), static_cast<double>(mem.parameters) / (1 << 20),
        static_cast<double>(mem.gradients) / (1 << 20), static_cast<double>(mem.optimizer_state) / (1 << 20),
        static_cast<double>(mem.activations) / (1 << 20));
  }
  std::printf("bert_qa: outputs in %s\n", output_dir.c_str());
  return 0;
}

// The four runs main chooses from: compiled in run_fp32.cpp and run_bf16.cpp, not where this is included.
using Run = int(const Arguments&, Inputs&, const std::optional<fs::path>&, mpt::dist::Communicator&);
extern template Run run<mpt::precision::fp32, mpt::optim::weights::direct>;
extern template Run run<mpt::precision::bf16_mixed, mpt::optim::weights::fp32_master>;
extern template Run run<mpt::precision::bf16_mixed, mpt::optim::weights::split_master>;
extern template Run run<mpt::precision::bf16_mixed, mpt::optim::weights::stochastic_rounding>;

}  // namespace bert_qa
