#pragma once
// Arbitrary bytes (invalid UTF-8 included) -> WordPieceTokenizer::encode with
// bert-base-uncased's vocabulary. The first byte picks the options (lower case,
// accents, CJK splitting, text cleaning), the rest is the text.
#include "fuzz_common.hpp"

#include <mpt/data/wordpiece_tokenizer.hpp>
#include <mpt/io/file.hpp>

#include <array>
#include <memory>
#include <string>

#ifndef MPT_TEST_DATA
#error "MPT_TEST_DATA must name tests/fixtures (tests/fuzz/CMakeLists.txt defines it)"
#endif

namespace mpt_fuzz {

namespace detail {
// The 16 option sets, built once from tests/fixtures/bert-base-uncased-vocab.txt.
inline const mpt::data::WordPieceTokenizer& tokenizer_for(unsigned choice) {
  static const auto tokenizers = [] {
    const auto tokens = mpt::data::WordPieceTokenizer::parse_vocab(
        mpt::io::read_text_file(std::string(MPT_TEST_DATA) + "/bert-base-uncased-vocab.txt"), "bert-base-uncased-vocab.txt");
    std::array<std::unique_ptr<mpt::data::WordPieceTokenizer>, 16> all;
    for (unsigned c = 0; c < all.size(); ++c) {
      mpt::data::WordPieceOptions options;
      options.do_lower_case = (c & 1) != 0;
      if ((c & 2) != 0) options.strip_accents = !options.do_lower_case;
      options.tokenize_chinese_chars = (c & 4) != 0;
      options.clean_text = (c & 8) != 0;
      all[c] = std::make_unique<mpt::data::WordPieceTokenizer>(tokens, options);
    }
    return all;
  }();
  return *tokenizers[choice % tokenizers.size()];
}

// What any encoding of `text` must satisfy: ids in the vocabulary, one offset per id,
// offsets inside the text (in code points) and in order.
inline void check_encoding(const mpt::data::WordPieceTokenizer& tokenizer, std::string_view text, const mpt::data::Encoding& e) {
  require(e.ids.size() == e.offsets.size(), "one offset per id");
  const auto chars = static_cast<std::int64_t>(mpt::data::detail::count_code_points(text));
  std::int32_t previous_begin = 0;
  for (std::size_t i = 0; i < e.ids.size(); ++i) {
    require(e.ids[i] >= 0 && static_cast<std::size_t>(e.ids[i]) < tokenizer.vocab_size(), "ids lie in the vocabulary");
    require(0 <= e.offsets[i].begin && e.offsets[i].begin < e.offsets[i].end && e.offsets[i].end <= chars, "offsets lie in the text");
    require(e.offsets[i].begin >= previous_begin, "offsets are in order");
    previous_begin = e.offsets[i].begin;
  }
}
}  // namespace detail

inline void fuzz_tokenizer(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const auto& tokenizer = detail::tokenizer_for(data[0]);
  const std::string_view text = as_text(data + 1, size - 1);
  accept_mpt_errors([&] {
    const mpt::data::Encoding e = tokenizer.encode(text);
    detail::check_encoding(tokenizer, text, e);
    require(tokenizer.tokens_of(e).size() == e.size(), "every id has its token");
  });
}

}  // namespace mpt_fuzz
