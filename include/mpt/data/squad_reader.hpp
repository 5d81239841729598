#pragma once
// read_squad: SQuAD v1.1/v2.0 in the canonical nested JSON, and the
// flattened Hugging Face datasets records (one JSON with "data": [...], or
// JSON Lines) that run_qa's --train_file/--validation_file accept.
// answer_start counts Unicode code points (Python string indices).

#include <mpt/core/error.hpp>
#include <mpt/data/detail/unicode.hpp>
#include <mpt/data/json_io.hpp>
#include <mpt/io/json_depth.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mpt::data {

struct SquadAnswer {
  std::string text;
  std::int64_t answer_start = 0;  // code points into the context
};

struct SquadExample {
  std::string id;
  std::string title;
  std::string question;
  std::size_t context_index = 0;     // into SquadDataset::contexts (shared by a paragraph's questions)
  std::vector<SquadAnswer> answers;  // empty: unanswerable (v2)
  bool is_impossible = false;
  std::vector<SquadAnswer> plausible_answers;
  bool answers_given = true;  // false: the file has no answers for it (a prediction-only test file)
};

struct SquadDataset {
  std::vector<std::string> contexts;
  std::vector<SquadExample> examples;
  bool version_2 = false;                       // has (or may have) unanswerable questions
  std::string version;                          // the file's "version" field, if any
  std::string source;                           // file name, for messages
  std::vector<std::string> invalid_answer_ids;  // answers inconsistent with their context

  std::size_t size() const { return examples.size(); }
  const std::string& context_of(const SquadExample& e) const { return contexts[e.context_index]; }
  const std::string& context_of(std::size_t example_index) const { return context_of(examples[example_index]); }

  // The first n examples (run_qa's --max_train_samples / --max_eval_samples).
  SquadDataset first(std::size_t n) const {
    SquadDataset out;
    out.version_2 = version_2;
    out.version = version;
    out.source = source;
    out.invalid_answer_ids = invalid_answer_ids;
    out.examples.assign(examples.begin(), examples.begin() + static_cast<std::ptrdiff_t>(std::min(n, examples.size())));
    // Keep only the contexts still referenced, renumbered in order.
    std::vector<std::size_t> remap(contexts.size(), static_cast<std::size_t>(-1));
    for (auto& ex : out.examples) {
      std::size_t& to = remap[ex.context_index];
      if (to == static_cast<std::size_t>(-1)) {
        to = out.contexts.size();
        out.contexts.push_back(contexts[ex.context_index]);
      }
      ex.context_index = to;
    }
    return out;
  }
};

// What to do with an example whose answer text is not at answer_start.
enum class InvalidAnswerPolicy { fail, skip, keep };

struct SquadReadOptions {
  InvalidAnswerPolicy invalid_answers = InvalidAnswerPolicy::fail;
  // Accept records without an "answers" field (test files for prediction only);
  // such questions are not unanswerable, they are unlabelled.
  bool answers_optional = false;
};

