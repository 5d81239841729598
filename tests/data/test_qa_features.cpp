// prepare_train_features / prepare_eval_features against run_qa.py's logic.
// Expected values: tests/fixtures/ref_squad_v11_subset.json and
// ref_squad_v20_subset.json, written by tools/bert_reference_tokenizer.py
// (a Python transcription of run_qa's feature functions and of tokenizers'
// truncation with stride), plus properties checked on the real data.
#include "test_helpers.hpp"

#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <vector>

using mpt::data::prepare_eval_features;
using mpt::data::prepare_train_features;
using mpt::data::QaFeatureOptions;

namespace {
const mpt::data::SquadDataset& v11() {
  static const auto d = mpt::data::read_squad(test_data::path("squad-v1.1-dev-subset.json"));
  return d;
}
const nlohmann::json& ref11() {
  static const auto j = test_data::load_json("ref_squad_v11_subset.json");
  return j;
}
}  // namespace

TEST_CASE("features: every context and question tokenizes as the reference") {
  const auto& d = v11();
  const auto& tok = test_data::uncased();
  const auto& contexts = ref11()["contexts"];
  REQUIRE(contexts.size() == d.contexts.size());
  for (std::size_t i = 0; i < d.contexts.size(); ++i) {
    const auto e = tok.encode(d.contexts[i]);
    CAPTURE(i);
    CHECK(e.size() == contexts[i]["tokens"].get<std::size_t>());
    CHECK(std::to_string(test_data::encoding_hash(e)) == contexts[i]["hash"].get<std::string>());
  }
  std::uint64_t h = test_data::fnv_basis;
  for (const auto& ex : d.examples)
    h = test_data::fnv1a(h, static_cast<std::int64_t>(test_data::encoding_hash(tok.encode(mpt::data::detail::lstrip_python(ex.question)))));
  CHECK(std::to_string(h) == ref11()["questions_hash"].get<std::string>());
}

TEST_CASE("features: counts per example and training labels at 384/128 and 128/64") {
  const auto& d = v11();
  for (const auto& cfg : ref11()["configs"]) {
    QaFeatureOptions opt;
    opt.max_seq_length = cfg["max_seq_length"].get<std::size_t>();
    opt.doc_stride = cfg["doc_stride"].get<std::size_t>();
    CAPTURE(opt.max_seq_length);
    const auto f = prepare_train_features(d, test_data::uncased(), opt);
    REQUIRE(f.size() == cfg["features"].get<std::size_t>());
    std::vector<std::size_t> per_example(d.size(), 0);
    for (const auto e : f.example_index) ++per_example[e];
    CHECK(per_example == cfg["features_per_example"].get<std::vector<std::size_t>>());
    CHECK(f.start_positions == cfg["start_positions"].get<std::vector<std::int32_t>>());
    CHECK(f.end_positions == cfg["end_positions"].get<std::vector<std::int32_t>>());
  }
  // Figures the reference prints: 1675 features at 384/128, 4076 at 128/64.
  CHECK(ref11()["configs"][0]["features"] == 1675);
  CHECK(ref11()["configs"][1]["features"] == 4076);
}

TEST_CASE("features: every window that holds its answer maps back to the gold text") {
  // run_qa labels the tokens covering [answer_start, answer_start + len): the
  // offsets of start..end give back exactly the gold text whenever the answer
  // begins and ends on token boundaries (the usual case); otherwise the span
  // is the smallest token span covering it.
  const auto& d = v11();
  for (const std::size_t max_len : {384u, 128u}) {
    QaFeatureOptions opt;
    opt.max_seq_length = max_len;
    opt.doc_stride = max_len == 384 ? 128 : 64;
    opt.keep_train_offsets = true;
    const auto f = prepare_train_features(d, test_data::uncased(), opt);
    std::size_t labelled = 0, exact = 0, covering = 0, walked_past = 0;
    for (std::size_t i = 0; i < f.size(); ++i) {
      if (f.start_positions[i] == 0) continue;
      ++labelled;
      const auto& ex = d.examples[f.example_index[i]];
      const auto offs = f.offsets_of(i);
      auto s = offs[static_cast<std::size_t>(f.start_positions[i])];
      if (s == mpt::data::no_offset) {
        // run_qa's start walk (offsets[i][0] <= start_char) does not stop at
        // the final [SEP] or padding, whose offsets are (0, 0): when the
        // answer starts at the window's last context token, the label lands
        // on the last position of the row. Kept as in run_qa; the end label
        // is the last context token.
        ++walked_past;
        CHECK(static_cast<std::size_t>(f.start_positions[i]) == f.length(i) - 1);
        const auto last = offs[static_cast<std::size_t>(f.end_positions[i])];
        REQUIRE(last != mpt::data::no_offset);
        CHECK(last.begin <= ex.answers[0].answer_start);
        continue;
      }
      const auto e = offs[static_cast<std::size_t>(f.end_positions[i])];
      REQUIRE(s != mpt::data::no_offset);
      REQUIRE(e != mpt::data::no_offset);
      const auto text = mpt::data::detail::code_point_substr(d.context_of(ex), static_cast<std::size_t>(s.begin), static_cast<std::size_t>(e.end));
      const auto& gold = ex.answers[0];
      if (text == gold.text) {
        ++exact;
      } else {
        // Covering span: starts at or before, ends at or after the answer.
        CHECK(s.begin <= gold.answer_start);
        CHECK(e.end >= gold.answer_start + static_cast<std::int64_t>(mpt::data::detail::count_code_points(gold.text)));
        CHECK(text.find(gold.text) != std::string_view::npos);
        ++covering;
      }
    }
    MESSAGE(max_len, ": ", labelled, " labelled windows, ", exact, " exact, ", covering, " covering, ", walked_past,
            " with run_qa's start walk past the context");
    CHECK(labelled > 0);
    CHECK(exact + covering + walked_past == labelled);
    CHECK(exact > 0.95 * static_cast<double>(labelled));
    // Every example whose answer fits in one window gets at least one labelled feature.
  }
}

