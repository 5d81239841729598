#pragma once
// Checkpoint folders in output_dir, as transformers lays them out
// (output_dir/checkpoint-<global_step>/), written so that a kill at any moment
// leaves every checkpoint-N either complete or absent:
//
//   CheckpointWriter w(output_dir, step);   // files go into output_dir/.tmp-checkpoint-N.<pid>
//   ... write files into w.folder() (each itself atomic) ...
//   w.commit();                             // mpt_checkpoint.json (size + CRC-32C of every file),
//                                           // fsync, rename to checkpoint-N, fsync output_dir
//   // destroyed without commit: the temporary folder is removed
//
//   verify_checkpoint(folder)               // every listed file present with its size and CRC,
//                                           // else an mpt::Error naming the file
//   list_checkpoints(output_dir)            // [(step, folder)] in step order
//   last_checkpoint(output_dir)             // transformers' get_last_checkpoint
//   rotate_checkpoints(output_dir, limit, best)   // save_total_limit, never deleting the best
//   remove_stale_temporaries(output_dir)    // what a killed run left half-written

#include <mpt/core/error.hpp>
#include <mpt/io/checksum.hpp>
#include <mpt/io/file.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace mpt::train {

inline constexpr const char* checkpoint_manifest_file = "mpt_checkpoint.json";
inline constexpr const char* checkpoint_prefix = "checkpoint-";

// Test hook: called at named moments of a checkpoint write ("file written",
// "before rename", ...), so a test can kill the process exactly there.
inline std::function<void(std::string_view)>& checkpoint_fault_hook() {
  static std::function<void(std::string_view)> hook;
  return hook;
}
namespace detail {
inline void fault_point(std::string_view where) {
  if (checkpoint_fault_hook()) checkpoint_fault_hook()(where);
}

inline void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// The step of a folder named checkpoint-<digits>, or nothing.
inline std::optional<std::int64_t> checkpoint_step(const std::string& name) {
  const std::string_view prefix = checkpoint_prefix;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  std::int64_t step = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (INT64_MAX - 9) / 10) return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}
}  // namespace detail

inline std::filesystem::path checkpoint_folder(const std::filesystem::path& output_dir, std::int64_t step) {
  return output_dir / (checkpoint_prefix + std::to_string(step));
}

struct CheckpointEntry {
  std::int64_t step = 0;
  std::filesystem::path folder;
};

