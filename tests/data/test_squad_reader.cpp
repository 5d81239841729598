// read_squad / parse_squad: the nested SQuAD layouts (v1.1, v2.0), the
// flattened Hugging Face records (JSON and JSON Lines), and clear errors.
#include "test_helpers.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

using mpt::data::InvalidAnswerPolicy;
using mpt::data::parse_squad;
using mpt::data::read_squad;

TEST_CASE("squad reader: nested v1.1 subset") {
  // Counts from tests/fixtures/SOURCES.md: 5 articles, 249 paragraphs, 1642 questions.
  const auto d = read_squad(test_data::path("squad-v1.1-dev-subset.json"));
  CHECK(d.size() == 1642);
  CHECK(d.contexts.size() == 249);
  CHECK_FALSE(d.version_2);
  CHECK(d.version == "1.1");
  CHECK(d.invalid_answer_ids.empty());
  CHECK(d.examples[0].title == "Super_Bowl_50");
  CHECK(d.examples[0].answers.size() == 3);
  const auto head = d.first(20);
  CHECK(head.size() == 20);
  CHECK(head.examples[19].id == d.examples[19].id);
  CHECK(head.context_of(19) == d.context_of(19));
  CHECK(head.contexts.size() <= 20);
  CHECK(d.first(100000).size() == d.size());
  // answer_start counts code points: the text is at that code-point index.
  for (const auto& ex : d.examples)
    for (const auto& a : ex.answers)
      REQUIRE(mpt::data::detail::code_point_substr(d.context_of(ex), static_cast<std::size_t>(a.answer_start),
                                                   static_cast<std::size_t>(a.answer_start) + mpt::data::detail::count_code_points(a.text)) ==
              a.text);
}

TEST_CASE("squad reader: nested v2.0 subset with unanswerable questions") {
  const auto d = read_squad(test_data::path("squad-v2.0-dev-subset.json"));
  CHECK(d.size() == 626);
  CHECK(d.contexts.size() == 87);
  CHECK(d.version_2);
  std::size_t impossible = 0, with_plausible = 0;
  for (const auto& ex : d.examples) {
    impossible += ex.is_impossible;
    with_plausible += !ex.plausible_answers.empty();
    if (ex.is_impossible) CHECK(ex.answers.empty());
  }
  CHECK(impossible == 333);
  CHECK(with_plausible == 333);
}

TEST_CASE("squad reader: flattened Hugging Face JSON (CRLF) and JSON Lines") {
  const auto d = read_squad(test_data::path("squad_sample_hf.json"));
  CHECK(d.size() == 14);
  CHECK(d.version_2);  // "version": 2.0
  CHECK(d.examples[0].id == "56ddde6b9a695914005b9628");
  CHECK(d.examples[0].answers.size() == 4);
  CHECK(d.examples[0].answers[0].text == "France");
  CHECK(d.examples[0].answers[0].answer_start == 159);
  CHECK(d.contexts.size() < d.size());  // consecutive equal contexts are shared

  // The same records as JSON Lines.
  const auto root = test_data::load_json("squad_sample_hf.json");
  std::string lines;
  for (const auto& rec : root["data"]) lines += rec.dump() + "\r\n";
  const auto jsonl = test_data::temp_path("mpt_squad_sample.jsonl");
  mpt::data::write_text_atomic(jsonl, lines + "\n");
  const auto l = read_squad(jsonl);
  CHECK(l.size() == 14);
  CHECK(l.examples[13].question == d.examples[13].question);
  CHECK(l.context_of(13) == d.context_of(13));
  std::filesystem::remove(jsonl);

  // JSON Lines saved as ".json" (datasets' to_json default) is detected.
  const auto jsonl_as_json = test_data::temp_path("mpt_squad_sample_lines.json");
  mpt::data::write_text_atomic(jsonl_as_json, lines);
  CHECK(read_squad(jsonl_as_json).size() == 14);
  std::filesystem::remove(jsonl_as_json);

  // A top-level array of records is accepted too.
  CHECK(parse_squad(root["data"].dump(), "array.json").size() == 14);
}

namespace {
std::string flat(const std::string& context, const std::string& answers, const std::string& id = "q1") {
  return R"({"data": [{"id": ")" + id + R"(", "title": "t", "context": )" + context + R"(, "question": "Who?", "answers": )" + answers + "}]}";
}
}  // namespace