TEST_CASE("features: layout of a padded feature") {
  const auto& d = v11();
  const auto f = prepare_eval_features(d, test_data::uncased(), {});
  CHECK(f.padded);
  CHECK(f.start_positions.empty());
  for (std::size_t i = 0; i < f.size(); i += 97) {
    const auto ids = f.input_ids_of(i);
    const auto types = f.token_type_ids_of(i);
    const auto mask = f.attention_mask_of(i);
    const auto offs = f.offsets_of(i);
    REQUIRE(ids.size() == 384);
    CHECK(ids[0] == 101);  // [CLS]
    const auto q_len = test_data::uncased().encode(mpt::data::detail::lstrip_python(d.examples[f.example_index[i]].question)).size();
    CHECK(ids[q_len + 1] == 102);  // [SEP] after the question
    const std::size_t len = static_cast<std::size_t>(std::accumulate(mask.begin(), mask.end(), 0));
    CHECK(ids[len - 1] == 102);  // final [SEP]
    for (std::size_t t = 0; t < 384; ++t) {
      const bool context = t > q_len + 1 && t + 1 < len;
      CHECK(types[t] == (t > q_len + 1 && t < len ? 1 : 0));  // token_type 1 for context and last [SEP]
      CHECK((offs[t] != mpt::data::no_offset) == context);    // eval: offsets only for the context
      if (t >= len) CHECK(ids[t] == 0);                       // [PAD]
    }
  }
}

TEST_CASE("features: dynamic padding (v2.0 subset at 128/64) and batching") {
  const auto d = mpt::data::read_squad(test_data::path("squad-v2.0-dev-subset.json"));
  const auto ref = test_data::load_json("ref_squad_v20_subset.json");
  QaFeatureOptions opt;
  opt.max_seq_length = 128;
  opt.doc_stride = 64;
  opt.pad_to_max_length = false;
  const auto f = prepare_train_features(d, test_data::uncased(), opt);
  REQUIRE(f.size() == ref["features"].get<std::size_t>());
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < f.size(); ++i) lengths.push_back(f.length(i));
  CHECK(lengths == ref["lengths"].get<std::vector<std::size_t>>());
  // Unanswerable questions are labelled with the CLS index.
  CHECK(f.start_positions == ref["start_positions"].get<std::vector<std::int32_t>>());
  CHECK(f.end_positions == ref["end_positions"].get<std::vector<std::int32_t>>());

  const std::vector<std::size_t> pick{3, 0, 7};
  const auto b = mpt::data::make_qa_batch(f, pick);
  const std::size_t longest = std::max({f.length(3), f.length(0), f.length(7)});
  CHECK(b.seq_len == longest);
  CHECK(b.input_ids.size() == 3 * longest);
  CHECK(b.start_positions == std::vector<std::int32_t>{f.start_positions[3], f.start_positions[0], f.start_positions[7]});
  for (std::size_t t = 0; t < longest; ++t) {
    CHECK(b.input_ids[longest + t] == (t < f.length(0) ? f.input_ids_of(0)[t] : 0));
    CHECK(b.attention_mask[longest + t] == (t < f.length(0) ? 1 : 0));
  }
  CHECK(mpt::data::make_qa_batch(f, pick, 128).seq_len == 128);
  CHECK(f.offsets.empty());  // training features drop offsets by default
  CHECK_THROWS_AS(f.offsets_of(0), mpt::Error);
  CHECK_THROWS_AS(mpt::data::make_qa_batch(f, std::vector<std::size_t>{f.size()}), mpt::Error);
}

TEST_CASE("features: impossible settings are errors") {
  const auto d = mpt::data::read_squad(test_data::path("squad_sample_hf.json"));
  QaFeatureOptions opt;
  opt.max_seq_length = 64;
  opt.doc_stride = 60;  // not smaller than the context room beside the question
  CHECK_THROWS_WITH_AS(prepare_train_features(d, test_data::uncased(), opt), doctest::Contains("doc_stride"), mpt::Error);
  opt.max_seq_length = 8;  // no room at all for the context
  opt.doc_stride = 1;
  CHECK_THROWS_WITH_AS(prepare_eval_features(d, test_data::uncased(), opt), doctest::Contains("no room"), mpt::Error);
}
