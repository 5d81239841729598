#pragma once
// ParameterTable: where each named parameter lives in the flat parameter
// buffer, and whether weight decay applies to it.
//
// The model fills it with Hugging Face names in buffer order
// (`bert.encoder.layer.3.attention.output.LayerNorm.weight` -> offset, count, decay);
// the optimizer reads it to skip weight decay where the model says so
// (train::parameter_table decides from the parameters' roles, as transformers'
// get_decay_parameter_names does from module types: biases and LayerNorm exempt).

#include <mpt/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mpt::optim {

struct ParameterEntry {
  std::string name;
  std::size_t offset = 0;
  std::size_t count = 0;
  bool decay = true;
};

class ParameterTable {
 public:
  ParameterTable() = default;

  // Appends a parameter after the previous one. Whether weight decay applies is the
  // model's decision (nn::weight_decay_applies from its roles: transformers exempts
  // biases and LayerNorm weights).
  ParameterTable& add(std::string name, std::size_t count, bool decay = true) {
    for (const auto& e : entries_) {
      if (e.name == name) throw_error("ParameterTable::add: parameter '", name, "' is already in the table; names must be unique");
    }
    entries_.push_back({std::move(name), size_, count, decay});
    size_ += count;
    buffer_size_ = std::max(buffer_size_, size_);
    return *this;
  }

  // Places a parameter at an explicit offset (buffers with alignment padding,
  // as nn::Parameters lays them out). Offsets must ascend; padding between
  // parameters is left alone by the optimizer.
  ParameterTable& add_at(std::string name, std::size_t offset, std::size_t count, bool decay) {
    if (offset < size_) {
      throw_error("ParameterTable::add_at: '", name, "' at offset ", offset, " overlaps the previous parameters (which end at ", size_,
                  "); add parameters in buffer order");
    }
    for (const auto& e : entries_) {
      if (e.name == name) throw_error("ParameterTable::add_at: parameter '", name, "' is already in the table");
    }
    entries_.push_back({std::move(name), offset, count, decay});
    size_ = offset + count;
    buffer_size_ = std::max(buffer_size_, size_);
    return *this;
  }

  // The length of the flat buffers when it exceeds the last parameter's end (trailing padding).
  ParameterTable& set_buffer_size(std::size_t n) {
    if (n < size_) throw_error("ParameterTable::set_buffer_size(", n, "): the parameters need ", size_, " elements");
    buffer_size_ = n;
    return *this;
  }

  // A table with one entry covering n elements (tests, single-tensor models).
  static ParameterTable single(std::string name, std::size_t n, bool decay = true) {
    ParameterTable t;
    t.add(std::move(name), n, decay);
    return t;
  }

  const std::vector<ParameterEntry>& entries() const noexcept { return entries_; }
  // Total elements: the size the flat buffers must have (padding included).
  std::size_t size() const noexcept { return buffer_size_; }

  const ParameterEntry& find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.name == name) return e;
    throw_error("ParameterTable: no parameter named '", name, "'");
  }

  // Throws unless a buffer of `n` elements is the one this table describes.
  void check_buffer(const char* operation, const char* what, std::size_t n) const {
    if (n != buffer_size_) {
      throw_error(operation, ": ", what, " has ", n, " elements but the parameter table describes ", buffer_size_, " (", entries_.size(),
                  " parameters); pass the flat buffer the table was built for");
    }
  }

 private:
  std::vector<ParameterEntry> entries_;
  std::size_t size_ = 0;         // end of the last parameter
  std::size_t buffer_size_ = 0;  // length of the flat buffers
};

namespace detail {
// A contiguous range of the flat buffer with one weight-decay decision,
// at most `max_elements` long: the unit of work of the optimizer step.
struct DecayRun {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool decay = true;
};

inline std::vector<DecayRun> decay_runs(const ParameterTable& table, std::size_t max_elements) {
  std::vector<DecayRun> merged;
  for (const auto& e : table.entries()) {
    if (e.count == 0) continue;
    if (!merged.empty() && merged.back().decay == e.decay && merged.back().end == e.offset) {
      merged.back().end += e.count;
    } else {
      merged.push_back({e.offset, e.offset + e.count, e.decay});
    }
  }
  std::vector<DecayRun> runs;
  for (const auto& m : merged) {
    for (std::size_t at = m.begin; at < m.end; at += max_elements) runs.push_back({at, std::min(m.end, at + max_elements), m.decay});
  }
  return runs;
}
}  // namespace detail

}  // namespace mpt::optim
