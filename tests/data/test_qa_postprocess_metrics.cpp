// postprocess_qa_predictions (utils_qa.py) and squad_evaluate (official
// evaluate-v1.1.py / evaluate-v2.0.py). Hand-computed cases follow the
// official rules; aggregates compare with tools/bert_reference_tokenizer.py
// run on deterministic pseudo-logits over the real subsets.
#include "test_helpers.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

using mpt::data::normalize_answer;
using mpt::data::squad_exact;
using mpt::data::squad_f1;

TEST_CASE("metrics: normalize_answer as the official scripts") {
  // lower -> remove string.punctuation -> \b(a|an|the)\b -> ' '.join(split())
  CHECK(normalize_answer("The  Quick, brown fox!") == "quick brown fox");
  CHECK(normalize_answer("an apple a day") == "apple day");
  CHECK(normalize_answer("theater and anatomy") == "theater and anatomy");                            // articles only as whole words
  CHECK(normalize_answer("a-b") == "ab");                                                             // punctuation removed before articles
  CHECK(normalize_answer("the_end") == "theend");                                                     // '_' is in string.punctuation
  CHECK(normalize_answer("\u00c9COLE \u2014 d\u00e9j\u00e0") == "\u00e9cole \u2014 d\u00e9j\u00e0");  // non-ASCII punctuation kept
  CHECK(normalize_answer("  \t ") == "");
  // str.lower(): a final capital sigma becomes "ς".
  CHECK(normalize_answer("\u039f\u0394\u039f\u03a3") == "\u03bf\u03b4\u03bf\u03c2");
  CHECK(squad_exact("\u039f\u0394\u039f\u03a3", "\u03bf\u03b4\u03bf\u03c2") == 1.0);
}

TEST_CASE("metrics: exact match and F1 by hand") {
  CHECK(squad_exact("The Denver Broncos", "Denver Broncos") == 1.0);
  CHECK(squad_exact("Denver", "Denver Broncos") == 0.0);
  // pred {denver}, gold {denver, broncos}: P = 1, R = 1/2, F1 = 2/3.
  CHECK(squad_f1("Denver", "Denver Broncos") == doctest::Approx(2.0 / 3.0));
  // pred {a1, b, b}, gold {b, c}: common 1 (Counter &), P = 1/3, R = 1/2, F1 = 0.4.
  CHECK(squad_f1("a1 b b", "b c") == doctest::Approx(0.4));
  // repeated tokens count with multiplicity: pred {b, b}, gold {b, b, c}: P = 1, R = 2/3, F1 = 0.8.
  CHECK(squad_f1("b b", "b b c") == doctest::Approx(0.8));
  // v1.1 f1_score: no common token -> 0, even for two empty answers;
  // v2.0 compute_f1: either side empty -> 1 if both empty.
  CHECK(squad_f1("", "", false) == 0.0);
  CHECK(squad_f1("", "", true) == 1.0);
  CHECK(squad_f1("the", "", true) == 1.0);  // "the" normalizes to nothing
  CHECK(squad_f1("x", "", true) == 0.0);
}

TEST_CASE("metrics: v1.1 aggregate over gold answers, missing predictions score 0") {
  const auto d =
      mpt::data::parse_squad(R"({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "Denver Broncos won in 2016 at Levi's Stadium.",
    "qas": [{"id": "a", "question": "?", "answers": [{"text": "Denver Broncos", "answer_start": 0}, {"text": "Broncos", "answer_start": 7}]},
            {"id": "b", "question": "?", "answers": [{"text": "Levi's Stadium", "answer_start": 30}]},
            {"id": "c", "question": "?", "answers": [{"text": "2016", "answer_start": 22}]}]}]}]})",
                             "hand.json");
  std::unordered_map<std::string, std::string> preds{{"a", "the Broncos"}, {"b", "Stadium"}};
  const auto m = mpt::data::squad_evaluate(d, preds);
  // a: EM 1 (matches "Broncos"); b: F1 max(P=1, R=1/2) = 2/3; c: missing -> 0.
  CHECK(m.exact == doctest::Approx(100.0 / 3.0));
  CHECK(m.f1 == doctest::Approx(100.0 * (1.0 + 2.0 / 3.0) / 3.0));
  CHECK(m.total == 3);
  CHECK(m.missing_ids == std::vector<std::string>{"c"});
  CHECK(m.to_json().dump() == nlohmann::ordered_json{{"exact_match", m.exact}, {"f1", m.f1}}.dump());
}

