#pragma once
// SQuAD text -> parse_squad: the nested layout (and the flattened one it auto-detects)
// in fuzz_squad, JSON Lines in fuzz_squad_jsonl. Each input is read twice: strictly
// (answers required and at answer_start) and leniently (answers optional, kept when wrong).
#include "fuzz_common.hpp"

#include <mpt/data/squad_reader.hpp>

#include <string>

namespace mpt_fuzz {

namespace detail {
inline void check_squad(const mpt::data::SquadDataset& d, const mpt::data::SquadReadOptions& options) {
  for (const mpt::data::SquadExample& e : d.examples) {
    require(e.context_index < d.contexts.size(), "an example's context exists");
    require(!e.id.empty(), "every example has an id");
    if (options.invalid_answers == mpt::data::InvalidAnswerPolicy::fail) {
      for (const auto& a : e.answers) require(mpt::data::detail::answer_matches(d.context_of(e), a), "strict reading keeps matching answers only");
    }
  }
  const auto half = d.first(d.size() / 2);
  require(half.size() == d.size() / 2, "first(n) keeps n examples");
  for (const auto& e : half.examples) require(e.context_index < half.contexts.size(), "first(n) renumbers the contexts");
}

inline void fuzz_squad_text(const std::uint8_t* data, std::size_t size, bool json_lines) {
  const mpt::data::SquadReadOptions strict{};
  const mpt::data::SquadReadOptions lenient{.invalid_answers = mpt::data::InvalidAnswerPolicy::keep, .answers_optional = true};
  for (const auto* options : {&strict, &lenient}) {
    accept_mpt_errors([&] { check_squad(mpt::data::parse_squad(as_text(data, size), "fuzz.json", *options, json_lines), *options); });
  }
}
}  // namespace detail

inline void fuzz_squad(const std::uint8_t* data, std::size_t size) { detail::fuzz_squad_text(data, size, false); }
inline void fuzz_squad_jsonl(const std::uint8_t* data, std::size_t size) { detail::fuzz_squad_text(data, size, true); }

}  // namespace mpt_fuzz
