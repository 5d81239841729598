#pragma once
// Extractive question answering (SQuAD) for the Trainer, as run_qa.py wires it:
//
//   QaTrainSet train_set{train_features};          // a TrainDataset: labelled features, collated per batch
//   trainer.train(train_set);
//   QaEvalSet eval{examples, eval_features, options};
//   trainer.set_evaluate(eval.evaluator());       // forward in batches, utils_qa post-processing, the
//                                                 // official metric; writes eval_predictions.json & co.
//
// Evaluation runs the model without dropout, batch by batch (per_device_eval_batch_size),
// gathers start/end logits [features x max_seq_length] (-100 past a row's end, as
// run_qa pads them), then post-processes and scores.

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/data/qa_features.hpp>
#include <mpt/dist/communicator.hpp>
#include <mpt/data/qa_postprocess.hpp>
#include <mpt/data/squad_metrics.hpp>
#include <mpt/data/squad_reader.hpp>
#include <mpt/nn/bert.hpp>
#include <mpt/train/trainer.hpp>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace mpt::train {

// Training features as a TrainDataset.
struct QaTrainSet {
  const data::QaFeatures& features;

  struct batch_type {
    data::CollatedQaBatch data;
    nn::QaBatch view() const {
      const auto b = static_cast<std::int64_t>(data.batch_size), s = static_cast<std::int64_t>(data.seq_len);
      const bool labelled = !data.start_positions.empty();
      return {TensorView<const std::int32_t>(data.input_ids.data(), Shape{b, s}),
              TensorView<const std::int32_t>(data.token_type_ids.data(), Shape{b, s}),
              TensorView<const std::int32_t>(data.attention_mask.data(), Shape{b, s}),
              labelled ? TensorView<const std::int32_t>(data.start_positions.data(), Shape{b}) : TensorView<const std::int32_t>{},
              labelled ? TensorView<const std::int32_t>(data.end_positions.data(), Shape{b}) : TensorView<const std::int32_t>{}};
    }
    std::size_t tokens() const noexcept { return data.batch_size * data.seq_len; }
  };

  std::size_t size() const noexcept { return features.size(); }
  void collate(std::span<const std::size_t> indices, batch_type& batch) const { data::collate_qa_batch(features, indices, 0, batch.data); }
};

struct QaEvalOptions {
  std::size_t batch_size = 8;
  // Data-parallel: each rank predicts every ranks-th batch, the logits are all-reduced,
  // every rank post-processes (the same metrics everywhere), rank 0 writes the files.
  dist::Communicator* comm = nullptr;
  data::QaPostprocessOptions postprocess;
  // Where <prefix>_predictions.json, _nbest_predictions.json (and _null_odds.json) go; empty: not written.
  std::filesystem::path output_dir;
  std::string prefix = "eval";
};

// Start and end logits of every feature, [features x row_length].
struct QaLogits {
  std::vector<float> start, end;
  std::size_t row_length = 0;
};

// Forward passes over all features, without dropout; progress(done, total) after each batch.
template <class Model>
QaLogits predict_qa_logits(Model& model, const data::QaFeatures& features, std::size_t batch_size,
                           const std::function<void(std::size_t, std::size_t)>& progress = {}, dist::Communicator& comm = dist::single_process()) {
  if (batch_size == 0) throw_error("predict_qa_logits: the batch size must be at least 1");
  QaLogits out;
  for (std::size_t f = 0; f < features.size(); ++f) out.row_length = std::max(out.row_length, features.length(f));
  // Rows this rank does not predict stay 0 and take the others' values in the all-reduce.
  const float pad = comm.size() > 1 ? 0.0f : -100.0f;
  out.start.assign(features.size() * out.row_length, pad);
  out.end.assign(features.size() * out.row_length, pad);
  const std::size_t batches = (features.size() + batch_size - 1) / batch_size;
  QaTrainSet::batch_type batch;
  std::vector<std::size_t> indices;
  for (std::size_t k = 0; k < batches; ++k) {
    if (k % static_cast<std::size_t>(comm.size()) != static_cast<std::size_t>(comm.rank())) continue;
    indices.resize(std::min(batch_size, features.size() - k * batch_size));
    std::iota(indices.begin(), indices.end(), k * batch_size);
    data::collate_qa_batch(features, indices, 0, batch.data);
    batch.data.start_positions.clear();  // no loss in evaluation
    batch.data.end_positions.clear();
    const auto result = model.forward(batch.view(), {.training = false, .reuse_packed_weights = true});
    const std::size_t s = batch.data.seq_len;
    for (std::size_t r = 0; r < indices.size(); ++r) {
      std::fill_n(out.start.begin() + static_cast<std::ptrdiff_t>(indices[r] * out.row_length), out.row_length, -100.0f);
      std::fill_n(out.end.begin() + static_cast<std::ptrdiff_t>(indices[r] * out.row_length), out.row_length, -100.0f);
      for (std::size_t t = 0; t < s; ++t) {
        out.start[indices[r] * out.row_length + t] =
            static_cast<float>(result.start_logits(static_cast<std::int64_t>(r), static_cast<std::int64_t>(t)));
        out.end[indices[r] * out.row_length + t] = static_cast<float>(result.end_logits(static_cast<std::int64_t>(r), static_cast<std::int64_t>(t)));
      }
    }
    if (progress) progress(k + 1, batches);
  }
  if constexpr (requires { model.release_packed_weights(); }) model.release_packed_weights();
  if (comm.size() > 1) {
    comm.allreduce_sum(std::span<float>(out.start));
    comm.allreduce_sum(std::span<float>(out.end));
  }
  return out;
}

// Whether the examples carry gold answers to score against.
inline bool has_gold_answers(const data::SquadDataset& examples) {
  return std::any_of(examples.examples.begin(), examples.examples.end(), [](const data::SquadExample& e) { return e.answers_given; });
}

// The evaluation (or prediction) of run_qa: logits, utils_qa post-processing, files, metrics.
template <class Model>
EvalResult evaluate_qa(Model& model, const data::SquadDataset& examples, const data::QaFeatures& features, const QaEvalOptions& options,
                       const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  dist::Communicator& comm = options.comm != nullptr ? *options.comm : dist::single_process();
  const QaLogits logits = predict_qa_logits(model, features, options.batch_size, progress, comm);
  const data::QaPredictions predictions =
      data::postprocess_qa_predictions(examples, features, logits.start, logits.end, logits.row_length, options.postprocess);
  if (!options.output_dir.empty() && comm.is_main()) predictions.write(options.output_dir, options.prefix);
  EvalResult result;
  result.samples = features.size();
  result.batches = (features.size() + options.batch_size - 1) / options.batch_size;
  if (has_gold_answers(examples)) result.metrics = data::squad_evaluate(examples, predictions).to_json();
  return result;
}

// An evaluation set bound to its options: the Trainer's evaluate function.
struct QaEvalSet {
  const data::SquadDataset& examples;
  const data::QaFeatures& features;
  QaEvalOptions options;

  template <class Model>
  std::function<EvalResult(Model&, const std::function<void(std::size_t, std::size_t)>&)> evaluator() const {
    return [this](Model& model, const std::function<void(std::size_t, std::size_t)>& progress) {
      return evaluate_qa(model, examples, features, options, progress);
    };
  }
};

}  // namespace mpt::train