namespace detail {

using json = nlohmann::json;

// "where" names the file, the position and the record id for every message.
struct SquadParseContext {
  const std::string& source;
  std::string position;
  std::string id;
  [[noreturn]] void fail(std::string_view what) const {
    mpt::throw_error("SQuAD file '", source, "', ", position, id.empty() ? "" : " (id '", id, id.empty() ? "" : "')", ": ", what);
  }
  const json& field(const json& obj, const char* name) const {
    const auto it = obj.find(name);
    if (it == obj.end()) fail(mpt::detail::concat("missing field '", name, "'"));
    return *it;
  }
  std::string string_field(const json& obj, const char* name) const {
    const json& v = field(obj, name);
    if (!v.is_string()) fail(mpt::detail::concat("field '", name, "' must be a string, found ", v.type_name()));
    return v.get<std::string>();
  }
  // Ids are strings; integer ids (some converted datasets) are taken as text.
  std::string id_field(const json& obj) const {
    const json& v = field(obj, "id");
    if (v.is_number_integer()) return v.dump();
    if (!v.is_string()) fail(mpt::detail::concat("field 'id' must be a string, found ", v.type_name()));
    return v.get<std::string>();
  }
  std::int64_t integer(const json& v, const char* name) const {
    if (!v.is_number_integer()) fail(mpt::detail::concat("field '", name, "' must be an integer, found ", v.type_name()));
    return v.get<std::int64_t>();
  }
  const json& array_field(const json& obj, const char* name) const {
    const json& v = field(obj, name);
    if (!v.is_array()) fail(mpt::detail::concat("field '", name, "' must be an array, found ", v.type_name()));
    return v;
  }
};

inline json parse_json_text(std::string_view text, const std::string& source, std::string_view where) {
  io::check_json_strings(text, mpt::detail::concat("SQuAD file '", source, "'", where));
  json parsed;
  try {
    parsed = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    mpt::throw_error("SQuAD file '", source, "'", where, ": malformed JSON at byte ", e.byte, ": ", e.what());
  } catch (const json::exception& e) {  // a number beyond double (out_of_range 406)
    mpt::throw_error("SQuAD file '", source, "'", where, ": malformed JSON: ", e.what());
  }
  io::check_json_depth(text, mpt::detail::concat("SQuAD file '", source, "'", where));
  return parsed;
}

inline std::vector<SquadAnswer> read_nested_answers(const json& list, const SquadParseContext& ctx, const char* name) {
  std::vector<SquadAnswer> answers;
  for (std::size_t a = 0; a < list.size(); ++a) {
    const json& ans = list[a];
    if (!ans.is_object()) ctx.fail(mpt::detail::concat(name, "[", a, "] must be an object"));
    answers.push_back({ctx.string_field(ans, "text"), ctx.integer(ctx.field(ans, "answer_start"), "answer_start")});
  }
  return answers;
}

// HF datasets layout: {"text": [...], "answer_start": [...]}.
inline std::vector<SquadAnswer> read_flat_answers(const json& obj, const SquadParseContext& ctx) {
  const json& texts = ctx.array_field(obj, "text");
  const json& starts = ctx.array_field(obj, "answer_start");
  if (texts.size() != starts.size())
    ctx.fail(mpt::detail::concat("answers has ", texts.size(), " texts but ", starts.size(), " answer_start values"));
  std::vector<SquadAnswer> answers;
  for (std::size_t a = 0; a < texts.size(); ++a) {
    if (!texts[a].is_string()) ctx.fail(mpt::detail::concat("answers.text[", a, "] must be a string"));
    answers.push_back({texts[a].get<std::string>(), ctx.integer(starts[a], "answer_start")});
  }
  return answers;
}

inline bool answer_matches(std::string_view context, const SquadAnswer& a) {
  if (a.answer_start < 0) return false;
  const auto start = static_cast<std::size_t>(a.answer_start);
  const std::size_t len = count_code_points(a.text);
  if (start + len > count_code_points(context)) return false;
  return code_point_substr(context, start, start + len) == a.text;
}

class SquadBuilder {
 public:
  SquadBuilder(SquadDataset& out, const SquadReadOptions& options) : out_(out), options_(options) {}
  bool answers_optional() const noexcept { return options_.answers_optional; }

  std::size_t add_context(std::string context, const SquadParseContext& ctx) {
    check_utf8(context, "context");
    if (context.empty()) ctx.fail("empty context");
    if (!out_.contexts.empty() && out_.contexts.back() == context) return out_.contexts.size() - 1;
    out_.contexts.push_back(std::move(context));
    return out_.contexts.size() - 1;
  }

