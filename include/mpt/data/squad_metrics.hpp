#pragma once
// squad_evaluate: the official SQuAD v1.1 and v2.0 evaluation scripts
// (evaluate-v1.1.py, evaluate-v2.0.py; as wrapped by Hugging Face's
// "squad" / "squad_v2" metrics that run_qa.py reports).

#include <mpt/core/error.hpp>
#include <mpt/data/detail/unicode.hpp>
#include <mpt/data/qa_postprocess.hpp>
#include <mpt/data/squad_reader.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mpt::data {

// normalize_answer of the official scripts: lower-case, drop ASCII
// punctuation (string.punctuation), replace the words a/an/the by a space
// (regex \b(a|an|the)\b), collapse whitespace (str.split / join).
inline std::string normalize_answer(std::string_view s) {
  std::vector<std::int32_t> original;
  original.reserve(s.size());
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::int32_t cp = detail::decode_utf8(s, pos);
    if (cp < 0) mpt::throw_error("normalize_answer: invalid UTF-8");
    original.push_back(cp);
  }
  const auto is_letter = [](std::int32_t c) {
    const auto cat = detail::category(c);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
  };
  std::vector<std::int32_t> chars;
  chars.reserve(original.size());
  for (std::size_t k = 0; k < original.size(); ++k) {
    const std::int32_t cp = original[k];
    std::array<std::int32_t, 2> lowered{};
    std::size_t n = detail::to_lowercase(cp, lowered);
    // str.lower()'s Final_Sigma: a capital sigma ending a word becomes ς
    // (approximation: a letter before, no letter after).
    if (cp == 0x3A3 && k > 0 && is_letter(original[k - 1]) && (k + 1 == original.size() || !is_letter(original[k + 1]))) {
      lowered[0] = 0x3C2;
      n = 1;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::int32_t c = lowered[i];
      const bool ascii_punct = (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
      if (!ascii_punct) chars.push_back(c);
    }
  }
  // A match of \b(a|an|the)\b is a whole run of word characters equal to an article.
  std::vector<std::int32_t> no_articles;
  no_articles.reserve(chars.size());
  for (std::size_t i = 0; i < chars.size();) {
    if (!detail::is_python_word_char(chars[i])) {
      no_articles.push_back(chars[i++]);
      continue;
    }
    std::size_t j = i;
    while (j < chars.size() && detail::is_python_word_char(chars[j])) ++j;
    const auto is = [&](std::string_view w) {
      if (j - i != w.size()) return false;
      for (std::size_t k = 0; k < w.size(); ++k)
        if (chars[i + k] != static_cast<unsigned char>(w[k])) return false;
      return true;
    };
    if (is("a") || is("an") || is("the")) {
      no_articles.push_back(' ');
    } else {
      no_articles.insert(no_articles.end(), chars.begin() + static_cast<std::ptrdiff_t>(i), chars.begin() + static_cast<std::ptrdiff_t>(j));
    }
    i = j;
  }
  std::string out;
  bool pending_space = false;
  for (const auto c : no_articles) {
    if (detail::is_python_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    detail::append_utf8(out, c);
  }
  return out;
}

namespace detail {
inline std::vector<std::string> answer_tokens(std::string_view s) {
  const std::string norm = normalize_answer(s);
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < norm.size()) {
    const std::size_t j = std::min(norm.find(' ', i), norm.size());
    tokens.emplace_back(norm.substr(i, j - i));
    i = j + 1;
  }
  return tokens;
}

inline std::size_t common_token_count(std::vector<std::string> a, std::vector<std::string> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::size_t n = 0;
  for (std::size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++n, ++i, ++j;
    }
  }
  return n;
}
}  // namespace detail

// exact_match_score / compute_exact: 1 when the normalized strings are equal.
inline double squad_exact(std::string_view prediction, std::string_view gold) {
  return normalize_answer(prediction) == normalize_answer(gold) ? 1.0 : 0.0;
}

// Token F1. v1.1 (f1_score): 0 when no token is shared, even if both are
// empty. v2.0 (compute_f1): when either side has no token, 1 if both have none.
inline double squad_f1(std::string_view prediction, std::string_view gold, bool version_2 = false) {
  const auto pred = detail::answer_tokens(prediction);
  const auto truth = detail::answer_tokens(gold);
  if (version_2 && (pred.empty() || truth.empty())) return pred.empty() && truth.empty() ? 1.0 : 0.0;
  const std::size_t same = detail::common_token_count(pred, truth);
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(pred.size());
  const double recall = static_cast<double>(same) / static_cast<double>(truth.size());
  return 2.0 * precision * recall / (precision + recall);
}

struct SquadMetrics {
  bool version_2 = false;
  double exact = 0, f1 = 0;
  std::size_t total = 0;
  // v2 only:
  double has_ans_exact = 0, has_ans_f1 = 0, no_ans_exact = 0, no_ans_f1 = 0;
  std::size_t has_ans_total = 0, no_ans_total = 0;
  double best_exact = 0, best_exact_thresh = 0, best_f1 = 0, best_f1_thresh = 0;
  std::vector<std::string> missing_ids;  // questions without a prediction

  // v1: {"exact_match", "f1"} (HF "squad"); v2: the keys of HF "squad_v2".
  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json j;
    if (!version_2) {
      j["exact_match"] = exact;
      j["f1"] = f1;
      return j;
    }
    j["exact"] = exact;
    j["f1"] = f1;
    j["total"] = total;
    if (has_ans_total > 0) {
      j["HasAns_exact"] = has_ans_exact;
      j["HasAns_f1"] = has_ans_f1;
      j["HasAns_total"] = has_ans_total;
    }
    if (no_ans_total > 0) {
      j["NoAns_exact"] = no_ans_exact;
      j["NoAns_f1"] = no_ans_f1;
      j["NoAns_total"] = no_ans_total;
    }
    j["best_exact"] = best_exact;
    j["best_exact_thresh"] = best_exact_thresh;
    j["best_f1"] = best_f1;
    j["best_f1_thresh"] = best_f1_thresh;
    return j;
  }
};

