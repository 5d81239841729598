#pragma once
// mpt/io: files in and out — safetensors, Hugging Face config.json, model folders.
#include <mpt/io/bert_config.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/safetensors.hpp>
#include <mpt/io/save_pretrained.hpp>
