#include "engines/model/var_transformer.h"

#include <cmath>
#include <optional>

#include "engines/model/fast_kernels.h"
#include "engines/model/part_profile.h"

namespace varbench {

namespace F = torch::nn::functional;

namespace {
// at::linear, as Python's F.linear. (torch::nn::Linear::forward in libtorch 1.13 computes
// matmul + bias for 3-d inputs instead of one addmm, which differs from PyTorch in the last bit.)
torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x) { return torch::linear(x, l->weight, l->bias); }
// SiLU then Linear: the official `ada_lin` Sequential.
torch::Tensor silu_linear(torch::nn::Sequential seq, const torch::Tensor& x) {
  const auto* l = seq[1]->as<torch::nn::LinearImpl>();
  return torch::linear(torch::silu(x), l->weight, l->bias);
}
}  // namespace

Conditioning Conditioning::narrowed(int64_t rows) const {
  Conditioning c;
  c.cond_BD = cond_BD.narrow(0, 0, rows);
  for (const auto& b : blocks) {
    std::array<torch::Tensor, 6> n;
    for (size_t i = 0; i < 6; ++i) n[i] = b[i].size(0) == 1 ? b[i] : b[i].narrow(0, 0, rows);
    c.blocks.push_back(n);
  }
  c.head_scale = head_scale.narrow(0, 0, rows);
  c.head_shift = head_shift.narrow(0, 0, rows);
  return c;
}

// ---------------------------------------------------------------------------------------------------
SelfAttentionImpl::SelfAttentionImpl(int64_t width, int64_t heads_) : heads(heads_), head_dim(width / heads_) {
  mat_qkv = register_module("mat_qkv", torch::nn::Linear(torch::nn::LinearOptions(width, 3 * width).bias(false)));
  proj = register_module("proj", torch::nn::Linear(width, width));
  // Initial value as the official constructor: per-head log(4).
  scale_mul_1H11 = register_parameter("scale_mul_1H11", torch::full({1, heads, 1, 1}, std::log(4.0)));
  q_bias = register_parameter("q_bias", torch::zeros({width}));
  v_bias = register_parameter("v_bias", torch::zeros({width}));
  zero_k_bias = register_buffer("zero_k_bias", torch::zeros({width}));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, KvCacheLayer* cache, int64_t cache_offset,
                                         const torch::Tensor& mask) {
  const int64_t B = x.size(0), L = x.size(1), C = x.size(2);
  torch::Tensor qkv;
  {
    PartScope part(Part::kQkvGemm, gemm_flops(x, mat_qkv->weight), gemm_bytes(x, mat_qkv->weight));
    // qkv bias is (q_bias, 0, v_bias); the linear itself has none.
    qkv = torch::linear(x, mat_qkv->weight, torch::cat({q_bias, zero_k_bias, v_bias}))
              .view({B, L, 3, heads, head_dim})
              .permute({2, 0, 3, 1, 4});  // 3, B, H, L, c
  }
  // The attention's work: q k^T and the weighted sum over every key; bytes: q, the keys and values read
  // once, the output written once.
  const int64_t keys = (cache ? cache_offset : 0) + L;
  const double attention_flops = 4.0 * static_cast<double>(B * heads * L * keys * head_dim);
  const double attention_bytes =
      static_cast<double>((2 * B * heads * L * head_dim + 2 * B * heads * keys * head_dim) * x.element_size());
  std::optional<PartScope> part;
  if (profiling_parts()) part.emplace(Part::kAttention, attention_flops, attention_bytes);
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  // q and k are L2-normalised over the head dimension; q gets the learned per-head scale, clamped at
  // ln(100) as in the official code (trained checkpoints exceed it); the softmax scale is then 1.
  const double max_scale_mul = std::log(100.0f);  // the official value is float32 log(100)
  auto scale_mul = scale_mul_1H11.clamp_max(max_scale_mul).exp();
  q = F::normalize(q, F::NormalizeFuncOptions().dim(-1)).mul(scale_mul);
  k = F::normalize(k, F::NormalizeFuncOptions().dim(-1));

  if (cache) {
    const int64_t end = cache_offset + L;
    cache->keys.narrow(2, cache_offset, L).copy_(k);
    cache->values.narrow(2, cache_offset, L).copy_(v);
    k = cache->keys.narrow(2, 0, end);
    v = cache->values.narrow(2, 0, end);
  }
  auto out = compat::attention(q, k, v, mask).transpose(1, 2).reshape({B, L, C});  // B, H, L, c -> B, L, C
  part.reset();
  PartScope proj_part(Part::kProjGemm, gemm_flops(out, proj->weight), gemm_bytes(out, proj->weight));
  return linear(proj, out);
}