struct SquadEvalOptions {
  std::optional<bool> version_2;  // unset: the dataset's version_2
  // v2: no-answer probability per id (missing ids: 0.0, as run_qa passes).
  std::unordered_map<std::string, double> na_probs;
  double na_prob_thresh = 1.0;
};

// Scores predictions (id -> answer text; "" = no answer) against the dataset.
// v1.1: a question without a prediction scores 0 and counts in the total.
// v2.0: it is skipped (the total counts scored questions), as the script.
inline SquadMetrics squad_evaluate(const SquadDataset& data, const std::unordered_map<std::string, std::string>& predictions,
                                   const SquadEvalOptions& options = {}) {
  SquadMetrics m;
  m.version_2 = options.version_2.value_or(data.version_2);
  if (!m.version_2) {
    double em = 0, f1 = 0;
    for (const auto& ex : data.examples) {
      ++m.total;
      const auto it = predictions.find(ex.id);
      if (it == predictions.end()) {
        m.missing_ids.push_back(ex.id);
        continue;
      }
      double best_em = 0, best_f1 = 0;
      for (const auto& a : ex.answers) {
        best_em = std::max(best_em, squad_exact(it->second, a.text));
        best_f1 = std::max(best_f1, squad_f1(it->second, a.text, false));
      }
      em += best_em;
      f1 += best_f1;
    }
    if (m.total > 0) {
      m.exact = 100.0 * em / static_cast<double>(m.total);
      m.f1 = 100.0 * f1 / static_cast<double>(m.total);
    }
    return m;
  }

  struct Scored {
    std::size_t example;
    double exact, f1, na_prob;
    bool has_ans, predicted_text;
  };
  std::vector<Scored> scored;
  std::size_t n_no_ans_all = 0;
  for (std::size_t e = 0; e < data.examples.size(); ++e) {
    const auto& ex = data.examples[e];
    const bool has_ans = !ex.answers.empty();
    n_no_ans_all += !has_ans;
    const auto it = predictions.find(ex.id);
    if (it == predictions.end()) {
      m.missing_ids.push_back(ex.id);
      continue;
    }
    // Gold answers that normalize to nothing are dropped; none left -> [""].
    std::vector<std::string_view> golds;
    for (const auto& a : ex.answers)
      if (!normalize_answer(a.text).empty()) golds.push_back(a.text);
    if (golds.empty()) golds.push_back("");
    double best_em = 0, best_f1 = 0;
    for (const auto g : golds) {
      best_em = std::max(best_em, squad_exact(it->second, g));
      best_f1 = std::max(best_f1, squad_f1(it->second, g, true));
    }
    const auto na = options.na_probs.find(ex.id);
    scored.push_back({e, best_em, best_f1, na == options.na_probs.end() ? 0.0 : na->second, has_ans, !it->second.empty()});
  }
  // apply_no_ans_threshold, then make_eval_dict over all / HasAns / NoAns.
  double em = 0, f1 = 0, ha_em = 0, ha_f1 = 0, na_em = 0, na_f1 = 0;
  for (const auto& s : scored) {
    const bool pred_na = s.na_prob > options.na_prob_thresh;
    const double e = pred_na ? (s.has_ans ? 0.0 : 1.0) : s.exact;
    const double f = pred_na ? (s.has_ans ? 0.0 : 1.0) : s.f1;
    em += e, f1 += f;
    if (s.has_ans) {
      ha_em += e, ha_f1 += f, ++m.has_ans_total;
    } else {
      na_em += e, na_f1 += f, ++m.no_ans_total;
    }
  }
  m.total = scored.size();
  const auto pct = [](double v, std::size_t n) { return n > 0 ? 100.0 * v / static_cast<double>(n) : 0.0; };
  m.exact = pct(em, m.total);
  m.f1 = pct(f1, m.total);
  m.has_ans_exact = pct(ha_em, m.has_ans_total);
  m.has_ans_f1 = pct(ha_f1, m.has_ans_total);
  m.no_ans_exact = pct(na_em, m.no_ans_total);
  m.no_ans_f1 = pct(na_f1, m.no_ans_total);
  // find_best_thresh: walk questions by increasing no-answer probability.
  std::vector<std::size_t> order(scored.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scored[a].na_prob < scored[b].na_prob; });
  const auto best_thresh = [&](bool use_f1, double& best, double& thresh) {
    double cur = static_cast<double>(n_no_ans_all);
    double best_score = cur;
    thresh = 0.0;
    for (const auto i : order) {
      const auto& s = scored[i];
      const double diff = s.has_ans ? (use_f1 ? s.f1 : s.exact) : (s.predicted_text ? -1.0 : 0.0);
      cur += diff;
      if (cur > best_score) {
        best_score = cur;
        thresh = s.na_prob;
      }
    }
    best = pct(best_score, scored.size());
  };
  best_thresh(false, m.best_exact, m.best_exact_thresh);
  best_thresh(true, m.best_f1, m.best_f1_thresh);
  return m;
}

// Scores post-processed predictions as run_qa does (no-answer probability
// 0 for every question; v2 when the predictions are).
inline SquadMetrics squad_evaluate(const SquadDataset& data, const QaPredictions& predictions) {
  SquadEvalOptions options;
  options.version_2 = predictions.version_2;
  return squad_evaluate(data, predictions.as_map(), options);
}

}  // namespace mpt::data