TEST_CASE("squad reader: malformed input is a clear mpt::Error") {
  const auto err = [](const std::string& text) -> std::string {
    try {
      parse_squad(text, "bad.json");
    } catch (const mpt::Error& e) {
      return e.what();
    }
    return "no error";
  };
  // Truncated JSON: names the file and the byte position.
  const std::string truncated = err(R"({"data": [{"id": "q1", "context": "abc")");
  CHECK(truncated.find("bad.json") != std::string::npos);
  CHECK(truncated.find("malformed JSON at byte") != std::string::npos);
  // Wrong types: names the record position, id and field.
  const std::string wrong = err(flat("42", R"({"text": ["a"], "answer_start": [0]})"));
  CHECK(wrong.find("data[0]") != std::string::npos);
  CHECK(wrong.find("'q1'") != std::string::npos);
  CHECK(wrong.find("'context' must be a string") != std::string::npos);
  CHECK(err(flat(R"("abc")", R"({"text": ["a"], "answer_start": ["0"]})")).find("'answer_start' must be an integer") != std::string::npos);
  CHECK(err(flat(R"("abc")", R"([{"text": "a", "answer_start": 0}])")).find("'answers' must be an object") != std::string::npos);
  CHECK(err(R"({"data": [{"id": "q1", "context": "abc", "answers": {"text": [], "answer_start": []}}]})").find("missing field 'question'") !=
        std::string::npos);
  CHECK(err(R"({"version": "1.1"})").find("missing field 'data'") != std::string::npos);
  CHECK(err(R"("just a string")").find("expected an object") != std::string::npos);
  // Nested layout errors name data[a].paragraphs[p].qas[q].
  const std::string nested =
      err(R"({"data": [{"title": "x", "paragraphs": [{"context": "abc", "qas": [{"id": "n1", "question": 5, "answers": []}]}]}]})");
  CHECK(nested.find("data[0].paragraphs[0].qas[0]") != std::string::npos);
  CHECK(nested.find("'n1'") != std::string::npos);
  // answer_start out of range, and text not at answer_start.
  const std::string range = err(flat(R"("abc")", R"({"text": ["bc"], "answer_start": [7]})"));
  CHECK(range.find("'q1'") != std::string::npos);
  CHECK(range.find("not at answer_start 7") != std::string::npos);
  CHECK(err(flat(R"("abc")", R"({"text": ["b"], "answer_start": [-1]})")).find("not at answer_start -1") != std::string::npos);
  // Empty context.
  CHECK(err(flat(R"("")", R"({"text": [], "answer_start": []})")).find("empty context") != std::string::npos);
  // Invalid UTF-8 (nlohmann rejects it while parsing).
  CHECK(err(flat("\"ab\xff\"", R"({"text": [], "answer_start": []})")).find("malformed JSON") != std::string::npos);
  // Integer ids are read as text; other id types are errors.
  CHECK(parse_squad(R"({"data": [{"id": 17, "context": "a", "question": "?", "answers": {"text": [], "answer_start": []}}]})", "int.json")
            .examples[0]
            .id == "17");
  CHECK(
      err(R"({"data": [{"id": [1], "context": "a", "question": "?", "answers": {"text": [], "answer_start": []}}]})").find("'id' must be a string") !=
      std::string::npos);
  // Duplicate ids.
  CHECK(err(R"({"data": [{"id": "q", "context": "a", "question": "?", "answers": {"text": [], "answer_start": []}},
                         {"id": "q", "context": "a", "question": "?", "answers": {"text": [], "answer_start": []}}]})")
            .find("duplicate id") != std::string::npos);
  // JSON Lines: the line number.
  CHECK_THROWS_WITH_AS(parse_squad("{\"id\": \"a\"}\n{oops\n", "x.jsonl", {}, true), doctest::Contains("line 1"), mpt::Error);
  CHECK_THROWS_WITH_AS(parse_squad("\n{oops\n", "x.jsonl", {}, true), doctest::Contains("line 2"), mpt::Error);
  CHECK_THROWS_AS(read_squad("/nonexistent/squad.json"), mpt::Error);
}

TEST_CASE("squad reader: a string longer than 64 MiB is refused before the JSON is parsed") {
  // One context of 65 MiB (a damaged or hostile file: SQuAD contexts are paragraphs).
  const std::string context(std::size_t{65} << 20, 'a');
  const std::string text = R"({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": ")" + context +
                           R"(", "qas": [{"id": "q", "question": "?", "answers": [{"text": "a", "answer_start": 0}]}]}]}]})";
  CHECK_THROWS_WITH_AS(parse_squad(text, "huge.json"), doctest::Contains("huge.json"), mpt::Error);
  CHECK_THROWS_WITH_AS(parse_squad(text, "huge.json"), doctest::Contains("a JSON string of 68157440 bytes"), mpt::Error);
  // The same paragraph at 1 MiB reads.
  const std::string small = R"({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": ")" + std::string(std::size_t{1} << 20, 'a') +
                            R"(", "qas": [{"id": "q", "question": "?", "answers": [{"text": "a", "answer_start": 0}]}]}]}]})";
  CHECK(parse_squad(small, "small.json").examples.size() == 1);
}

TEST_CASE("squad reader: inconsistent answers can be skipped or kept") {
  const std::string text = R"({"data": [
    {"id": "good", "context": "caf\u00e9 au lait", "question": "q", "answers": {"text": ["au"], "answer_start": [5]}},
    {"id": "bad", "context": "abc", "question": "q", "answers": {"text": ["zz"], "answer_start": [0]}}]})";
  mpt::data::SquadReadOptions skip;
  skip.invalid_answers = InvalidAnswerPolicy::skip;
  const auto s = parse_squad(text, "mixed.json", skip);
  CHECK(s.size() == 1);
  CHECK(s.examples[0].id == "good");  // answer_start 5 is a code-point index (é is 2 bytes)
  CHECK(s.invalid_answer_ids == std::vector<std::string>{"bad"});
  mpt::data::SquadReadOptions keep;
  keep.invalid_answers = InvalidAnswerPolicy::keep;
  const auto k = parse_squad(text, "mixed.json", keep);
  CHECK(k.size() == 2);
  CHECK(k.invalid_answer_ids == std::vector<std::string>{"bad"});
  CHECK_THROWS_WITH_AS(parse_squad(text, "mixed.json"), doctest::Contains("'bad'"), mpt::Error);
}
