#pragma once
// Shared by the data pipeline tests: fixture paths and loaders.
#include <mpt/mpt.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace test_data {

inline std::string path(const std::string& name) { return std::string(MPT_TEST_DATA) + "/" + name; }

// A name in the temp folder, unique per run (several builds may test at once).
inline std::filesystem::path temp_path(const std::string& name) {
  static const std::string run = std::to_string(std::random_device{}());
  return std::filesystem::temp_directory_path() / (run + "_" + name);
}

inline const mpt::data::WordPieceTokenizer& uncased() {
  static const auto tok = mpt::data::WordPieceTokenizer::from_vocab_file(path("bert-base-uncased-vocab.txt"), true);
  return tok;
}

inline nlohmann::json load_json(const std::string& name) { return nlohmann::json::parse(mpt::data::read_text_file(path(name))); }

// FNV-1a over 32-bit values, as tools/bert_reference_tokenizer.py fnv1a().
inline std::uint64_t fnv1a(std::uint64_t h, std::int64_t v) {
  h ^= static_cast<std::uint64_t>(v) & 0xFFFFFFFFu;
  return h * 0x100000001b3ULL;
}
inline constexpr std::uint64_t fnv_basis = 0xcbf29ce484222325ULL;

inline std::uint64_t encoding_hash(const mpt::data::Encoding& e) {
  std::uint64_t h = fnv_basis;
  for (std::size_t i = 0; i < e.size(); ++i) {
    h = fnv1a(h, e.ids[i]);
    h = fnv1a(h, e.offsets[i].begin);
    h = fnv1a(h, e.offsets[i].end);
  }
  return h;
}

// Pseudo-logits, bit-identical to fake_logit() in the Python reference.
inline float fake_logit(std::uint32_t feature, std::uint32_t position, std::uint32_t which) {
  std::uint32_t h = feature * 1000003u + position * 7919u + which * 104729u;
  h *= 2654435761u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  return static_cast<float>(static_cast<double>(h % 20000u) / 1000.0 - 10.0);
}

}  // namespace test_data
