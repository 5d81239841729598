// WordPieceTokenizer against the BERT tokenizer rules. Each hand-written
// expectation names the rule it comes from: google-research/bert
// tokenization.py (BasicTokenizer, WordpieceTokenizer) and Hugging Face
// tokenizers (BertNormalizer, BertPreTokenizer, WordPiece), whose offsets
// are code-point indices into the original text.
#include "test_helpers.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

using mpt::data::CharSpan;
using mpt::data::WordPieceTokenizer;

namespace {
std::vector<std::string> tokens(const std::string& text, const WordPieceTokenizer& tok = test_data::uncased()) {
  return tok.tokens_of(tok.encode(text));
}
std::vector<CharSpan> offsets(const std::string& text) { return test_data::uncased().encode(text).offsets; }
using S = std::vector<std::string>;
using O = std::vector<CharSpan>;
}  // namespace

TEST_CASE("tokenizer: vocabulary and special ids") {
  const auto& tok = test_data::uncased();
  CHECK(tok.vocab_size() == 30522);
  CHECK(tok.required_id("[PAD]") == 0);
  CHECK(tok.unk_id() == 100);
  CHECK(tok.required_id("[CLS]") == 101);
  CHECK(tok.required_id("[SEP]") == 102);
  CHECK(tok.id_to_token(1996) == "the");
  CHECK_THROWS_AS(tok.required_id("[NOPE]"), mpt::Error);
  CHECK_THROWS_AS(WordPieceTokenizer::from_vocab_file("/nonexistent/vocab.txt"), mpt::Error);
}

TEST_CASE("tokenizer: punctuation split and WordPiece continuation") {
  // _run_split_on_punc / BertPreTokenizer: every punctuation char is its own word.
  CHECK(tokens("Hello, World!") == S{"hello", ",", "world", "!"});
  CHECK(offsets("Hello, World!") == O{{0, 5}, {5, 6}, {7, 12}, {12, 13}});
  // WordpieceTokenizer docstring example: "unaffable" -> un ##aff ##able in
  // Google's toy vocab; bert-base-uncased has una ##ffa ##ble (greedy longest match).
  CHECK(tokens("unaffable") == S{"una", "##ffa", "##ble"});
  CHECK(offsets("unaffable") == O{{0, 3}, {3, 6}, {6, 9}});
  // ASCII 33-47, 58-64, 91-96, 123-126 are punctuation even where Unicode says S* ($ + < = > ^ ` | ~).
  CHECK(tokens("$5+x^y|z~") == S{"$", "5", "+", "x", "^", "y", "|", "z", "~"});
  // Unicode P* (Pi/Pf quotes, Pd em dash, Po inverted question mark).
  CHECK(tokens("\u00bfqu\u00e9? \u201chi\u201d\u2014ok") == S{"\u00bf", "que", "?", "\u201c", "hi", "\u201d", "\u2014", "ok"});
}

TEST_CASE("tokenizer: lower-casing and accent stripping keep original offsets") {
  // BertNormalizer: strip_accents (NFD, drop Mn) then lowercase; offsets of
  // each normalized char point at the original char it came from.
  CHECK(tokens("H\u00e9llo na\u00efve caf\u00e9") == S{"hello", "naive", "cafe"});
  CHECK(offsets("H\u00e9llo na\u00efve caf\u00e9") == O{{0, 5}, {6, 11}, {12, 16}});
  // A decomposed accent (e + U+0301) is two original code points: the mark
  // is filtered out with its alignment (NormalizedString::filter), so the
  // token ends after the "e".
  CHECK(tokens("cafe\u0301") == S{"cafe"});
  CHECK(offsets("cafe\u0301") == O{{0, 4}});
  // U+0130: NFD gives I + U+0307, the mark is stripped, then lower-cased.
  CHECK(tokens("\u0130stanbul") == S{"istanbul"});
  // Cased (do_lower_case false): no lower-casing, no accent stripping.
  const auto cased = WordPieceTokenizer::from_vocab_file(test_data::path("bert-base-uncased-vocab.txt"), false);
  CHECK(cased.options().do_lower_case == false);
  CHECK(tokens("Hello hello caf\u00e9", cased) == S{"[UNK]", "hello", "[UNK]"});
}

TEST_CASE("tokenizer: CJK ideographs become single tokens") {
  // _tokenize_chinese_chars / handle_chinese_chars: spaces around each CJK ideograph.
  CHECK(tokens("\u5317\u4eac\u5927\u5b66abc") == S{"\u5317", "\u4eac", "\u5927", "\u5b66", "abc"});
  CHECK(offsets("\u5317\u4eac\u5927\u5b66abc") == O{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 7}});
  // Hiragana/Katakana are not in the CJK ranges: they stay one word, split by WordPiece.
  CHECK(tokens("\u3068\u30ab\u30bf") == S{"\u3068", "##\u30ab", "##\u30bf"});
  // Astral ideograph (U+20000): one code point, offsets [0, 1) as a Python index.
  CHECK(offsets("\U00020000x") == O{{0, 1}, {1, 2}});
}

