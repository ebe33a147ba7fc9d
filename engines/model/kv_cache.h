#pragma once
// The KV cache of one generation: allocated once for every scale it will hold and filled in place (the
// official code grows it with torch.cat at every scale, which reallocates and copies the whole cache).
#include <torch/torch.h>

#include <vector>

namespace varbench {

struct KvCacheLayer {
  torch::Tensor keys;    // [N, H, capacity, head_dim]
  torch::Tensor values;  // [N, H, capacity, head_dim]
  int64_t length = 0;    // tokens written so far (shared by every layer of the cache)
};

class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t layers, int64_t rows, int64_t heads, int64_t capacity, int64_t head_dim, torch::ScalarType key_dtype,
          torch::ScalarType value_dtype, torch::Device device);
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t rows() const { return rows_; }
  KvCacheLayer* layer(size_t i) { return &layers_.at(i); }
  // Called once after every block has written `tokens` new positions.
  void advance(int64_t tokens);
  // Forget everything after the first `length` positions (rejected speculative drafts).
  void truncate(int64_t length);
  // Bytes the cache's storage holds (allocated capacity, not the filled part; a narrowed cache still holds it all).
  int64_t bytes() const;
  // Keep the first `rows` rows (guidance switched off mid-generation): the tensors become views.
  void narrow_rows(int64_t rows);
  bool allocated() const { return !layers_.empty(); }
  void release();

 private:
  std::vector<KvCacheLayer> layers_;
  int64_t rows_ = 0, capacity_ = 0, length_ = 0;
};

}  // namespace varbench