// Every checkpoint-N folder in output_dir, in step order (temporaries are not listed).
inline std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& output_dir) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(output_dir, ec)) return out;
  for (const auto& item : std::filesystem::directory_iterator(output_dir, ec)) {
    if (!item.is_directory(ec)) continue;
    if (const auto step = detail::checkpoint_step(item.path().filename().string())) out.push_back({*step, item.path()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

// The checkpoint with the highest step, as transformers' get_last_checkpoint.
inline std::optional<std::filesystem::path> last_checkpoint(const std::filesystem::path& output_dir) {
  const auto all = list_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().folder;
}

// Removes the temporary folders a killed run left (".tmp-checkpoint-*").
inline void remove_stale_temporaries(const std::filesystem::path& output_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(output_dir, ec)) return;
  std::vector<std::filesystem::path> stale;
  for (const auto& item : std::filesystem::directory_iterator(output_dir, ec)) {
    const std::string name = item.path().filename().string();
    if (name.rfind(".tmp-checkpoint-", 0) == 0 || name.rfind(".old-checkpoint-", 0) == 0) stale.push_back(item.path());
  }
  for (const auto& p : stale) std::filesystem::remove_all(p, ec);
}

// Checks every file the manifest lists: present, its size, its CRC-32C.
inline void verify_checkpoint(const std::filesystem::path& folder) {
  const auto manifest_path = folder / checkpoint_manifest_file;
  if (!std::filesystem::exists(manifest_path)) {
    throw_error("checkpoint ", folder, " has no ", checkpoint_manifest_file,
                ": it was not written by mpt's Trainer, or not completely; resume from another checkpoint");
  }
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(io::read_text_file(manifest_path));
  } catch (const nlohmann::json::exception& e) {
    throw_error("checkpoint ", manifest_path, " is not valid JSON (", e.what(), "); the checkpoint is damaged");
  }
  if (!manifest.is_object() || !manifest.contains("files") || !manifest["files"].is_object()) {
    throw_error("checkpoint ", manifest_path, " has no \"files\" object; the checkpoint is damaged");
  }
  for (const auto& [name, info] : manifest["files"].items()) {
    const auto path = folder / name;
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw_error("checkpoint file ", path, " is missing (", ec.message(), "); the checkpoint is damaged");
    if (!info.is_object() || !info.contains("bytes") || !info.contains("crc32c")) {
      throw_error("checkpoint ", manifest_path, ": the entry of ", name, " lacks bytes or crc32c");
    }
    if (size != info["bytes"].get<std::uint64_t>()) {
      throw_error("checkpoint file ", path, " has ", size, " bytes but ", info["bytes"].get<std::uint64_t>(),
                  " were written; the file is damaged: resume from an earlier checkpoint");
    }
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", io::file_crc32c(path));
    if (info["crc32c"].get<std::string>() != crc) {
      throw_error("checkpoint file ", path, " fails its checksum (CRC-32C ", crc, ", recorded ", info["crc32c"].get<std::string>(),
                  "); the file is damaged: resume from an earlier checkpoint");
    }
  }
}

// A checkpoint folder being written; see the top of this header.
class CheckpointWriter {
 public:
  CheckpointWriter(std::filesystem::path output_dir, std::int64_t step)
      : output_dir_(std::move(output_dir)), final_(checkpoint_folder(output_dir_, step)) {
    temp_ = output_dir_ / (".tmp-" + final_.filename().string() + "." + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(temp_, ec);
    std::filesystem::create_directories(temp_, ec);
    if (ec) throw_error("cannot create the checkpoint folder ", temp_, ": ", ec.message());
  }
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  ~CheckpointWriter() {
    if (!committed_) {
      std::error_code ec;
      std::filesystem::remove_all(temp_, ec);
    }
  }

  // Where to write the files.
  const std::filesystem::path& folder() const noexcept { return temp_; }
  const std::filesystem::path& final_folder() const noexcept { return final_; }

  void commit() {
    detail::fault_point("files written");
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    std::vector<std::string> names;
    for (const auto& item : std::filesystem::directory_iterator(temp_)) {
      if (item.is_regular_file()) names.push_back(item.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      char crc[16];
      std::snprintf(crc, sizeof crc, "%08x", io::file_crc32c(temp_ / name));
      files[name] = {{"bytes", std::filesystem::file_size(temp_ / name)}, {"crc32c", crc}};
    }
    const nlohmann::ordered_json manifest = {{"format", "mpt-checkpoint"}, {"version", 1}, {"files", files}};
    io::write_file_atomic(temp_ / checkpoint_manifest_file, manifest.dump(2) + "\n");
    detail::fsync_directory(temp_);
    detail::fault_point("before rename");
    // A checkpoint of this step may exist (a resumed run saving the same step again):
    // move it aside, put the new one in place, then delete the old one.
    std::error_code ec;
    std::filesystem::path old;
    if (std::filesystem::exists(final_, ec)) {
      old = output_dir_ / (".old-" + final_.filename().string() + "." + std::to_string(::getpid()));
      std::filesystem::remove_all(old, ec);
      if (::rename(final_.c_str(), old.c_str()) != 0) {
        throw_error("cannot move the previous ", final_, " aside: ", std::strerror(errno));
      }
    }
    if (::rename(temp_.c_str(), final_.c_str()) != 0) {
      throw_error("cannot rename ", temp_, " to ", final_, ": ", std::strerror(errno));
    }
    committed_ = true;
    detail::fsync_directory(output_dir_);
    detail::fault_point("renamed");
    if (!old.empty()) std::filesystem::remove_all(old, ec);
  }

 private:
  std::filesystem::path output_dir_, final_, temp_;
  bool committed_ = false;
};

// Deletes the oldest checkpoints beyond `limit`, never `best` (nor the newest):
// transformers' _rotate_checkpoints.
inline std::vector<std::filesystem::path> rotate_checkpoints(const std::filesystem::path& output_dir, std::int64_t limit,
                                                             const std::optional<std::string>& best) {
  auto all = list_checkpoints(output_dir);
  std::vector<std::filesystem::path> removed;
  if (limit < 1 || static_cast<std::int64_t>(all.size()) <= limit) return removed;
  // The best moves to the end of the deletion order (just before the newest), as transformers does.
  if (best) {
    const auto it =
        std::find_if(all.begin(), all.end(), [&](const auto& c) { return c.folder.filename() == std::filesystem::path(*best).filename(); });
    if (it != all.end() && it + 1 != all.end()) {
      const CheckpointEntry kept = *it;
      all.erase(it);
      all.insert(all.end() - 1, kept);
    }
  }
  // Keeping only one while the best is not the newest would delete it: keep two.
  std::int64_t keep = limit;
  if (best && limit == 1 && all.back().folder.filename() != std::filesystem::path(*best).filename()) keep = 2;
  const std::size_t remove_count = all.size() > static_cast<std::size_t>(keep) ? all.size() - static_cast<std::size_t>(keep) : 0;
  for (std::size_t i = 0; i < remove_count; ++i) {
    // Renamed out of the checkpoint names first: a kill halfway through deleting it
    // leaves a stale temporary (removed at the next start), never a half checkpoint.
    const auto trash = output_dir / (".old-" + all[i].folder.filename().string() + "." + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(trash, ec);
    if (::rename(all[i].folder.c_str(), trash.c_str()) != 0) {
      throw_error("save_total_limit: cannot remove the old checkpoint ", all[i].folder, ": ", std::strerror(errno));
    }
    std::filesystem::remove_all(trash, ec);
    removed.push_back(all[i].folder);
  }
  return removed;
}

}  // namespace mpt::train