TEST_CASE("metrics: v2.0 by hand (HasAns/NoAns, best thresholds)") {
  const auto d = mpt::data::parse_squad(R"({"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.",
    "qas": [{"id": "h1", "question": "?", "answers": [{"text": "France", "answer_start": 12}]},
            {"id": "h2", "question": "?", "answers": [{"text": "Paris", "answer_start": 0}]},
            {"id": "n1", "question": "?", "answers": [], "is_impossible": true},
            {"id": "n2", "question": "?", "answers": [], "is_impossible": true}]}]}]})",
                                        "hand2.json");
  std::unordered_map<std::string, std::string> preds{{"h1", "France"}, {"h2", ""}, {"n1", ""}, {"n2", "Paris"}};
  mpt::data::SquadEvalOptions opt;
  // na_probs: n2 most confident to have no answer.
  opt.na_probs = {{"h1", 0.1}, {"h2", 0.2}, {"n1", 0.3}, {"n2", 0.9}};
  const auto m = mpt::data::squad_evaluate(d, preds, opt);
  CHECK(m.version_2);
  // exact: h1 1, h2 0 (gold "Paris" vs ""), n1 1 (gold [""] vs ""), n2 0.
  CHECK(m.exact == doctest::Approx(50.0));
  CHECK(m.f1 == doctest::Approx(50.0));
  CHECK(m.has_ans_exact == doctest::Approx(50.0));
  CHECK(m.no_ans_exact == doctest::Approx(50.0));
  CHECK(m.has_ans_total == 2);
  CHECK(m.no_ans_total == 2);
  // find_best_thresh: start at #NoAns = 2; by na_prob: h1 +1 -> 3 (thresh 0.1),
  // h2 +0 -> 3, n1 (no text) +0 -> 3, n2 (text) -1 -> 2. Best 3/4 at 0.1.
  CHECK(m.best_exact == doctest::Approx(75.0));
  CHECK(m.best_exact_thresh == doctest::Approx(0.1));
  // na_prob_thresh: predictions with na_prob > 0.5 count as "no answer".
  opt.na_prob_thresh = 0.5;
  CHECK(mpt::data::squad_evaluate(d, preds, opt).exact == doctest::Approx(75.0));
  const auto j = m.to_json();
  for (const char* key : {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total", "best_exact",
                          "best_exact_thresh", "best_f1", "best_f1_thresh"})
    CHECK(j.contains(key));
}

namespace {
std::vector<float> logits(std::size_t n_features, std::size_t row, std::uint32_t which) {
  std::vector<float> v(n_features * row);
  for (std::size_t f = 0; f < n_features; ++f)
    for (std::size_t p = 0; p < row; ++p) v[f * row + p] = test_data::fake_logit(static_cast<std::uint32_t>(f), static_cast<std::uint32_t>(p), which);
  return v;
}
void check_metrics(const nlohmann::ordered_json& got, const nlohmann::json& want) {
  for (auto it = want.begin(); it != want.end(); ++it) {
    CAPTURE(it.key());
    REQUIRE(got.contains(it.key()));
    CHECK(got[it.key()].get<double>() == doctest::Approx(it.value().get<double>()).epsilon(1e-12));
  }
}
}  // namespace

