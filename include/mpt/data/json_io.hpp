#pragma once
// JSON files in and out for the data pipeline. Reads and atomic writes (temp
// file in the same folder, fsync, rename) come from io/file.hpp, so a crash
// never leaves a half-written predictions file.

#include <mpt/io/file.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <system_error>

namespace mpt::data {

using io::read_text_file;

// Writes text to path atomically, creating the folder if needed.
inline void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path parent = path.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) mpt::throw_error("cannot create folder '", parent.string(), "': ", ec.message());
  }
  io::write_file_atomic(path, std::string_view(text));
}

// JSON with Python json.dump(indent=4)-like layout, a final newline, ASCII
// escapes for non-ASCII (Python's ensure_ascii default).
template <class Json>
void write_json_atomic(const std::filesystem::path& path, const Json& value, int indent = 4) {
  write_text_atomic(path, value.dump(indent, ' ', true) + "\n");
}

}  // namespace mpt::data
