#pragma once
// mpt/io: files in and out — safetensors, JSON, atomic writes, model folders. Formats
// know no model: a model lists its parameters as named slots, and io fills them.
//
//   std::vector<mpt::io::ParameterSlot> slots;  // {name as in the checkpoint, view of the storage, initializer}
//   //   e.g. {"bert.encoder.layer.0.output.LayerNorm.weight", gamma.view(), fill_ones}
//   //   (with a bf16 policy, point the slots at the fp32 master weights)
//   mpt::io::LoadOptions options;               // base_model_prefix, expected_unused, warn
//   const mpt::io::LoadReport report = mpt::io::load_parameters(dir, slots, options);
// and saves a folder with
//   mpt::io::save_pretrained(out, config_json, mpt::io::named_tensors(slots), mpt::io::Dtype::f32, dir / "vocab.txt");
// BERT's config, initialization and loading rules live in nn/ (bert_config.hpp,
// init.hpp, pretrained.hpp: mpt::nn::load_pretrained(dir, params, config)).
#include <mpt/io/checksum.hpp>
#include <mpt/io/dtype.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/json_depth.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/safetensors_reader.hpp>
#include <mpt/io/safetensors_writer.hpp>
#include <mpt/io/save_pretrained.hpp>