// ---------------------------------------------------------------------------------------------------
FeedForwardImpl::FeedForwardImpl(int64_t width, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(width, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, width));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x, Kernels kernels) {
  torch::Tensor hidden;
  {
    PartScope part(Part::kFfnGemm, gemm_flops(x, fc1->weight), gemm_bytes(x, fc1->weight));
    hidden = linear(fc1, x);
  }
  {
    PartScope part(Part::kFfnActivation, 0, 2 * tensor_bytes({hidden}));
    if (kernels == Kernels::kFast && hidden.is_cpu() && hidden.scalar_type() == torch::kFloat32 && hidden.is_contiguous())
      gelu_tanh_fast_(hidden);
    else
      hidden = torch::gelu(hidden, "tanh");
  }
  PartScope part(Part::kFfnGemm, gemm_flops(hidden, fc2->weight), gemm_bytes(hidden, fc2->weight));
  return linear(fc2, hidden);
}

// ---------------------------------------------------------------------------------------------------
AdaLNSelfAttnImpl::AdaLNSelfAttnImpl(const VarArch& arch)
    : width(arch.width), eps(arch.norm_eps), shared_adaln(arch.shared_adaln) {
  attn = register_module("attn", SelfAttention(arch.width, arch.heads));
  ffn = register_module("ffn", FeedForward(arch.width, arch.mlp_hidden));
  if (shared_adaln) {
    ada_gss = register_parameter("ada_gss", torch::randn({1, 1, 6, arch.width}) / std::sqrt(double(arch.width)));
  } else {
    ada_lin = register_module("ada_lin", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(arch.width, 6 * arch.width)));
  }
}

std::array<torch::Tensor, 6> AdaLNSelfAttnImpl::ada_params(const torch::Tensor& cond_or_shared) {
  // Order: gamma1, gamma2, scale1, scale2, shift1, shift2.
  auto six = shared_adaln ? (ada_gss + cond_or_shared).unbind(2)  // 116C + N16C
                          : silu_linear(ada_lin, cond_or_shared).view({-1, 1, 6, width}).unbind(2);
  return {six[0], six[1], six[2], six[3], six[4], six[5]};
}

torch::Tensor AdaLNSelfAttnImpl::forward(const torch::Tensor& x, const std::array<torch::Tensor, 6>& ada,
                                         KvCacheLayer* cache, int64_t cache_offset, const torch::Tensor& mask,
                                         Kernels kernels) {
  const auto& [gamma1, gamma2, scale1, scale2, shift1, shift2] = ada;
  auto ln = [&](const torch::Tensor& t) { return torch::layer_norm(t, {width}, {}, {}, eps); };
  // Bytes of the norm-and-modulate stretches: each elementwise op reads its input and writes its output
  // once (layer norm, scale, shift: 6 passes over x; gate and residual: 5).
  const double pass_bytes = tensor_bytes({x});
  torch::Tensor attn_in, h, ffn_in;
  {
    PartScope part(Part::kNormModulate, 0, 6 * pass_bytes);
    attn_in = ln(x).mul(scale1.add(1)).add_(shift1);
  }
  auto attn_out = attn->forward(attn_in, cache, cache_offset, mask);
  {
    PartScope part(Part::kNormModulate, 0, 11 * pass_bytes);
    h = x + attn_out.mul_(gamma1);
    ffn_in = ln(h).mul(scale2.add(1)).add_(shift2);
  }
  auto ffn_out = ffn->forward(ffn_in, kernels);
  PartScope part(Part::kNormModulate, 0, 5 * pass_bytes);
  return h + ffn_out.mul(gamma2);
}

AdaLNBeforeHeadImpl::AdaLNBeforeHeadImpl(int64_t width, double eps) {
  ada_lin = register_module("ada_lin", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(width, 2 * width)));
}

// ---------------------------------------------------------------------------------------------------
VarTransformerImpl::VarTransformerImpl(const VarArch& arch) : arch_(arch) {
  const int64_t C = arch.width, L = arch.schedule.total_tokens(), S = arch.schedule.num_scales();
  word_embed = register_module("word_embed", torch::nn::Linear(arch.code_dim, C));
  class_emb = register_module("class_emb", torch::nn::Embedding(arch.num_classes + 1, C));
  pos_start = register_parameter("pos_start", torch::zeros({1, 1, C}));
  pos_1LC = register_parameter("pos_1LC", torch::zeros({1, L, C}));
  lvl_embed = register_module("lvl_embed", torch::nn::Embedding(S, C));
  if (arch.shared_adaln)
    shared_ada_lin = register_module("shared_ada_lin", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(C, 6 * C)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < arch.depth; ++i) {
    block_list.emplace_back(arch);
    blocks->push_back(block_list.back());
  }
  // Buffers the official checkpoints carry: the scale index of every token and the training mask.
  auto level = torch::empty({L}, torch::kLong);
  for (int64_t s = 0; s < S; ++s) level.narrow(0, arch.schedule.begin(s), arch.schedule.tokens(s)).fill_(s);
  lvl_1L = register_buffer("lvl_1L", level.view({1, L}));
  auto d = level.view({L, 1}), dT = level.view({1, L});
  auto mask = torch::where(d >= dT, torch::zeros({}), torch::full({}, -std::numeric_limits<float>::infinity()));
  attn_bias_for_masking = register_buffer("attn_bias_for_masking", mask.view({1, 1, L, L}).contiguous());
  head_nm = register_module("head_nm", AdaLNBeforeHead(C, arch.norm_eps));
  head = register_module("head", torch::nn::Linear(C, arch.vocab_size));
}