  void add_example(SquadExample example, const SquadParseContext& ctx) {
    if (example.id.empty()) ctx.fail("empty id");
    if (!seen_ids_.emplace(example.id, out_.examples.size()).second) ctx.fail("duplicate id");
    const std::string& context = out_.contexts[example.context_index];
    bool valid = true;
    for (const auto* list : {&example.answers, &example.plausible_answers}) {
      for (const auto& a : *list) {
        try {
          check_utf8(a.text, "answer text");
        } catch (const mpt::Error& e) {
          ctx.fail(e.what());
        }
        if (!answer_matches(context, a)) valid = false;
      }
    }
    if (example.answers_given && (example.answers.empty() || example.is_impossible)) out_.version_2 = true;
    if (!valid) {
      out_.invalid_answer_ids.push_back(example.id);
      if (options_.invalid_answers == InvalidAnswerPolicy::fail) {
        for (const auto* list : {&example.answers, &example.plausible_answers})
          for (const auto& a : *list)
            if (!answer_matches(context, a))
              ctx.fail(mpt::detail::concat("answer '", a.text, "' is not at answer_start ", a.answer_start, " of its context (",
                                           count_code_points(context), " code points); read with InvalidAnswerPolicy::skip to drop such questions"));
      }
      if (options_.invalid_answers == InvalidAnswerPolicy::skip) return;
    }
    out_.examples.push_back(std::move(example));
  }