TEST_CASE("tokenizer: control, zero-width and whitespace characters") {
  // _clean_text / do_clean_text: NUL, U+FFFD and "Other" categories (Cc, Cf)
  // are removed; the removed chars stay inside the span of the word around them.
  CHECK(tokens(std::string("a\0b", 3)) == S{"ab"});
  CHECK(tokens("ab\u200bcd") == S{"abc", "##d"});  // ZWSP is Cf: dropped, the word is "abcd"
  CHECK(offsets("ab\u200bcd") == O{{0, 4}, {4, 5}});
  CHECK(tokens("x\ufffdy") == S{"x", "##y"});  // one word "xy"; "xy" is not in the vocabulary
  CHECK(offsets("x\ufffdy") == O{{0, 1}, {2, 3}});
  // \t \n \r and Unicode White_Space (NBSP, U+3000, U+2028) split words.
  CHECK(tokens("a\tb\nc\rd\u00a0e\u3000f\u2028g") == S{"a", "b", "c", "d", "e", "f", "g"});
  // U+000B and U+0085 are Cc: removed, not whitespace (filter before map in do_clean_text).
  CHECK(tokens("ab\u000bcd") == S{"abc", "##d"});
  // tokenizers' is_control is unicode_categories' is_other(): Cc, Cf, Co. A
  // private-use char (Co) is removed; an unassigned one (Cn, U+0378) is kept,
  // so "a\u0378b" is one unknown word (google-research/bert would drop it).
  CHECK(tokens("ab\ue000cd") == S{"abc", "##d"});
  CHECK(tokens("a\u0378b") == S{"[UNK]"});
  CHECK(offsets("a\u0378b") == O{{0, 3}});
  CHECK(tokens("   ").empty());
  CHECK(tokens("").empty());
}

TEST_CASE("tokenizer: special tokens in the text") {
  // BertTokenizerFast's added tokens ([PAD] [UNK] [CLS] [SEP] [MASK], normalized: false)
  // are matched verbatim in the raw text before normalization; "[cls]" is not one.
  CHECK(tokens("a[SEP]b") == S{"a", "[SEP]", "b"});
  CHECK(offsets("a[SEP]b") == O{{0, 1}, {1, 6}, {6, 7}});
  CHECK(tokens("[cls]") == S{"[", "cl", "##s", "]"});
}

TEST_CASE("tokenizer: transformers' own BertTokenizerFast expectations") {
  // transformers tests/models/bert/test_tokenization_bert.py,
  // test_offsets_with_special_characters, do_lower_case branch (bert-base-uncased).
  const auto e = test_data::uncased().encode("A, na\u00efve [MASK] AllenNLP sentence.");
  CHECK(test_data::uncased().tokens_of(e) == S{"a", ",", "naive", "[MASK]", "allen", "##nl", "##p", "sentence", "."});
  CHECK(e.offsets == O{{0, 1}, {1, 2}, {3, 8}, {9, 15}, {16, 21}, {21, 23}, {23, 24}, {25, 33}, {33, 34}});
  // test_clean_text: the soft hyphen U+00AD (Cf) alone gives no token.
  CHECK(tokens("\u00ad").empty());
  // test_basic_tokenizer_lower: whitespace runs, punctuation split, lower-casing.
  CHECK(tokens(" \tHeLLo!how  \n Are yoU?  ") == S{"hello", "!", "how", "are", "you", "?"});
}

TEST_CASE("tokenizer: long words become [UNK]") {
  // max_input_chars_per_word = 100: a word of 100 chars is WordPiece'd, 101 chars is [UNK].
  CHECK(tokens(std::string(100, 'a')).front() != "[UNK]");
  CHECK(tokens(std::string(101, 'b')) == S{"[UNK]"});
  CHECK(offsets(std::string(101, 'b')) == O{{0, 101}});
  // A word with a piece not in the vocabulary is one [UNK] for the whole word.
  // WordpieceTokenizer: "abc" matches but "##\u263a" does not, so the whole
  // word "abc\u263a" (U+263A is So, not punctuation) is one [UNK].
  CHECK(tokens("abc\u263a") == S{"[UNK]"});
  CHECK(offsets("abc\u263a") == O{{0, 4}});
}

