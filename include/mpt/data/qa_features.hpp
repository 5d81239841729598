#pragma once
// prepare_train_features / prepare_eval_features: the features of
// transformers' run_qa.py (prepare_train_features /
// prepare_validation_features) for BERT: [CLS] question [SEP] context [SEP],
// the question left-stripped, only the context truncated, overflowing
// windows of max_seq_length tokens that overlap by doc_stride tokens.

#include <mpt/core/error.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/data/squad_reader.hpp>
#include <mpt/data/wordpiece_tokenizer.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mpt::data {

struct QaFeatureOptions {
  std::size_t max_seq_length = 384;
  std::size_t doc_stride = 128;
  bool pad_to_max_length = true;  // false: rows keep their length; pad per batch with make_qa_batch
  // Training features drop their offsets unless asked (8 bytes a token: 270 MB
  // for SQuAD train at 384); evaluation features always keep them.
  bool keep_train_offsets = false;
};

// "No offset": the token is not part of the context (question, special, pad).
inline constexpr CharSpan no_offset{-1, -1};

// All features, row-major. Feature i owns tokens [row_begin[i], row_begin[i+1]).
struct QaFeatures {
  std::size_t max_seq_length = 0;
  bool padded = false;
  std::int32_t pad_id = 0;
  std::vector<std::size_t> row_begin{0};
  std::vector<std::int32_t> input_ids;
  std::vector<std::int32_t> token_type_ids;
  std::vector<std::int32_t> attention_mask;
  // Context tokens: code-point span in the example's context; others: no_offset.
  // Empty for training features unless keep_train_offsets.
  std::vector<CharSpan> offsets;
  std::vector<std::size_t> example_index;  // feature -> example of the dataset
  // Training labels (prepare_train_features only): token indices, CLS (0) when
  // the answer is not fully inside the window or the question is unanswerable.
  std::vector<std::int32_t> start_positions;
  std::vector<std::int32_t> end_positions;

  std::size_t size() const { return example_index.size(); }
  std::size_t length(std::size_t i) const { return row_begin[i + 1] - row_begin[i]; }
  std::span<const std::int32_t> input_ids_of(std::size_t i) const { return row(input_ids, i); }
  std::span<const std::int32_t> token_type_ids_of(std::size_t i) const { return row(token_type_ids, i); }
  std::span<const std::int32_t> attention_mask_of(std::size_t i) const { return row(attention_mask, i); }
  std::span<const CharSpan> offsets_of(std::size_t i) const {
    if (offsets.empty()) mpt::throw_error("QaFeatures: built without offsets (set QaFeatureOptions::keep_train_offsets)");
    return row(offsets, i);
  }

 private:
  template <class T>
  std::span<const T> row(const std::vector<T>& v, std::size_t i) const {
    return std::span<const T>(v).subspan(row_begin[i], length(i));
  }
};

// A batch collated from features, owning its [batch_size][seq_len] int32 arrays
// (nn::QaBatch is the model's view of one).
struct CollatedQaBatch {
  std::size_t batch_size = 0;
  std::size_t seq_len = 0;
  std::vector<std::int32_t> input_ids, token_type_ids, attention_mask;
  std::vector<std::int32_t> start_positions, end_positions;  // empty for eval features
  std::vector<std::size_t> feature_index;
};

// Gathers features into `b`, padded to the longest row (dynamic padding) or to
// pad_to when larger. Reuses b's vectors: no allocation once they have grown.
inline void collate_qa_batch(const QaFeatures& f, std::span<const std::size_t> feature_indices, std::size_t pad_to, CollatedQaBatch& b) {
  b.batch_size = feature_indices.size();
  b.seq_len = pad_to;
  for (const auto i : feature_indices) {
    if (i >= f.size()) mpt::throw_error("make_qa_batch: feature index ", i, " out of range (", f.size(), " features)");
    b.seq_len = std::max(b.seq_len, f.length(i));
  }
  const std::size_t n = b.batch_size * b.seq_len;
  b.input_ids.assign(n, f.pad_id);
  b.token_type_ids.assign(n, 0);
  b.attention_mask.assign(n, 0);
  b.start_positions.clear();
  b.end_positions.clear();
  b.feature_index.clear();
  const bool labelled = !f.start_positions.empty();
  for (std::size_t r = 0; r < feature_indices.size(); ++r) {
    const std::size_t i = feature_indices[r];
    const auto copy = [&](std::span<const std::int32_t> src, std::vector<std::int32_t>& dst) {
      std::copy(src.begin(), src.end(), dst.begin() + static_cast<std::ptrdiff_t>(r * b.seq_len));
    };
    copy(f.input_ids_of(i), b.input_ids);
    copy(f.token_type_ids_of(i), b.token_type_ids);
    copy(f.attention_mask_of(i), b.attention_mask);
    if (labelled) {
      b.start_positions.push_back(f.start_positions[i]);
      b.end_positions.push_back(f.end_positions[i]);
    }
    b.feature_index.push_back(i);
  }
}