TEST_CASE("post-processing v1.1: predictions, n-best and metrics equal the reference") {
  const auto d = mpt::data::read_squad(test_data::path("squad-v1.1-dev-subset.json"));
  const auto ref = test_data::load_json("ref_squad_v11_subset.json");
  mpt::data::QaFeatureOptions fo;
  fo.max_seq_length = 128;
  fo.doc_stride = 64;
  const auto f = mpt::data::prepare_eval_features(d, test_data::uncased(), fo);
  const auto s = logits(f.size(), 128, 0), e = logits(f.size(), 128, 1);
  const auto p = mpt::data::postprocess_qa_predictions(d, f, s, e, 128);
  REQUIRE(p.ids.size() == d.size());
  std::size_t same = 0;
  for (std::size_t i = 0; i < p.ids.size(); ++i) same += p.texts[i] == ref["v1_predictions"][p.ids[i]].get<std::string>();
  CHECK(same == p.ids.size());
  const auto nbest = p.nbest_json();
  for (auto it = ref["v1_nbest_first"].begin(); it != ref["v1_nbest_first"].end(); ++it) {
    for (std::size_t k = 0; k < it.value().size(); ++k) {
      const auto& want = it.value()[k];
      const auto& got = nbest[it.key()][k];
      CHECK(got["text"] == want["text"]);
      CHECK(got["start_logit"].get<double>() == want["start_logit"].get<double>());
      CHECK(got["end_logit"].get<double>() == want["end_logit"].get<double>());
      CHECK(got["probability"].get<double>() == doctest::Approx(want["probability"].get<double>()).epsilon(1e-6));
    }
  }
  check_metrics(mpt::data::squad_evaluate(d, p.as_map()).to_json(), ref["v1_metrics"]);
  std::unordered_map<std::string, std::string> last_gold;
  for (const auto& ex : d.examples) last_gold[ex.id] = ex.answers.back().text;
  const auto gm = mpt::data::squad_evaluate(d, last_gold);
  check_metrics(gm.to_json(), ref["v1_metrics_last_gold"]);
  CHECK(gm.exact == 100.0);
}

TEST_CASE("post-processing v2.0: null score, threshold, files") {
  const auto d = mpt::data::read_squad(test_data::path("squad-v2.0-dev-subset.json"));
  const auto ref = test_data::load_json("ref_squad_v20_subset.json");
  mpt::data::QaFeatureOptions fo;
  fo.max_seq_length = 128;
  fo.doc_stride = 64;
  fo.pad_to_max_length = false;  // rows shorter than the 128 logits: the tail is ignored
  const auto f = mpt::data::prepare_eval_features(d, test_data::uncased(), fo);
  const auto s = logits(f.size(), 128, 0), e = logits(f.size(), 128, 1);
  mpt::data::QaPostprocessOptions po;
  po.version_2_with_negative = true;
  const auto p = mpt::data::postprocess_qa_predictions(d, f, s, e, 128, po);
  std::size_t same = 0, diff_same = 0, empty = 0;
  for (std::size_t i = 0; i < p.ids.size(); ++i) {
    same += p.texts[i] == ref["predictions"][p.ids[i]].get<std::string>();
    diff_same += static_cast<double>(p.null_score_diff[i]) == ref["null_odds"][p.ids[i]].get<double>();
    empty += p.texts[i].empty();
  }
  CHECK(same == p.ids.size());
  CHECK(diff_same == p.ids.size());
  CHECK(empty > 0);
  check_metrics(mpt::data::squad_evaluate(d, p.as_map()).to_json(), ref["metrics"]);

  po.null_score_diff_threshold = 2.5;
  const auto pt = mpt::data::postprocess_qa_predictions(d, f, s, e, 128, po);
  std::size_t same_t = 0;
  for (std::size_t i = 0; i < pt.ids.size(); ++i) same_t += pt.texts[i] == ref["predictions_thresh_2_5"][pt.ids[i]].get<std::string>();
  CHECK(same_t == pt.ids.size());
  check_metrics(mpt::data::squad_evaluate(d, pt.as_map()).to_json(), ref["metrics_thresh_2_5"]);

  mpt::data::SquadEvalOptions eo;
  for (std::size_t i = 0; i < p.ids.size(); ++i) eo.na_probs[p.ids[i]] = std::abs(static_cast<double>(p.null_score_diff[i])) / 20.0;
  check_metrics(mpt::data::squad_evaluate(d, p.as_map(), eo).to_json(), ref["metrics_with_na_probs"]);

  // Files as run_qa writes them into output_dir (prefix "eval").
  const auto dir = test_data::temp_path("mpt_test_postprocess");
  std::filesystem::remove_all(dir);
  p.write(dir);
  for (const char* name : {"eval_predictions.json", "eval_nbest_predictions.json", "eval_null_odds.json"})
    REQUIRE(std::filesystem::exists(dir / name));
  CHECK_FALSE(std::filesystem::exists(dir / "eval_predictions.json.tmp"));
  const auto back = nlohmann::json::parse(mpt::data::read_text_file(dir / "eval_predictions.json"));
  CHECK(back.size() == d.size());
  CHECK(back[p.ids[0]] == p.texts[0]);
  const auto nbest = nlohmann::json::parse(mpt::data::read_text_file(dir / "eval_nbest_predictions.json"));
  double total = 0;
  for (const auto& entry : nbest[p.ids[0]]) total += entry["probability"].get<double>();
  CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
  std::filesystem::remove_all(dir);
  // A folder that cannot be created is a clear error, not a silent loss.
  CHECK_THROWS_AS(mpt::data::write_json_atomic("/proc/mpt_no_such_dir/x.json", nlohmann::json::object()), mpt::Error);
}