TEST_CASE("tokenizer: emoji and mixed scripts by hand") {
  // An emoji is one code point (one Python index, not two UTF-16 units); So
  // is not punctuation, and the vocabulary lacks it: [UNK].
  CHECK(tokens("a \U0001F600 b") == S{"a", "[UNK]", "b"});
  CHECK(offsets("a \U0001F600 b") == O{{0, 1}, {2, 3}, {4, 5}});
  // Skin-tone modifier (Sk) joins its base into one word; ZWJ (Cf) is removed
  // by clean_text, so a ZWJ family is one 3-emoji word spanning all 5 code points.
  CHECK(offsets("\U0001F44D\U0001F3FD") == O{{0, 2}});
  CHECK(tokens("\U0001F468\u200d\U0001F469\u200d\U0001F467!") == S{"[UNK]", "!"});
  CHECK(offsets("\U0001F468\u200d\U0001F469\u200d\U0001F467!") == O{{0, 5}, {5, 6}});
  // Greek: the tonos of "\u03ac" is stripped (NFD -> alpha + U+0301 Mn).
  CHECK(tokens("\u03ac").front() == "\u03b1");
  // Cyrillic short i (U+0439) decomposes to i + breve (Mn): stripped too, the
  // BERT-uncased behaviour; the piece covers the original two letters [14, 16).
  const auto ru = test_data::uncased().encode("\u0440\u0443\u0441\u0441\u043a\u0438\u0439");
  CHECK(test_data::uncased().tokens_of(ru).back() == "##\u0438\u0438");
  CHECK(ru.offsets.back() == CharSpan{5, 7});
}

TEST_CASE("tokenizer: emoji and mixed scripts match the reference fixture") {
  // tests/fixtures/ref_tokenizer_cases.jsonl comes from tools/bert_reference_tokenizer.py,
  // an independent Python implementation of the same published rules.
  std::ifstream in(test_data::path("ref_tokenizer_cases.jsonl"));
  REQUIRE(in);
  const auto cased = WordPieceTokenizer::from_vocab_file(test_data::path("bert-base-uncased-vocab.txt"), false);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto c = nlohmann::json::parse(line);
    const auto& tok = c["lower"].get<bool>() ? test_data::uncased() : cased;
    const auto e = tok.encode(c["text"].get<std::string>());
    CAPTURE(line);
    CHECK(tok.tokens_of(e) == c["tokens"].get<std::vector<std::string>>());
    CHECK(e.ids == c["ids"].get<std::vector<std::int32_t>>());
    std::vector<std::vector<std::int32_t>> offs;
    for (const auto& o : e.offsets) offs.push_back({o.begin, o.end});
    CHECK(offs == c["offsets"].get<std::vector<std::vector<std::int32_t>>>());
    ++n;
  }
  CHECK(n >= 60);
}

TEST_CASE("tokenizer: invalid UTF-8 is an error naming the byte") {
  const auto& tok = test_data::uncased();
  CHECK_THROWS_WITH_AS(tok.encode("ab\xff"), doctest::Contains("invalid UTF-8 at byte 2"), mpt::Error);
  CHECK_THROWS_AS(tok.encode("\xc3"), mpt::Error);          // truncated sequence
  CHECK_THROWS_AS(tok.encode("\xc0\xaf"), mpt::Error);      // overlong "/"
  CHECK_THROWS_AS(tok.encode("\xed\xa0\x80"), mpt::Error);  // surrogate U+D800
}

TEST_CASE("tokenizer: tokenizer_config.json do_lower_case is honoured") {
  const auto dir = test_data::temp_path("mpt_test_tokenizer_config");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(test_data::path("bert-base-uncased-vocab.txt"), dir / "vocab.txt", std::filesystem::copy_options::overwrite_existing);
  mpt::data::write_text_atomic(dir / "tokenizer_config.json", R"({"do_lower_case": false})");
  CHECK(WordPieceTokenizer::from_vocab_file(dir / "vocab.txt").options().do_lower_case == false);
  CHECK(WordPieceTokenizer::from_vocab_file(dir / "vocab.txt", true).options().do_lower_case == true);  // explicit wins
  std::filesystem::remove(dir / "tokenizer_config.json");
  CHECK(WordPieceTokenizer::from_vocab_file(dir / "vocab.txt").options().do_lower_case == true);
  std::filesystem::remove_all(dir);
}

TEST_CASE("mpt_tokenize: JSON lines in, tokens/ids/offsets out") {
  // The tool is built next to this test (<build>/bin); skip when it is not.
  const auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "mpt_tokenize";
  if (!std::filesystem::exists(exe)) {
    MESSAGE("mpt_tokenize not built; skipped");
    return;
  }
  const auto input = test_data::temp_path("mpt_tokenize_input.jsonl");
  mpt::data::write_text_atomic(input, "\"Caf\\u00e9, \\u5317!\"\n");
  const std::string cmd = exe.string() + " --vocab " + test_data::path("bert-base-uncased-vocab.txt") + " < " + input.string();
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  while (const auto n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  CHECK(pclose(pipe) == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["tokens"] == nlohmann::json({"cafe", ",", "\u5317", "!"}));
  CHECK(j["offsets"] == nlohmann::json({{0, 4}, {4, 5}, {6, 7}, {7, 8}}));
  // A line that is not a JSON string: a failing exit status and the line number on stderr.
  mpt::data::write_text_atomic(input, "\"ok\"\n[1, 2]\n");
  FILE* bad = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(bad != nullptr);
  std::string err;
  while (const auto n = fread(buf, 1, sizeof buf, bad)) err.append(buf, n);
  CHECK(pclose(bad) != 0);
  CHECK(err.find("stdin line 2") != std::string::npos);
  std::filesystem::remove(input);
}
