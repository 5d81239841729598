#pragma once
// mpt/data: the SQuAD pipeline. BERT WordPiece tokenizer with code-point
// offsets, SQuAD reading (nested, flattened, JSON Lines), run_qa features,
// utils_qa post-processing and the official SQuAD v1.1/v2.0 metrics.
#include <mpt/data/json_io.hpp>
#include <mpt/data/qa_features.hpp>
#include <mpt/data/qa_postprocess.hpp>
#include <mpt/data/squad_metrics.hpp>
#include <mpt/data/squad_reader.hpp>
#include <mpt/data/wordpiece_tokenizer.hpp>
