#pragma once
// UTF-8 decoding/encoding and the character classes the BERT tokenizer needs,
// with the definitions of Hugging Face tokenizers' BertNormalizer and
// BertPreTokenizer (Rust `char` semantics), looked up through utf8proc.

#include <mpt/core/error.hpp>

#include <utf8proc.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mpt::data::detail {

// Decodes the code point at text[pos]; advances pos. Returns -1 on
// ill-formed UTF-8 (bad lead byte, bad continuation, overlong, surrogate,
// beyond U+10FFFF, truncated), leaving pos unchanged.
inline std::int32_t decode_utf8(std::string_view text, std::size_t& pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  std::size_t len = 0;
  std::int32_t cp = 0;
  std::int32_t min_cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min_cp = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min_cp = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min_cp = 0x10000;
  } else {
    return -1;
  }
  if (pos + len > text.size()) return -1;
  for (std::size_t i = 1; i < len; ++i) {
    const unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  pos += len;
  return cp;
}

inline void append_utf8(std::string& out, std::int32_t cp) {
  const auto u = static_cast<std::uint32_t>(cp);
  if (u < 0x80) {
    out.push_back(static_cast<char>(u));
  } else if (u < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (u >> 6)));
    out.push_back(static_cast<char>(0x80 | (u & 0x3F)));
  } else if (u < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (u >> 12)));
    out.push_back(static_cast<char>(0x80 | ((u >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (u & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (u >> 18)));
    out.push_back(static_cast<char>(0x80 | ((u >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((u >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (u & 0x3F)));
  }
}

// Throws mpt::Error naming the first ill-formed byte.
inline void check_utf8(std::string_view text, std::string_view what) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t at = pos;
    if (decode_utf8(text, pos) < 0) {
      mpt::throw_error(what, ": invalid UTF-8 at byte ", at, " (byte value 0x", std::hex, static_cast<unsigned>(static_cast<unsigned char>(text[at])),
                       ")");
    }
  }
}

// Number of code points (Python len()) of valid UTF-8.
inline std::size_t count_code_points(std::string_view text) {
  std::size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Byte offset of code point index cp_index in valid UTF-8 (clamped to size).
inline std::size_t byte_offset_of_code_point(std::string_view text, std::size_t cp_index) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (n == cp_index) return i;
      ++n;
    }
  }
  return text.size();
}

// Substring by code-point indices [begin, end) (Python text[begin:end]).
inline std::string_view code_point_substr(std::string_view text, std::size_t begin, std::size_t end) {
  if (end <= begin) return {};
  const std::size_t b = byte_offset_of_code_point(text, begin);
  const std::size_t rest = byte_offset_of_code_point(text.substr(b), end - begin);
  return text.substr(b, rest);
}

inline utf8proc_category_t category(std::int32_t cp) { return static_cast<utf8proc_category_t>(utf8proc_category(cp)); }

// Rust char::is_whitespace (the Unicode White_Space property).
inline bool is_unicode_white_space(std::int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Python str.isspace(): used by the SQuAD evaluation's split() and by lstrip().
inline bool is_python_space(std::int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// BertNormalizer: \t \n \r count as whitespace, not control.
inline bool is_bert_whitespace(std::int32_t cp) { return is_unicode_white_space(cp); }

// BertNormalizer is_control: unicode_categories' is_other(), which is Cc, Cf
// and Co only (not Cn: unassigned code points are kept, unlike
// google-research/bert's startswith("C")), except \t \n \r.
inline bool is_bert_control(std::int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 128) return cp < 32 || cp == 127;  // ASCII: Cc only
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
      return true;
    default:
      return false;
  }
}

// BertPreTokenizer is_bert_punc: ASCII punctuation (33-47, 58-64, 91-96,
// 123-126) or any Unicode P* category.
inline bool is_bert_punctuation(std::int32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  if (cp < 128) return false;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// The CJK ranges of tokenizers' is_chinese_char. Note 0x2B920 (not 0x2B820
// as in google-research/bert): we follow the fast tokenizer.
inline bool is_chinese_char(std::int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

inline bool is_nonspacing_mark(std::int32_t cp) { return category(cp) == UTF8PROC_CATEGORY_MN; }

// Canonical decomposition (NFD) of one code point; returns the count written.
// Per-character decomposition without canonical reordering: reordering only
// moves combining marks, which accent stripping removes anyway.
inline std::size_t decompose_nfd(std::int32_t cp, std::array<std::int32_t, 8>& out) {
  if (cp < 0xC0) {
    out[0] = cp;
    return 1;
  }
  int last_boundclass = 0;
  const utf8proc_ssize_t n = utf8proc_decompose_char(cp, reinterpret_cast<utf8proc_int32_t*>(out.data()), static_cast<utf8proc_ssize_t>(out.size()),
                                                     static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE), &last_boundclass);
  if (n <= 0 || static_cast<std::size_t>(n) > out.size()) {
    out[0] = cp;
    return 1;
  }
  return static_cast<std::size_t>(n);
}

// Rust char::to_lowercase: the simple mapping except U+0130, whose full
// lowercase is "i" + U+0307 (its only unconditional multi-char mapping).
inline std::size_t to_lowercase(std::int32_t cp, std::array<std::int32_t, 2>& out) {
  if (cp < 128) {
    out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return 1;
  }
  if (cp == 0x130) {
    out[0] = 'i';
    out[1] = 0x307;
    return 2;
  }
  out[0] = utf8proc_tolower(cp);
  return 1;
}

// Python str.isalnum() or '_' (the \w of Python's re in Unicode mode),
// approximated by the L* and N* categories.
inline bool is_python_word_char(std::int32_t cp) {
  if (cp < 128) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  }
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

}  // namespace mpt::data::detail
