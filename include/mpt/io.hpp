#pragma once
// mpt/io: files in and out — safetensors, Hugging Face config.json, model folders.
//
// A model loads a Hugging Face folder in three steps:
//   const auto config = mpt::io::BertConfig::from_json_file(dir / "config.json");
//   std::vector<mpt::io::ParameterSlot> slots;  // {HF name, view of the storage, Init}
//   //   e.g. {"bert.encoder.layer.0.output.LayerNorm.weight", gamma.view(), Init::ones}
//   //   (with a bf16 policy, point the slots at the fp32 master weights)
//   mpt::io::LoadOptions options;
//   options.initializer_range = config.initializer_range;
//   const mpt::io::LoadReport report = mpt::io::load_parameters(dir, slots, options);
// and saves one with
//   mpt::io::save_pretrained(out, config, mpt::io::named_tensors(slots), mpt::io::Dtype::f32, dir / "vocab.txt");
// With a model's nn::Parameters<P>, nn/pretrained.hpp does both in one call:
//   mpt::nn::load_pretrained(dir, params, config);   mpt::nn::save_pretrained(out, config, params);
#include <mpt/io/bert_config.hpp>
#include <mpt/io/checksum.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/safetensors.hpp>
#include <mpt/io/save_pretrained.hpp>
