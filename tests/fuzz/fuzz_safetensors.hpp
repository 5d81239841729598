#pragma once
// safetensors bytes -> SafetensorsFile::from_bytes, then every tensor read back.
#include "fuzz_common.hpp"

#include <mpt/io/safetensors_reader.hpp>

namespace mpt_fuzz {

inline void fuzz_safetensors(const std::uint8_t* data, std::size_t size) {
  accept_mpt_errors([&] {
    const auto file = mpt::io::SafetensorsFile::from_bytes(as_bytes(data, size), "fuzz.safetensors");
    std::size_t covered = 0;
    for (const mpt::io::SafetensorsEntry& e : file.tensors()) {
      require(file.find(e.name) == &e, "every tensor is found by its name");
      require(e.data_begin == covered && e.bytes.size() == e.data_end - e.data_begin, "tensors tile the data buffer");
      require(e.bytes.size() == e.numel() * mpt::io::dtype_size(e.dtype), "a tensor's bytes match its shape and dtype");
      covered = e.data_end;
      // Reading may refuse (rank > 4, a dtype that does not convert), never crash.
      accept_mpt_errors([&] {
        if (mpt::io::is_integer_dtype(e.dtype)) {
          (void)file.read<std::int64_t>(e.name);
          (void)file.read<std::int32_t>(e.name);
        } else {
          (void)file.read<float>(e.name);
          (void)file.read<mpt::bf16>(e.name);
        }
      });
    }
    require(covered + 8 <= size, "the data buffer lies inside the file");
  });
}

}  // namespace mpt_fuzz