inline CollatedQaBatch make_qa_batch(const QaFeatures& f, std::span<const std::size_t> feature_indices, std::size_t pad_to = 0) {
  CollatedQaBatch b;
  collate_qa_batch(f, feature_indices, pad_to, b);
  return b;
}

namespace detail {

// Python str.lstrip(): drops leading Unicode whitespace.
inline std::string_view lstrip_python(std::string_view s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t next = pos;
    const std::int32_t cp = decode_utf8(s, next);
    if (cp < 0 || !is_python_space(cp)) break;
    pos = next;
  }
  return s.substr(pos);
}

// body(i) for i in [0, n), chunks of `chunk` items as tasks on mpt's threads (mpt::set_num_threads).
template <class Body>
void for_each_chunk(std::size_t n, std::size_t chunk, Body&& body) {
  mpt::parallel_for((n + chunk - 1) / chunk, [&](std::size_t t) {
    for (std::size_t i = t * chunk; i < std::min(n, (t + 1) * chunk); ++i) body(i);
  });
}

struct QaWindowPlan {
  std::size_t first_feature = 0;
  std::size_t n_windows = 0;
  std::size_t budget = 0;  // context tokens per window
};

inline QaFeatures prepare_qa_features(const SquadDataset& data, const WordPieceTokenizer& tokenizer, const QaFeatureOptions& options, bool training) {
  const std::int32_t cls_id = tokenizer.required_id("[CLS]");
  const std::int32_t sep_id = tokenizer.required_id("[SEP]");
  const std::int32_t pad_id = tokenizer.required_id("[PAD]");
  const std::size_t max_len = options.max_seq_length;
  const std::size_t stride = options.doc_stride;
  const std::size_t n_examples = data.examples.size();

  // Each context once (a paragraph is shared by its questions), then questions.
  std::vector<Encoding> contexts(data.contexts.size());
  std::vector<Encoding> questions(n_examples);
  for_each_chunk(contexts.size(), 8, [&](std::size_t i) { tokenizer.encode_into(data.contexts[i], contexts[i]); });
  for_each_chunk(n_examples, 64, [&](std::size_t i) { tokenizer.encode_into(lstrip_python(data.examples[i].question), questions[i]); });

  // Windows of the context, as tokenizers' Encoding::truncate with a stride:
  // starts 0, budget-stride, ... until a window reaches the end.
  std::vector<QaWindowPlan> plan(n_examples);
  std::size_t n_features = 0;
  for (std::size_t e = 0; e < n_examples; ++e) {
    const std::size_t q_len = questions[e].size();
    const std::size_t c_len = contexts[data.examples[e].context_index].size();
    QaWindowPlan& p = plan[e];
    p.first_feature = n_features;
    if (q_len + c_len + 3 <= max_len) {
      p.budget = c_len;
      p.n_windows = 1;
    } else {
      if (q_len + 3 >= max_len)
        mpt::throw_error("prepare features: question of example '", data.examples[e].id, "' has ", q_len,
                         " tokens, leaving no room for the context in max_seq_length ", max_len);
      p.budget = max_len - q_len - 3;
      if (stride >= p.budget)
        mpt::throw_error("prepare features: doc_stride ", stride, " must be smaller than the ", p.budget,
                         " context tokens that fit beside the question of example '", data.examples[e].id, "' (max_seq_length ", max_len, ")");
      const std::size_t step = p.budget - stride;
      p.n_windows = 1 + (c_len - p.budget + step - 1) / step;
    }
    n_features += p.n_windows;
  }

  QaFeatures out;
  out.max_seq_length = max_len;
  out.padded = options.pad_to_max_length;
  out.pad_id = pad_id;
  out.example_index.resize(n_features);
  out.row_begin.assign(n_features + 1, 0);
  for (std::size_t e = 0; e < n_examples; ++e) {
    const std::size_t q_len = questions[e].size();
    const std::size_t c_len = contexts[data.examples[e].context_index].size();
    const QaWindowPlan& p = plan[e];
    for (std::size_t w = 0; w < p.n_windows; ++w) {
      const std::size_t f = p.first_feature + w;
      const std::size_t start = w * (p.budget - (p.n_windows > 1 ? stride : 0));
      const std::size_t len = std::min(p.budget, c_len - start);
      out.example_index[f] = e;
      out.row_begin[f + 1] = out.padded ? max_len : q_len + len + 3;
    }
  }
  for (std::size_t f = 0; f < n_features; ++f) out.row_begin[f + 1] += out.row_begin[f];
  const std::size_t n_tokens = out.row_begin.back();
  out.input_ids.assign(n_tokens, pad_id);
  out.token_type_ids.assign(n_tokens, 0);
  out.attention_mask.assign(n_tokens, 0);
  const bool keep_offsets = !training || options.keep_train_offsets;
  if (keep_offsets) out.offsets.assign(n_tokens, no_offset);
  if (training) {
    out.start_positions.assign(n_features, 0);
    out.end_positions.assign(n_features, 0);
  }

  for_each_chunk(n_examples, 16, [&](std::size_t e) {
    {
      const SquadExample& ex = data.examples[e];
      const Encoding& q = questions[e];
      const Encoding& c = contexts[ex.context_index];
      const QaWindowPlan& p = plan[e];
      const std::size_t q_len = q.size();
      for (std::size_t w = 0; w < p.n_windows; ++w) {
        const std::size_t f = p.first_feature + w;
        const std::size_t c_start = w * (p.budget - (p.n_windows > 1 ? stride : 0));
        const std::size_t c_count = std::min(p.budget, c.size() - c_start);
        const std::size_t base = out.row_begin[f];
        const std::size_t row_len = out.row_begin[f + 1] - base;
        std::int32_t* ids = out.input_ids.data() + base;
        std::int32_t* types = out.token_type_ids.data() + base;
        std::int32_t* mask = out.attention_mask.data() + base;
        CharSpan* offs = keep_offsets ? out.offsets.data() + base : nullptr;
        std::size_t t = 0;
        ids[t++] = cls_id;
        for (std::size_t k = 0; k < q_len; ++k) ids[t++] = q.ids[k];
        ids[t++] = sep_id;
        const std::size_t context_first = t;
        for (std::size_t k = 0; k < c_count; ++k) {
          types[t] = 1;
          if (offs != nullptr) offs[t] = c.offsets[c_start + k];
          ids[t++] = c.ids[c_start + k];
        }
        const std::size_t context_last = t - 1;  // run_qa's token_end_index before its walk
        types[t] = 1;
        ids[t++] = sep_id;
        std::fill(mask, mask + t, 1);
        if (!training) continue;

        // prepare_train_features' offset walk, on the offsets HF gives train
        // features: context spans, question spans, (0, 0) for special and pad
        // tokens. Kept literally, including its walk into (0, 0) tokens.
        std::int32_t start_position = 0;
        std::int32_t end_position = 0;
        if (!ex.answers.empty() && c_count > 0) {
          const auto hf_offset = [&](std::size_t i) -> CharSpan {
            if (i >= context_first && i <= context_last) return c.offsets[c_start + (i - context_first)];
            if (i >= 1 && i <= q_len) return q.offsets[i - 1];
            return CharSpan{0, 0};
          };
          const auto start_char = static_cast<std::int64_t>(ex.answers[0].answer_start);
          const auto end_char = start_char + static_cast<std::int64_t>(count_code_points(ex.answers[0].text));
          if (hf_offset(context_first).begin <= start_char && hf_offset(context_last).end >= end_char) {
            std::size_t s = context_first;
            while (s < row_len && hf_offset(s).begin <= start_char) ++s;
            start_position = static_cast<std::int32_t>(s - 1);
            std::size_t en = context_last;
            while (en > 0 && hf_offset(en).end >= end_char) --en;  // guard: Python would wrap to -1
            end_position = static_cast<std::int32_t>(en + 1);
          }
        }
        out.start_positions[f] = start_position;
        out.end_positions[f] = end_position;
      }
    }
  });
  return out;
}

}  // namespace detail

// Training features with start/end token labels (run_qa prepare_train_features).
inline QaFeatures prepare_train_features(const SquadDataset& data, const WordPieceTokenizer& tokenizer, const QaFeatureOptions& options = {}) {
  return detail::prepare_qa_features(data, tokenizer, options, true);
}

// Evaluation features: example_index and context-only offsets
// (run_qa prepare_validation_features).
inline QaFeatures prepare_eval_features(const SquadDataset& data, const WordPieceTokenizer& tokenizer, const QaFeatureOptions& options = {}) {
  return detail::prepare_qa_features(data, tokenizer, options, false);
}

}  // namespace mpt::data
