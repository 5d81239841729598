#pragma once
// WordPieceTokenizer: the BERT tokenizer, equal to Hugging Face's
// BertTokenizerFast on BERT vocabularies (BertNormalizer + BertPreTokenizer +
// WordPiece). Returns ids and offsets into the ORIGINAL text counted in
// Unicode code points (Python string indices), as SQuAD's answer_start is.

#include <mpt/core/error.hpp>
#include <mpt/data/detail/unicode.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mpt::data {

// A half-open range [begin, end) of code-point indices in an original text.
struct CharSpan {
  std::int32_t begin = 0;
  std::int32_t end = 0;
  friend bool operator==(const CharSpan&, const CharSpan&) = default;
};

// Tokens of one text, without special tokens.
struct Encoding {
  std::vector<std::int32_t> ids;
  std::vector<CharSpan> offsets;  // one per id
  std::size_t size() const { return ids.size(); }
};

struct WordPieceOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follows do_lower_case (as HF)
  bool tokenize_chinese_chars = true;
  bool clean_text = true;
  std::size_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  // Matched verbatim in the raw text before normalization, as the fast
  // tokenizer's added tokens (normalized: false): "a[SEP]b" -> a [SEP] b.
  // Entries missing from the vocabulary are ignored.
  std::vector<std::string> special_tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
};

namespace detail {
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
}  // namespace detail

