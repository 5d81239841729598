#pragma once
// A checkpoint's optimizer state -> parse_optimizer_state. The input is
// optimizer_state.json's text, a NUL byte, then optimizer.safetensors' bytes
// (no NUL: the safetensors part is empty). Accepted state is copied into a
// StateDict of the same layout, as an optimizer's load_state_dict does.
#include "fuzz_common.hpp"

#include <mpt/optim/checkpoint.hpp>

#include <algorithm>
#include <vector>

namespace mpt_fuzz {

inline void fuzz_optimizer_state(const std::uint8_t* data, std::size_t size) {
  const std::uint8_t* nul = std::find(data, data + size, std::uint8_t{0});
  const auto json_size = static_cast<std::size_t>(nul - data);
  const std::size_t tensors_offset = std::min(size, json_size + 1);
  accept_mpt_errors([&] {
    const auto file = mpt::io::SafetensorsFile::from_bytes(as_bytes(data + tensors_offset, size - tensors_offset), "optimizer.safetensors");
    const auto loaded = mpt::optim::parse_optimizer_state(as_text(data, json_size), "optimizer_state.json", file);
    const mpt::optim::StateDict& saved = loaded.optimizer.view();
    require(saved.tensors.size() == file.size() && saved.scalars.is_object(), "every tensor and the scalars are loaded");
    std::vector<std::vector<std::byte>> buffers;
    mpt::optim::StateDict target;
    for (const mpt::optim::StateTensor& t : saved.tensors) {
      buffers.emplace_back(t.bytes());
      target.tensors.push_back({t.name, t.dtype, t.count, buffers.back().data()});
    }
    target.copy_tensors_from(saved);
    for (std::size_t i = 0; i < target.tensors.size(); ++i) {
      require(std::equal(buffers[i].begin(), buffers[i].end(), file.tensors()[i].bytes.begin(), file.tensors()[i].bytes.end()),
              "the loaded tensors hold the file's bytes");
    }
  });
}

}  // namespace mpt_fuzz
