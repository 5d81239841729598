#pragma once
// Optimizer, loss-scaler and scheduler state in a checkpoint folder, so that
// a resumed run continues bit-identically:
//
//   dir/optimizer.safetensors   the optimizer's tensors (moments, master
//                               weights or trails), raw, in their own dtype
//   dir/optimizer_state.json    {"optimizer": scalars, "scaler": ..., "scheduler": ...}
//
//   save_optimizer_state(dir, opt.state_dict(), scaler.state(), schedule.state());
//   auto loaded = load_optimizer_state(dir);     // or parse_optimizer_state(json text, source, SafetensorsFile)
//   opt.load_state_dict(loaded.optimizer.view());
//   scaler.load_state(loaded.scaler);  schedule.load_state(loaded.scheduler);
//
// Both files are written atomically (temp file + rename); a missing, truncated
// or foreign file is an mpt::Error naming it.

#include <mpt/io/file.hpp>
#include <mpt/io/json_depth.hpp>
#include <mpt/io/safetensors.hpp>
#include <mpt/optim/state_dict.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mpt::optim {

inline constexpr const char* optimizer_tensors_file = "optimizer.safetensors";
inline constexpr const char* optimizer_scalars_file = "optimizer_state.json";

inline void save_optimizer_state(const std::filesystem::path& dir, const StateDict& optimizer,
                                 const nlohmann::json& scaler = nlohmann::json::object(),
                                 const nlohmann::json& scheduler = nlohmann::json::object()) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw_error("save_optimizer_state: cannot create the folder ", dir, ": ", ec.message());
  std::vector<io::RawTensor> tensors;
  tensors.reserve(optimizer.tensors.size());
  for (const StateTensor& t : optimizer.tensors) {
    tensors.push_back({t.name, t.dtype, {static_cast<std::int64_t>(t.count)}, std::span<const std::byte>(t.data, t.bytes())});
  }
  io::save_safetensors(dir / optimizer_tensors_file, std::span<const io::RawTensor>(tensors), {{"format", "mpt-optimizer"}});
  const nlohmann::json scalars = {{"optimizer", optimizer.scalars}, {"scaler", scaler}, {"scheduler", scheduler}};
  io::write_file_atomic(dir / optimizer_scalars_file, scalars.dump(2) + "\n");
}

struct LoadedOptimizerState {
  SavedState optimizer;  // owns copies of the tensors
  nlohmann::json scaler;
  nlohmann::json scheduler;
};

// The same from the two files' contents: optimizer_state.json's text (`json_source`
// names it in errors) and optimizer.safetensors, already open.
inline LoadedOptimizerState parse_optimizer_state(std::string_view scalars_text, const std::string& json_source, const io::SafetensorsFile& file) {
  io::check_json_strings(scalars_text, mpt::detail::concat("load_optimizer_state: ", json_source));
  nlohmann::json scalars;
  try {
    scalars = nlohmann::json::parse(scalars_text);
  } catch (const nlohmann::json::exception& e) {
    throw_error("load_optimizer_state: ", json_source, " is not valid JSON (", e.what(), "); the checkpoint is damaged: resume from an earlier one");
  }
  io::check_json_depth(scalars_text, mpt::detail::concat("load_optimizer_state: ", json_source));
  for (const char* key : {"optimizer", "scaler", "scheduler"}) {
    if (!scalars.is_object() || !scalars.contains(key) || !scalars[key].is_object()) {
      throw_error("load_optimizer_state: ", json_source, " has no \"", key, "\" object; it was not written by save_optimizer_state");
    }
  }
  StateDict view;
  view.scalars = scalars["optimizer"];
  for (const io::SafetensorsEntry& e : file.tensors()) {
    // SavedState copies from these views before `file` is unmapped; they are only read.
    view.tensors.push_back({e.name, e.dtype, e.numel(), const_cast<std::byte*>(e.bytes.data())});
  }
  return {SavedState(view), scalars["scaler"], scalars["scheduler"]};
}

inline LoadedOptimizerState load_optimizer_state(const std::filesystem::path& dir) {
  const auto json_path = dir / optimizer_scalars_file;
  const std::string text = io::read_text_file(json_path);
  return parse_optimizer_state(text, mpt::detail::concat(json_path), io::SafetensorsFile::open(dir / optimizer_tensors_file));
}

}  // namespace mpt::optim