class WordPieceTokenizer {
 public:
  // tokens[i] has id i.
  WordPieceTokenizer(std::vector<std::string> tokens, WordPieceOptions options) : tokens_(std::move(tokens)), options_(std::move(options)) {
    ids_.reserve(tokens_.size());
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      ids_[tokens_[i]] = static_cast<std::int32_t>(i);  // a repeated token keeps its last id, as HF load_vocab
      max_token_bytes_ = std::max(max_token_bytes_, tokens_[i].size());
    }
    const auto unk = ids_.find(options_.unk_token);
    if (unk == ids_.end()) mpt::throw_error("WordPieceTokenizer: the vocabulary has no unknown token '", options_.unk_token, "'");
    unk_id_ = unk->second;
    for (const auto& special : options_.special_tokens) {
      const auto it = ids_.find(special);
      if (it == ids_.end() || special.empty()) continue;
      detail::check_utf8(special, "special token");
      specials_.push_back({special, detail::count_code_points(special), it->second});
      special_first_byte_[static_cast<unsigned char>(special[0])] = true;
    }
    // Longest first, so that a special token that prefixes another loses.
    std::sort(specials_.begin(), specials_.end(), [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });
  }

  // vocab.txt's text: one token per line (a final newline ends the last one, "\r\n" is
  // a newline too), valid UTF-8, at least one token. `source` names it in errors.
  static std::vector<std::string> parse_vocab(std::string_view text, std::string_view source) {
    std::vector<std::string> tokens;
    std::size_t begin = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(begin, end - begin);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      tokens.emplace_back(line);
      begin = end + 1;
    }
    if (tokens.empty()) mpt::throw_error("vocabulary file '", source, "' is empty");
    for (std::size_t i = 0; i < tokens.size(); ++i) detail::check_utf8(tokens[i], mpt::detail::concat("vocabulary file '", source, "' line ", i + 1));
    return tokens;
  }

  // Loads vocab.txt (one token per line). do_lower_case unset: taken from a
  // tokenizer_config.json next to the vocab when present, else true.
  // vocab_path may also be a folder holding vocab.txt.
  static WordPieceTokenizer from_vocab_file(std::filesystem::path vocab_path, std::optional<bool> do_lower_case = std::nullopt) {
    if (std::filesystem::is_directory(vocab_path)) vocab_path /= "vocab.txt";
    std::ifstream in(vocab_path, std::ios::binary);
    if (!in) mpt::throw_error("cannot open vocabulary file '", vocab_path.string(), "'");
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) mpt::throw_error("cannot read vocabulary file '", vocab_path.string(), "'");
    std::vector<std::string> tokens = parse_vocab(text, vocab_path.string());
    WordPieceOptions options;
    const auto config_path = vocab_path.parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(config_path)) {
      std::ifstream cfg(config_path, std::ios::binary);
      nlohmann::json config;
      try {
        config = nlohmann::json::parse(cfg);
      } catch (const nlohmann::json::exception& e) {
        mpt::throw_error("'", config_path.string(), "': ", e.what());
      }
      if (config.contains("do_lower_case") && config["do_lower_case"].is_boolean()) options.do_lower_case = config["do_lower_case"].get<bool>();
      if (config.contains("strip_accents") && config["strip_accents"].is_boolean()) options.strip_accents = config["strip_accents"].get<bool>();
      if (config.contains("tokenize_chinese_chars") && config["tokenize_chinese_chars"].is_boolean())
        options.tokenize_chinese_chars = config["tokenize_chinese_chars"].get<bool>();
    }
    if (do_lower_case) options.do_lower_case = *do_lower_case;
    return WordPieceTokenizer(std::move(tokens), std::move(options));
  }

  // Tokenizes UTF-8 text; throws mpt::Error on invalid UTF-8.
  Encoding encode(std::string_view text) const {
    Encoding out;
    encode_into(text, out);
    return out;
  }

  void encode_into(std::string_view text, Encoding& out) const {
    out.ids.clear();
    out.offsets.clear();
    Word word;
    const bool strip = options_.strip_accents.value_or(options_.do_lower_case);
    const bool lower = options_.do_lower_case;
    std::size_t pos = 0;
    std::int32_t index = 0;  // code-point index of the current original char
    for (; pos < text.size(); ++index) {
      if (const Special* special = special_at(text, pos)) {
        flush(word, out);
        out.ids.push_back(special->id);
        out.offsets.push_back({index, index + static_cast<std::int32_t>(special->code_points)});
        pos += special->text.size();
        index += static_cast<std::int32_t>(special->code_points) - 1;
        continue;
      }
      const std::size_t at = pos;
      const std::int32_t cp = detail::decode_utf8(text, pos);
      if (cp < 0) {
        mpt::throw_error("tokenizer: invalid UTF-8 at byte ", at, " (byte value 0x", std::hex,
                         static_cast<unsigned>(static_cast<unsigned char>(text[at])), ")");
      }
      if (options_.clean_text) {
        if (cp == 0 || cp == 0xFFFD || detail::is_bert_control(cp)) continue;
        if (detail::is_bert_whitespace(cp)) {
          flush(word, out);
          continue;
        }
      }
      const bool chinese = options_.tokenize_chinese_chars && detail::is_chinese_char(cp);
      if (chinese) flush(word, out);
      // strip accents (NFD, drop Mn), then lower-case: BertNormalizer's order.
      std::array<std::int32_t, 8> decomposed{};
      std::size_t n_decomposed = 1;
      decomposed[0] = cp;
      if (strip) n_decomposed = detail::decompose_nfd(cp, decomposed);
      for (std::size_t d = 0; d < n_decomposed; ++d) {
        if (strip && decomposed[d] >= 0x300 && detail::is_nonspacing_mark(decomposed[d])) continue;
        std::array<std::int32_t, 2> lowered{};
        std::size_t n_lowered = 1;
        lowered[0] = decomposed[d];
        if (lower) n_lowered = detail::to_lowercase(decomposed[d], lowered);
        for (std::size_t l = 0; l < n_lowered; ++l) add_normalized_char(lowered[l], index, word, out);
      }
      if (chinese) flush(word, out);
    }
    flush(word, out);
  }

  std::vector<std::string> tokens_of(const Encoding& e) const {
    std::vector<std::string> result;
    result.reserve(e.ids.size());
    for (const auto id : e.ids) result.push_back(id_to_token(id));
    return result;
  }

  std::optional<std::int32_t> token_to_id(std::string_view token) const {
    const auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  // Like token_to_id but throws when the vocabulary lacks the token.
  std::int32_t required_id(std::string_view token) const {
    const auto id = token_to_id(token);
    if (!id) mpt::throw_error("WordPieceTokenizer: the vocabulary has no token '", token, "'");
    return *id;
  }
  const std::string& id_to_token(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size())
      mpt::throw_error("WordPieceTokenizer: token id ", id, " outside the vocabulary of ", tokens_.size());
    return tokens_[static_cast<std::size_t>(id)];
  }
  std::int32_t unk_id() const { return unk_id_; }
  std::size_t vocab_size() const { return tokens_.size(); }
  const WordPieceOptions& options() const { return options_; }

 private:
  struct Special {
    std::string text;
    std::size_t code_points;
    std::int32_t id;
  };

  const Special* special_at(std::string_view text, std::size_t pos) const {
    if (!special_first_byte_[static_cast<unsigned char>(text[pos])]) return nullptr;
    for (const auto& s : specials_)
      if (text.compare(pos, s.text.size(), s.text) == 0) return &s;
    return nullptr;
  }

  // One pre-token: normalized UTF-8 bytes, and per normalized char its byte
  // start and the code-point index of the original char it came from.
  struct Word {
    std::string bytes;
    std::vector<std::uint32_t> char_byte;
    std::vector<std::int32_t> origin;
    void clear() {
      bytes.clear();
      char_byte.clear();
      origin.clear();
    }
  };

  void add_normalized_char(std::int32_t c, std::int32_t origin, Word& word, Encoding& out) const {
    if (detail::is_unicode_white_space(c)) {  // BertPreTokenizer: split, remove
      flush(word, out);
      return;
    }
    const bool punct = detail::is_bert_punctuation(c);  // split, isolated
    if (punct) flush(word, out);
    word.char_byte.push_back(static_cast<std::uint32_t>(word.bytes.size()));
    word.origin.push_back(origin);
    detail::append_utf8(word.bytes, c);
    if (punct) flush(word, out);
  }

  // WordPiece on one pre-token: greedy longest-match-first.
  void flush(Word& word, Encoding& out) const {
    const std::size_t n_chars = word.origin.size();
    if (n_chars == 0) return;
    const auto span_of = [&](std::size_t first, std::size_t last_exclusive) {
      return CharSpan{word.origin[first], word.origin[last_exclusive - 1] + 1};
    };
    const auto byte_at = [&](std::size_t c) { return c < n_chars ? word.char_byte[c] : word.bytes.size(); };
    if (n_chars > options_.max_input_chars_per_word) {
      out.ids.push_back(unk_id_);
      out.offsets.push_back(span_of(0, n_chars));
      word.clear();
      return;
    }
    const std::size_t first_new = out.ids.size();
    std::string key;
    std::size_t start = 0;
    bool bad = false;
    while (start < n_chars) {
      std::size_t end = n_chars;
      std::int32_t found = -1;
      const std::size_t prefix = start > 0 ? options_.continuing_subword_prefix.size() : 0;
      for (; end > start; --end) {
        const std::size_t n_bytes = byte_at(end) - byte_at(start);
        if (n_bytes + prefix > max_token_bytes_) continue;
        const std::string_view piece(word.bytes.data() + byte_at(start), n_bytes);
        std::unordered_map<std::string, std::int32_t, detail::StringHash, std::equal_to<>>::const_iterator it;
        if (start > 0) {
          key.assign(options_.continuing_subword_prefix);
          key.append(piece);
          it = ids_.find(std::string_view(key));
        } else {
          it = ids_.find(piece);
        }
        if (it != ids_.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {
        bad = true;
        break;
      }
      out.ids.push_back(found);
      out.offsets.push_back(span_of(start, end));
      start = end;
    }
    if (bad) {  // the whole word becomes [UNK]
      out.ids.resize(first_new);
      out.offsets.resize(first_new);
      out.ids.push_back(unk_id_);
      out.offsets.push_back(span_of(0, n_chars));
    }
    word.clear();
  }

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, std::int32_t, detail::StringHash, std::equal_to<>> ids_;
  WordPieceOptions options_;
  std::int32_t unk_id_ = 0;
  std::size_t max_token_bytes_ = 0;
  std::vector<Special> specials_;
  std::array<bool, 256> special_first_byte_{};
};

}  // namespace mpt::data
