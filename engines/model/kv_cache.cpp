#include "engines/model/kv_cache.h"

#include <stdexcept>

#include <fmt/format.h>

#include <atomic>

namespace varbench {

namespace {
std::atomic<int64_t> g_allocated{0}, g_filled{0}, g_peak_allocated{0}, g_peak_filled{0};
void raise_to(std::atomic<int64_t>& peak, int64_t value) {
  int64_t p = peak.load();
  while (value > p && !peak.compare_exchange_weak(p, value)) {
  }
}
void add(int64_t allocated, int64_t filled) {
  raise_to(g_peak_allocated, g_allocated.fetch_add(allocated) + allocated);
  raise_to(g_peak_filled, g_filled.fetch_add(filled) + filled);
}
}  // namespace

KvBytes kv_bytes_now() { return {g_allocated.load(), g_filled.load()}; }
KvBytes kv_bytes_peak() { return {g_peak_allocated.load(), g_peak_filled.load()}; }
void kv_bytes_reset_peak() {
  g_peak_allocated.store(g_allocated.load());
  g_peak_filled.store(g_filled.load());
}

struct KvCache::LedgerEntry {
  int64_t allocated = 0, filled = 0;
  void set(int64_t a, int64_t f) {
    add(a - allocated, f - filled);
    allocated = a;
    filled = f;
  }
  ~LedgerEntry() { add(-allocated, -filled); }
};

void KvCache::update_ledger() {
  if (ledger_) ledger_->set(bytes(), filled_bytes());
}

int64_t KvCache::filled_bytes() const { return length_ * rows_ * position_bytes_; }

KvCache::KvCache(int64_t layers, int64_t rows, int64_t heads, int64_t capacity, int64_t head_dim,
                 torch::ScalarType key_dtype, torch::ScalarType value_dtype, torch::Device device)
    : rows_(rows), capacity_(capacity) {
  position_bytes_ = layers * heads * head_dim *
                    static_cast<int64_t>(c10::elementSize(key_dtype) + c10::elementSize(value_dtype));
  // The ledger holds the whole cache before its tensors exist: the allocation that completes the cache
  // (the one that can set the memory peak) then already finds it counted as KV, not as activations.
  ledger_ = std::make_shared<LedgerEntry>();
  ledger_->set(rows * capacity * position_bytes_, 0);
  layers_.resize(layers);
  for (auto& l : layers_) {
    l.keys = torch::empty({rows, heads, capacity, head_dim}, torch::TensorOptions().dtype(key_dtype).device(device));
    l.values = torch::empty({rows, heads, capacity, head_dim}, torch::TensorOptions().dtype(value_dtype).device(device));
  }
  update_ledger();  // the tensors' own storage bytes (the same figure)
}

void KvCache::advance(int64_t tokens) {
  if (length_ + tokens > capacity_)
    throw std::logic_error(fmt::format("KV cache overflow: {} + {} tokens > capacity {}", length_, tokens, capacity_));
  length_ += tokens;
  for (auto& l : layers_) l.length = length_;
  update_ledger();
}

void KvCache::truncate(int64_t length) {
  if (length > length_) throw std::logic_error(fmt::format("KV cache truncate to {} > length {}", length, length_));
  length_ = length;
  for (auto& l : layers_) l.length = length_;
  update_ledger();
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
  update_ledger();
}

void KvCache::release() {
  layers_.clear();
  rows_ = capacity_ = length_ = 0;
  ledger_.reset();  // gives this cache's bytes back (a copy of this cache would still hold them)
}

}  // namespace varbench
