#pragma once
// vocab.txt bytes -> WordPieceTokenizer::parse_vocab and a tokenizer built on it,
// which then encodes a text that touches every code path.
#include "fuzz_tokenizer.hpp"

namespace mpt_fuzz {

inline void fuzz_vocab(const std::uint8_t* data, std::size_t size) {
  accept_mpt_errors([&] {
    const auto tokens = mpt::data::WordPieceTokenizer::parse_vocab(as_text(data, size), "vocab.txt");
    require(!tokens.empty(), "a parsed vocabulary has tokens");
    const mpt::data::WordPieceTokenizer tokenizer(tokens, {});
    constexpr std::string_view text = "[CLS] Héllo, wörld! unaffable 中文 [SEP]a[MASK]b \t x##y [UNK]";
    detail::check_encoding(tokenizer, text, tokenizer.encode(text));
  });
}

}  // namespace mpt_fuzz
