#pragma once
// How deep JSON that mpt reads may nest. nlohmann::json parses without recursion,
// but copying, comparing and printing a value recurse once per level of arrays and
// objects: a file of a million '[' parses, then overflows the stack when it is used
// (destroying does not). The files mpt reads (config.json, SQuAD, trainer_state.json,
// safetensors headers, optimizer state) nest a few levels, so their readers refuse
// deeper text once it has parsed (text that does not parse is reported as such).
//
//   io::check_json_depth(text, source)   throws mpt::Error past io::json_max_depth levels

#include <mpt/core/error.hpp>

#include <cstddef>
#include <string_view>

namespace mpt::io {

inline constexpr std::size_t json_max_depth = 512;

// Counts the nesting of arrays and objects in JSON text (brackets inside strings do
// not count); text that is not JSON is left to the parser to refuse.
inline void check_json_depth(std::string_view text, std::string_view source) {
  std::size_t depth = 0;
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
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > json_max_depth) {
        throw_error(source, ": JSON nested more than ", json_max_depth, " levels deep (at byte ", i,
                    "); mpt's files nest a few levels: the file is damaged or not the file it should be");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

}  // namespace mpt::io