TEST_CASE("post-processing: small hand case") {
  // One example, one feature: [CLS] q [SEP] c0 c1 c2 [SEP]; context "ab cd ef".
  const auto d = mpt::data::parse_squad(
      R"({"data": [{"id": "x", "context": "ab cd ef", "question": "q", "answers": {"text": ["cd"], "answer_start": [3]}}]})", "h.json");
  mpt::data::QaFeatures f;
  f.row_begin = {0, 7};
  f.input_ids = {101, 1, 102, 2, 3, 4, 102};
  f.token_type_ids = {0, 0, 0, 1, 1, 1, 1};
  f.attention_mask = {1, 1, 1, 1, 1, 1, 1};
  f.offsets = {mpt::data::no_offset, mpt::data::no_offset, mpt::data::no_offset, {0, 2}, {3, 5}, {6, 8}, mpt::data::no_offset};
  f.example_index = {0};
  // Best start is the question token (1): skipped (no offset); next c1..c1.
  const std::vector<float> s{0, 9, 0, 1, 5, 2, 0}, e{0, 0, 0, 1, 4, 3, 8};
  mpt::data::QaPostprocessOptions po;
  po.n_best_size = 3;
  const auto p = mpt::data::postprocess_qa_predictions(d, f, s, e, 7, po);
  // starts {1, 4, 5}, ends {6, 4, 5}: valid pairs (4,4)=9, (4,5)=8, (5,5)=5 -> "cd".
  CHECK(p.texts[0] == "cd");
  REQUIRE(p.nbest[0].size() == 3);
  CHECK(p.nbest[0][1].text == "cd ef");
  CHECK(p.nbest[0][2].text == "ef");
  po.max_answer_length = 1;  // drops (4,5)
  CHECK(mpt::data::postprocess_qa_predictions(d, f, s, e, 7, po).nbest[0].size() == 2);
  // v2: null score 0 + 0 = 0; best non-null 5 + 4 = 9; diff -9 -> answer kept.
  po.version_2_with_negative = true;
  const auto p2 = mpt::data::postprocess_qa_predictions(d, f, s, e, 7, po);
  CHECK(p2.null_score_diff[0] == -9.0f);
  CHECK(p2.texts[0] == "cd");
  po.null_score_diff_threshold = -10.0;
  CHECK(mpt::data::postprocess_qa_predictions(d, f, s, e, 7, po).texts[0].empty());
  CHECK_THROWS_AS(mpt::data::postprocess_qa_predictions(d, f, s, e, 6, po), mpt::Error);
}
