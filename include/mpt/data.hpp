#pragma once
// mpt/data: the SQuAD pipeline. BERT WordPiece tokenizer with code-point
// offsets, SQuAD reading (nested, flattened, JSON Lines), run_qa features,
// utils_qa post-processing and the official SQuAD v1.1/v2.0 metrics.
//
//   using namespace mpt::data;
//   const auto tok = WordPieceTokenizer::from_vocab_file("vocab.txt");   // tokenizer_config.json honoured
//   const auto train = read_squad("train-v1.1.json");                      // nested / flattened / .jsonl
//   const auto features = prepare_train_features(train, tok, {384, 128, true});
//   auto batch = make_qa_batch(features, indices);                         // int32 [batch][seq_len]
//   ...
//   const auto dev = read_squad("dev-v1.1.json");
//   const auto eval = prepare_eval_features(dev, tok, {384, 128, true});
//   // model -> start/end logits, float [eval.size()][384]
//   const auto preds = postprocess_qa_predictions(dev, eval, start, end, 384, {dev.version_2});
//   preds.write(output_dir);                          // eval_predictions.json, eval_nbest_predictions.json, ...
//   write_json_atomic(output_dir / "eval_results.json", squad_evaluate(dev, preds).to_json());
#include <mpt/data/json_io.hpp>
#include <mpt/data/qa_features.hpp>
#include <mpt/data/qa_postprocess.hpp>
#include <mpt/data/squad_metrics.hpp>
#include <mpt/data/squad_reader.hpp>
#include <mpt/data/wordpiece_tokenizer.hpp>
