#pragma once
// postprocess_qa_predictions: turns per-feature start/end logits into answer
// texts as transformers' examples/pytorch/question-answering/utils_qa.py
// does (n-best over features, max_answer_length, the v2 null score as the
// minimum over an example's features, null_score_diff_threshold), with its
// float32 arithmetic. Writes eval_predictions.json, eval_nbest_predictions.json
// and, for v2, eval_null_odds.json.

#include <mpt/core/error.hpp>
#include <mpt/data/detail/unicode.hpp>
#include <mpt/data/json_io.hpp>
#include <mpt/data/qa_features.hpp>
#include <mpt/data/squad_reader.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace mpt::data {

struct QaPostprocessOptions {
  bool version_2_with_negative = false;
  std::size_t n_best_size = 20;
  std::size_t max_answer_length = 30;
  double null_score_diff_threshold = 0.0;  // compared with the float32 difference, as Python does
};

struct QaNbestEntry {
  std::string text;
  float start_logit = 0;
  float end_logit = 0;
  float probability = 0;
  bool placeholder = false;  // the "empty" entry utils_qa adds when nothing else is left
};

struct QaPredictions {
  bool version_2 = false;
  std::vector<std::string> ids;                  // dataset order
  std::vector<std::string> texts;                // final answer per id ("" = no answer, v2)
  std::vector<std::vector<QaNbestEntry>> nbest;  // best first
  std::vector<float> null_score_diff;            // v2: null score - best non-null score

  std::unordered_map<std::string, std::string> as_map() const {
    std::unordered_map<std::string, std::string> m;
    for (std::size_t i = 0; i < ids.size(); ++i) m.emplace(ids[i], texts[i]);
    return m;
  }
  nlohmann::ordered_json predictions_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < ids.size(); ++i) j[ids[i]] = texts[i];
    return j;
  }
  nlohmann::ordered_json nbest_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto list = nlohmann::ordered_json::array();
      for (const auto& e : nbest[i]) {
        nlohmann::ordered_json o;  // key order as utils_qa's dicts end up
        if (e.placeholder) o["text"] = e.text;
        o["start_logit"] = static_cast<double>(e.start_logit);
        o["end_logit"] = static_cast<double>(e.end_logit);
        if (!e.placeholder) o["text"] = e.text;
        o["probability"] = static_cast<double>(e.probability);
        list.push_back(std::move(o));
      }
      j[ids[i]] = std::move(list);
    }
    return j;
  }
  nlohmann::ordered_json null_odds_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < ids.size() && i < null_score_diff.size(); ++i) j[ids[i]] = static_cast<double>(null_score_diff[i]);
    return j;
  }
  // <output_dir>/<prefix>_predictions.json, _nbest_predictions.json, and
  // _null_odds.json (v2); each written atomically.
  void write(const std::filesystem::path& output_dir, const std::string& prefix = "eval") const {
    const std::string p = prefix.empty() ? "" : prefix + "_";
    write_json_atomic(output_dir / (p + "predictions.json"), predictions_json());
    write_json_atomic(output_dir / (p + "nbest_predictions.json"), nbest_json());
    if (version_2) write_json_atomic(output_dir / (p + "null_odds.json"), null_odds_json());
  }
};

namespace detail {

// numpy's float32 sum (pairwise_sum): 8 partial sums for 8..128 elements.
inline float numpy_sum(const std::vector<float>& v) {
  const std::size_t n = v.size();
  if (n < 8) {
    float s = 0.0f;  // numpy starts from -0.0; same result for these sums
    for (const float x : v) s += x;
    return s;
  }
  if (n <= 128) {
    float r[8];
    for (std::size_t k = 0; k < 8; ++k) r[k] = v[k];
    std::size_t i = 8;
    for (; i + 8 <= n; i += 8)
      for (std::size_t k = 0; k < 8; ++k) r[k] += v[i + k];
    float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += v[i];
    return s;
  }
  const std::size_t half = (n / 2) & ~static_cast<std::size_t>(7);
  return numpy_sum(std::vector<float>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(half))) +
         numpy_sum(std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(half), v.end()));
}

// np.argsort(x)[-1:-n-1:-1]: the n largest, largest first.
inline void top_indices(std::span<const float> x, std::size_t n, std::vector<std::size_t>& out) {
  out.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = i;
  n = std::min(n, x.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(),
                    [&](std::size_t a, std::size_t b) { return x[a] > x[b] || (x[a] == x[b] && a > b); });
  out.resize(n);
}

}  // namespace detail