 private:
  SquadDataset& out_;
  const SquadReadOptions& options_;
  std::unordered_map<std::string, std::size_t> seen_ids_;
};

inline void read_flat_record(const json& rec, SquadParseContext& ctx, SquadBuilder& builder) {
  if (!rec.is_object()) ctx.fail(mpt::detail::concat("record must be an object, found ", rec.type_name()));
  ctx.id.clear();
  SquadExample ex;
  ex.id = ctx.id_field(rec);
  ctx.id = ex.id;
  if (rec.contains("title") && rec["title"].is_string()) ex.title = rec["title"].get<std::string>();
  ex.question = ctx.string_field(rec, "question");
  check_utf8(ex.question, "question");
  ex.context_index = builder.add_context(ctx.string_field(rec, "context"), ctx);
  if (!rec.contains("answers") && builder.answers_optional()) {
    ex.answers_given = false;
    builder.add_example(std::move(ex), ctx);
    return;
  }
  const json& answers = ctx.field(rec, "answers");
  if (!answers.is_object()) ctx.fail(mpt::detail::concat("field 'answers' must be an object {text, answer_start}, found ", answers.type_name()));
  ex.answers = read_flat_answers(answers, ctx);
  ex.is_impossible = ex.answers.empty();
  builder.add_example(std::move(ex), ctx);
}

inline void read_nested_article(const json& article, std::size_t a, SquadParseContext& ctx, SquadBuilder& builder) {
  ctx.position = mpt::detail::concat("data[", a, "]");
  ctx.id.clear();
  if (!article.is_object()) ctx.fail(mpt::detail::concat("article must be an object, found ", article.type_name()));
  std::string title;
  if (article.contains("title") && article["title"].is_string()) title = article["title"].get<std::string>();
  const json& paragraphs = ctx.array_field(article, "paragraphs");
  for (std::size_t p = 0; p < paragraphs.size(); ++p) {
    ctx.position = mpt::detail::concat("data[", a, "].paragraphs[", p, "]");
    ctx.id.clear();
    const json& para = paragraphs[p];
    if (!para.is_object()) ctx.fail(mpt::detail::concat("paragraph must be an object, found ", para.type_name()));
    const std::size_t context_index = builder.add_context(ctx.string_field(para, "context"), ctx);
    const json& qas = ctx.array_field(para, "qas");
    for (std::size_t q = 0; q < qas.size(); ++q) {
      ctx.position = mpt::detail::concat("data[", a, "].paragraphs[", p, "].qas[", q, "]");
      ctx.id.clear();
      const json& qa = qas[q];
      if (!qa.is_object()) ctx.fail(mpt::detail::concat("question must be an object, found ", qa.type_name()));
      SquadExample ex;
      ex.id = ctx.id_field(qa);
      ctx.id = ex.id;
      ex.title = title;
      ex.question = ctx.string_field(qa, "question");
      check_utf8(ex.question, "question");
      ex.context_index = context_index;
      if (!qa.contains("answers") && builder.answers_optional()) {
        ex.answers_given = false;
      } else {
        ex.answers = read_nested_answers(ctx.array_field(qa, "answers"), ctx, "answers");
      }
      if (const auto it = qa.find("is_impossible"); it != qa.end()) {
        if (!it->is_boolean()) ctx.fail("field 'is_impossible' must be a boolean");
        ex.is_impossible = it->get<bool>();
      }
      if (const auto it = qa.find("plausible_answers"); it != qa.end()) {
        if (!it->is_array()) ctx.fail("field 'plausible_answers' must be an array");
        ex.plausible_answers = read_nested_answers(*it, ctx, "plausible_answers");
      }
      if (ex.is_impossible && !ex.answers.empty()) ctx.fail("is_impossible is true but answers is not empty");
      builder.add_example(std::move(ex), ctx);
    }
  }
}

inline bool version_says_2(const json& root) {
  if (!root.is_object()) return false;
  const auto it = root.find("version");
  if (it == root.end()) return false;
  if (it->is_number()) return it->get<double>() >= 2.0;
  if (it->is_string()) {
    const auto v = it->get<std::string>();
    return v.rfind("v2", 0) == 0 || v.rfind("2", 0) == 0;
  }
  return false;
}

// datasets' to_json() writes JSON Lines even into ".json" files: the first
// line is a whole object and more follows.
inline bool looks_like_json_lines(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{') return false;
  const std::size_t end = text.find('\n', first);
  if (end == std::string_view::npos || text.find_first_not_of(" \t\r\n", end) == std::string_view::npos) return false;
  return json::accept(text.substr(first, end - first));
}

}  // namespace detail

// Parses SQuAD text. Layout auto-detected: nested ("paragraphs"), flattened
// records under "data" or as a top-level array, or JSON Lines when
// json_lines is true or the first line is a whole JSON object.
inline SquadDataset parse_squad(std::string_view text, const std::string& source, const SquadReadOptions& options = {}, bool json_lines = false) {
  SquadDataset out;
  out.source = source;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  detail::SquadBuilder builder(out, options);
  detail::SquadParseContext ctx{out.source, {}, {}};
  if (!json_lines) json_lines = detail::looks_like_json_lines(text);
  if (json_lines) {
    std::size_t line_number = 0;
    std::size_t begin = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(begin, end - begin);
      begin = end + 1;
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      const auto rec = detail::parse_json_text(line, out.source, mpt::detail::concat(", line ", line_number));
      ctx.position = mpt::detail::concat("line ", line_number);
      detail::read_flat_record(rec, ctx, builder);
    }
  } else {
    const auto root = detail::parse_json_text(text, out.source, "");
    const detail::json* records = nullptr;
    if (root.is_array()) {
      records = &root;
    } else if (root.is_object()) {
      ctx.position = "top level";
      records = &ctx.array_field(root, "data");
      if (const auto v = root.find("version"); v != root.end()) out.version = v->is_string() ? v->get<std::string>() : v->dump();
      out.version_2 = detail::version_says_2(root);
    } else {
      ctx.position = "top level";
      ctx.fail(mpt::detail::concat("expected an object with 'data' or an array, found ", root.type_name()));
    }
    const bool nested = !records->empty() && (*records)[0].is_object() && (*records)[0].contains("paragraphs");
    for (std::size_t i = 0; i < records->size(); ++i) {
      if (nested) {
        detail::read_nested_article((*records)[i], i, ctx, builder);
      } else {
        ctx.position = mpt::detail::concat("data[", i, "]");
        detail::read_flat_record((*records)[i], ctx, builder);
      }
    }
  }
  return out;
}

// Reads a SQuAD file; ".jsonl" files are JSON Lines.
inline SquadDataset read_squad(const std::filesystem::path& path, const SquadReadOptions& options = {}) {
  const std::string text = read_text_file(path);
  const bool json_lines = path.extension() == ".jsonl";
  return parse_squad(text, path.string(), options, json_lines);
}

}  // namespace mpt::data
