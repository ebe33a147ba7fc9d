#pragma once
// The KV cache of one generation: allocated once for every scale it will hold and filled in place (the
// official code grows it with torch.cat at every scale, which reallocates and copies the whole cache).
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace varbench {

// Every KV cache alive in the process, for the memory probe: the bytes its tensors hold (allocated
// capacity) and the bytes of the positions written so far (filled), and the peaks of each since the last
// reset. Updated by KvCache; read at phase boundaries and at allocator peaks.
struct KvBytes {
  int64_t allocated = 0, filled = 0;
};
KvBytes kv_bytes_now();
KvBytes kv_bytes_peak();  // the largest of each since kv_bytes_reset_peak()
void kv_bytes_reset_peak();

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
  // Bytes of the positions written so far, over the rows still in use.
  int64_t filled_bytes() const;
  // Keep the first `rows` rows (guidance switched off mid-generation): the tensors become views.
  void narrow_rows(int64_t rows);
  bool allocated() const { return !layers_.empty(); }
  void release();

 private:
  void update_ledger();
  struct LedgerEntry;  // this cache's share of kv_bytes_now(), given back when the last copy goes
  std::vector<KvCacheLayer> layers_;
  int64_t rows_ = 0, capacity_ = 0, length_ = 0;
  int64_t position_bytes_ = 0;  // bytes of one position over every layer, key and value, per row
  std::shared_ptr<LedgerEntry> ledger_;
};

}  // namespace varbench
