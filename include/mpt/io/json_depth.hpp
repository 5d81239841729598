#pragma once
// Limits on the JSON text mpt reads, checked on the raw text.
//
// Depth: nlohmann::json parses without recursion, but copying, comparing and printing
// a value recurse once per level of arrays and objects: a file of a million '['
// parses, then overflows the stack when it is used (destroying does not). The files
// mpt reads (config.json, SQuAD, trainer_state.json, safetensors headers, optimizer
// state) nest a few levels, so their readers refuse deeper text once it has parsed
// (text that does not parse is reported as such).
//
// String length: one string of a gigabyte would be allocated whole by the parser (and
// then tokenized, featurized...). No string of these files comes near 64 MiB (a SQuAD
// context is a paragraph), so the readers refuse a longer one before parsing.
//
//   io::check_json_depth(text, source)     throws mpt::Error past io::json_max_depth levels
//   io::check_json_strings(text, source)   throws mpt::Error past io::json_max_string_bytes

#include <mpt/core/error.hpp>

#include <cstddef>
#include <string_view>

namespace mpt::io {

inline constexpr std::size_t json_max_depth = 512;
inline constexpr std::size_t json_max_string_bytes = std::size_t{64} << 20;

namespace detail {
// The deepest nesting of arrays and objects and the longest string of JSON text, with
// the byte offsets where the first one past a limit starts (brackets inside strings do
// not count); text that is not JSON is left to the parser to refuse.
struct JsonExtent {
  std::size_t too_deep_at = std::string_view::npos;
  std::size_t too_long_at = std::string_view::npos;
  std::size_t too_long_bytes = 0;
};

inline JsonExtent json_extent(std::string_view text, std::size_t max_depth, std::size_t max_string) {
  JsonExtent extent;
  std::size_t depth = 0, string_start = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        if (i - string_start - 1 > max_string && extent.too_long_at == std::string_view::npos) {
          extent.too_long_at = string_start;
          extent.too_long_bytes = i - string_start - 1;
        }
      }
    } else if (c == '"') {
      in_string = true;
      string_start = i;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth && extent.too_deep_at == std::string_view::npos) extent.too_deep_at = i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  // An unterminated string runs to the end of the text.
  if (in_string && text.size() - string_start - 1 > max_string && extent.too_long_at == std::string_view::npos) {
    extent.too_long_at = string_start;
    extent.too_long_bytes = text.size() - string_start - 1;
  }
  return extent;
}
}  // namespace detail

inline void check_json_depth(std::string_view text, std::string_view source) {
  const auto extent = detail::json_extent(text, json_max_depth, std::string_view::npos);
  if (extent.too_deep_at != std::string_view::npos) {
    throw_error(source, ": JSON nested more than ", json_max_depth, " levels deep (at byte ", extent.too_deep_at,
                "); mpt's files nest a few levels: the file is damaged or not the file it should be");
  }
}

inline void check_json_strings(std::string_view text, std::string_view source) {
  const auto extent = detail::json_extent(text, std::string_view::npos, json_max_string_bytes);
  if (extent.too_long_at != std::string_view::npos) {
    throw_error(source, ": a JSON string of ", extent.too_long_bytes, " bytes (at byte ", extent.too_long_at, "); mpt reads strings of at most ",
                json_max_string_bytes >> 20, " MiB: the file is damaged or not the file it should be (split very long texts)");
  }
}

}  // namespace mpt::io
