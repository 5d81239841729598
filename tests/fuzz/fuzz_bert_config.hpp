#pragma once
// config.json text -> BertConfig::from_json_text; an accepted config survives a round trip.
#include "fuzz_common.hpp"

#include <mpt/nn/bert_config.hpp>

namespace mpt_fuzz {

inline void fuzz_bert_config(const std::uint8_t* data, std::size_t size) {
  accept_mpt_errors([&] {
    const auto config = mpt::nn::BertConfig::from_json_text(as_text(data, size), "config.json");
    require(config.hidden_size % config.num_attention_heads == 0 && config.head_dim() > 0, "a valid config has whole heads");
    const auto written = config.to_json();
    const auto again = mpt::nn::BertConfig::from_json_text(written.dump(2), "written config.json");
    require(again.to_json() == written, "config.json written and read back is the same config");
  });
}

}  // namespace mpt_fuzz
