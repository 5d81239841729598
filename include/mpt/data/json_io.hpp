#pragma once
// Small file helpers: whole-file reads and atomic JSON writes (temp + rename),
// so a crash never leaves a half-written predictions file.

#include <mpt/core/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace mpt::data {

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) mpt::throw_error("cannot open file '", path.string(), "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) mpt::throw_error("error reading file '", path.string(), "'");
  return std::move(buffer).str();
}

// Writes text to path via a temporary file in the same folder and a rename.
inline void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path parent = path.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) mpt::throw_error("cannot create folder '", parent.string(), "': ", ec.message());
  }
  std::filesystem::path temp = path;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) mpt::throw_error("cannot write file '", temp.string(), "'");
    out << text;
    out.flush();
    if (!out) mpt::throw_error("error writing file '", temp.string(), "'");
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::filesystem::remove(temp, ec);
    mpt::throw_error("cannot rename '", temp.string(), "' to '", path.string(), "'");
  }
}

// JSON with Python json.dump(indent=4)-like layout, a final newline, ASCII
// escapes for non-ASCII (Python's ensure_ascii default).
template <class Json>
void write_json_atomic(const std::filesystem::path& path, const Json& value, int indent = 4) {
  write_text_atomic(path, value.dump(indent, ' ', true) + "\n");
}

}  // namespace mpt::data
