#include "engines/model/kv_cache.h"

#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

KvCache::KvCache(int64_t layers, int64_t rows, int64_t heads, int64_t capacity, int64_t head_dim,
                 torch::ScalarType key_dtype, torch::ScalarType value_dtype, torch::Device device)
    : rows_(rows), capacity_(capacity) {
  layers_.resize(layers);
  for (auto& l : layers_) {
    l.keys = torch::empty({rows, heads, capacity, head_dim}, torch::TensorOptions().dtype(key_dtype).device(device));
    l.values = torch::empty({rows, heads, capacity, head_dim}, torch::TensorOptions().dtype(value_dtype).device(device));
  }
}

void KvCache::advance(int64_t tokens) {
  if (length_ + tokens > capacity_)
    throw std::logic_error(fmt::format("KV cache overflow: {} + {} tokens > capacity {}", length_, tokens, capacity_));
  length_ += tokens;
  for (auto& l : layers_) l.length = length_;
}

void KvCache::truncate(int64_t length) {
  if (length > length_) throw std::logic_error(fmt::format("KV cache truncate to {} > length {}", length, length_));
  length_ = length;
  for (auto& l : layers_) l.length = length_;
}

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers_) n += static_cast<int64_t>(l.keys.storage().nbytes() + l.values.storage().nbytes());
  return n;
}

void KvCache::narrow_rows(int64_t rows) {
  if (rows > rows_) throw std::logic_error("KvCache::narrow_rows cannot grow");
  for (auto& l : layers_) {
    l.keys = l.keys.narrow(0, 0, rows);
    l.values = l.values.narrow(0, 0, rows);
  }
  rows_ = rows;
}

void KvCache::release() {
  layers_.clear();
  rows_ = capacity_ = length_ = 0;
}

}  // namespace varbench
