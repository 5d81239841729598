#pragma once
// safetensors (https://github.com/huggingface/safetensors), read and written.
//
// Layout: [u64 little-endian N][N bytes of UTF-8 JSON header][data buffer]
//   header = { "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//              "__metadata__": {"<key>": "<string>", ...} }           (metadata optional)
//   the header opens with '{' and may end in spaces (writers pad it to 8 bytes);
//   offsets are relative to the data buffer; tensors are row-major, little-endian,
//   and together cover the buffer exactly, without overlap and without holes.
//
//   SafetensorsFile::open(path)      memory-maps and validates everything up front; a bad
//                                    file is an mpt::Error naming the file (and the tensor)
//   SafetensorsFile::from_bytes(bytes, name)   the same for a buffer in memory
//   file.find(name) / file.at(name)  the entry: dtype, dims, bytes (a span into the map)
//   file.read(name, view)            converts F32/BF16/F16/F64 into float, bf16 or double,
//                                    integer dtypes into std::int32_t / std::int64_t
//   save_safetensors(path, tensors, dtype, metadata)   atomic write, F32/BF16/F16/F64

// Split by job: io/dtype.hpp (dtypes, element conversion), io/safetensors_reader.hpp
// (SafetensorsFile), io/safetensors_writer.hpp (save_safetensors).
#include <mpt/io/dtype.hpp>
#include <mpt/io/safetensors_reader.hpp>
#include <mpt/io/safetensors_writer.hpp>