// start_logits / end_logits: [features.size()][row_length] floats, row f for
// feature f; positions past a feature's length are ignored.
inline QaPredictions postprocess_qa_predictions(const SquadDataset& data, const QaFeatures& features, std::span<const float> start_logits,
                                                std::span<const float> end_logits, std::size_t row_length, const QaPostprocessOptions& options = {}) {
  const std::size_t n_features = features.size();
  if (start_logits.size() != n_features * row_length || end_logits.size() != n_features * row_length)
    mpt::throw_error("postprocess_qa_predictions: expected ", n_features, " x ", row_length, " logits for start and end, got ", start_logits.size(),
                     " and ", end_logits.size());
  std::vector<std::vector<std::size_t>> features_of(data.examples.size());
  for (std::size_t f = 0; f < n_features; ++f) {
    if (features.example_index[f] >= data.examples.size())
      mpt::throw_error("postprocess_qa_predictions: feature ", f, " names example ", features.example_index[f], " of a dataset with ",
                       data.examples.size());
    features_of[features.example_index[f]].push_back(f);
  }

  struct Candidate {
    CharSpan span;
    float score, start_logit, end_logit;
    bool null;
  };
  QaPredictions out;
  out.version_2 = options.version_2_with_negative;
  out.ids.reserve(data.examples.size());
  std::vector<std::size_t> starts, ends;
  std::vector<Candidate> prelim;
  for (std::size_t e = 0; e < data.examples.size(); ++e) {
    const auto& ex = data.examples[e];
    prelim.clear();
    bool have_null = false;
    Candidate min_null{{0, 0}, 0, 0, 0, true};
    for (const auto f : features_of[e]) {
      const auto s_logits = start_logits.subspan(f * row_length, row_length);
      const auto e_logits = end_logits.subspan(f * row_length, row_length);
      const auto offsets = features.offsets_of(f);
      const float feature_null = s_logits[0] + e_logits[0];
      if (!have_null || min_null.score > feature_null) {
        min_null = {{0, 0}, feature_null, s_logits[0], e_logits[0], true};
        have_null = true;
      }
      detail::top_indices(s_logits, options.n_best_size, starts);
      detail::top_indices(e_logits, options.n_best_size, ends);
      for (const auto si : starts) {
        for (const auto ei : ends) {
          if (si >= offsets.size() || ei >= offsets.size() || offsets[si] == no_offset || offsets[ei] == no_offset) continue;
          if (ei < si || ei - si + 1 > options.max_answer_length) continue;
          prelim.push_back({{offsets[si].begin, offsets[ei].end}, s_logits[si] + e_logits[ei], s_logits[si], e_logits[ei], false});
        }
      }
    }
    float null_score = 0;
    if (options.version_2_with_negative && have_null) {
      prelim.push_back(min_null);
      null_score = min_null.score;
    }
    std::stable_sort(prelim.begin(), prelim.end(), [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    if (prelim.size() > options.n_best_size) prelim.resize(options.n_best_size);
    if (options.version_2_with_negative && have_null && std::none_of(prelim.begin(), prelim.end(), [](const Candidate& c) {
          return c.span == CharSpan{0, 0};
        }))
      prelim.push_back(min_null);

    const std::string& context = data.context_of(ex);
    std::vector<std::size_t> cp_byte;  // byte offset of each code point, plus the end
    for (std::size_t i = 0; i < context.size(); ++i)
      if ((static_cast<unsigned char>(context[i]) & 0xC0) != 0x80) cp_byte.push_back(i);
    cp_byte.push_back(context.size());
    const auto slice = [&](CharSpan s) -> std::string {
      const auto n = static_cast<std::int32_t>(cp_byte.size() - 1);
      const std::int32_t b = std::clamp(s.begin, 0, n), en = std::clamp(s.end, 0, n);
      if (en <= b) return {};
      return context.substr(cp_byte[static_cast<std::size_t>(b)], cp_byte[static_cast<std::size_t>(en)] - cp_byte[static_cast<std::size_t>(b)]);
    };
    std::vector<QaNbestEntry> entries;
    std::vector<float> scores;
    for (const auto& c : prelim) {
      entries.push_back({slice(c.span), c.start_logit, c.end_logit, 0, false});
      scores.push_back(c.score);
    }
    if (entries.empty() || (entries.size() == 1 && entries[0].text.empty())) {
      entries.insert(entries.begin(), QaNbestEntry{"empty", 0, 0, 0, true});
      scores.insert(scores.begin(), 0.0f);
    }
    const float max_score = *std::max_element(scores.begin(), scores.end());
    std::vector<float> exp_scores(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) exp_scores[i] = std::exp(scores[i] - max_score);
    const float sum = detail::numpy_sum(exp_scores);
    for (std::size_t i = 0; i < entries.size(); ++i) entries[i].probability = exp_scores[i] / sum;

    out.ids.push_back(ex.id);
    if (!options.version_2_with_negative) {
      out.texts.push_back(entries[0].text);
    } else {
      std::size_t i = 0;
      while (i + 1 < entries.size() && entries[i].text.empty()) ++i;
      const auto& best = entries[i];
      const float diff = null_score - best.start_logit - best.end_logit;
      out.null_score_diff.push_back(diff);
      out.texts.push_back(static_cast<double>(diff) > options.null_score_diff_threshold ? std::string() : best.text);
    }
    out.nbest.push_back(std::move(entries));
  }
  return out;
}

}  // namespace mpt::data