Conditioning VarTransformerImpl::condition(const torch::Tensor& labels, bool with_unconditional) {
  Conditioning c;
  auto rows = labels;
  if (with_unconditional) rows = torch::cat({labels, torch::full_like(labels, arch_.num_classes)});
  c.cond_BD = class_emb->forward(rows);
  const auto block_input = arch_.shared_adaln ? silu_linear(shared_ada_lin, c.cond_BD).view({-1, 1, 6, arch_.width}) : c.cond_BD;
  for (auto& b : block_list) c.blocks.push_back(b->ada_params(block_input));
  auto two = silu_linear(head_nm->ada_lin, c.cond_BD).view({-1, 1, 2, arch_.width}).unbind(2);
  c.head_scale = two[0];
  c.head_shift = two[1];
  return c;
}

torch::Tensor VarTransformerImpl::position_terms() { return lvl_embed->forward(lvl_1L) + pos_1LC; }

torch::Tensor VarTransformerImpl::first_scale_input(const Conditioning& cond, const torch::Tensor& position_terms) {
  const int64_t N = cond.rows(), first = arch_.schedule.tokens(0);
  return cond.cond_BD.unsqueeze(1).expand({N, first, -1}) + pos_start.expand({N, first, -1}) +
         position_terms.narrow(1, 0, first);
}

torch::Tensor VarTransformerImpl::embed_inputs(const torch::Tensor& next_BlCv, int64_t token_begin,
                                               const torch::Tensor& position_terms, int64_t rows) {
  const int64_t B = next_BlCv.size(0);
  PartScope part(Part::kEmbed, gemm_flops(next_BlCv, word_embed->weight), gemm_bytes(next_BlCv, word_embed->weight));
  auto x = linear(word_embed, next_BlCv.to(word_embed->weight.scalar_type())) +
           position_terms.narrow(1, token_begin, next_BlCv.size(1));
  return rows == B ? x : x.repeat({rows / B, 1, 1});
}

torch::Tensor VarTransformerImpl::forward_blocks(torch::Tensor x, const Conditioning& cond, KvCache* cache,
                                                 const torch::Tensor& mask, Kernels kernels) {
  const int64_t offset = cache ? cache->length() : 0;
  for (size_t i = 0; i < block_list.size(); ++i)
    x = block_list[i]->forward(x, cond.blocks[i], cache ? cache->layer(i) : nullptr, offset, mask, kernels);
  if (cache) cache->advance(x.size(1));
  return x;
}

torch::Tensor VarTransformerImpl::logits(const torch::Tensor& h, const Conditioning& cond) {
  // Official: head(head_nm(h.float(), cond).float()).float(). With low-precision weights the head runs
  // in the weight dtype and only its output is fp32.
  const auto dtype = head->weight.scalar_type();
  PartScope part(Part::kHead, gemm_flops(h, head->weight), gemm_bytes(h, head->weight) + 6 * tensor_bytes({h}));
  auto normed = torch::layer_norm(h.to(torch::kFloat32), {arch_.width}, {}, {}, arch_.norm_eps)
                    .mul(cond.head_scale.add(1))
                    .add_(cond.head_shift);
  return linear(head, normed.to(dtype)).to(torch::kFloat32);
}

torch::Tensor VarTransformerImpl::block_causal_mask(int64_t q_begin, int64_t q_end) {
  return attn_bias_for_masking.narrow(2, q_begin, q_end - q_begin).narrow(3, 0, q_end);
}

torch::Tensor VarTransformerImpl::teacher_forced_logits(const torch::Tensor& labels, const torch::Tensor& inputs_wo_first) {
  const int64_t B = labels.size(0), first = arch_.schedule.tokens(0);
  const int64_t L = first + inputs_wo_first.size(1);
  auto cond = condition(labels, /*with_unconditional=*/false);
  auto sos = cond.cond_BD.unsqueeze(1).expand({B, first, -1}) + pos_start.expand({B, first, -1});
  auto x = torch::cat({sos, linear(word_embed, inputs_wo_first.to(word_embed->weight.scalar_type()))}, 1);
  x += lvl_embed->forward(lvl_1L.narrow(1, 0, L).expand({B, -1})) + pos_1LC.narrow(1, 0, L);
  auto mask = attn_bias_for_masking.narrow(2, 0, L).narrow(3, 0, L);
  x = forward_blocks(x, cond, nullptr, mask);
  return logits(x, cond);
}

}  // namespace varbench
