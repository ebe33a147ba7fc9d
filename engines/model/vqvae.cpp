#include "engines/model/vqvae.h"

#include "engines/model/part_profile.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

namespace F = torch::nn::functional;

namespace {
torch::nn::GroupNorm group_norm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels).eps(1e-6).affine(true));
}
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = -1) {
  if (padding < 0) padding = kernel / 2;
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}
}  // namespace

torch::Tensor upsample_bicubic(const torch::Tensor& x, int64_t side) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{side, side})
                               .mode(torch::kBicubic)
                               .align_corners(false));
}

torch::Tensor downsample_area(const torch::Tensor& x, int64_t side) {
  return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{side, side}).mode(torch::kArea));
}

// ---------------------------------------------------------------------------------------------------
ResnetBlockImpl::ResnetBlockImpl(int64_t in, int64_t out) {
  norm1 = register_module("norm1", group_norm(in));
  conv1 = register_module("conv1", conv(in, out, 3));
  norm2 = register_module("norm2", group_norm(out));
  conv2 = register_module("conv2", conv(out, out, 3));
  if (in != out) nin_shortcut = register_module("nin_shortcut", conv(in, out, 1));
}

torch::Tensor ResnetBlockImpl::forward(const torch::Tensor& x) {
  auto h = conv1(F::silu(norm1(x)));
  h = conv2(F::silu(norm2(h)));
  return (nin_shortcut ? nin_shortcut(x) : x) + h;
}

AttnBlockImpl::AttnBlockImpl(int64_t c) : channels(c) {
  norm = register_module("norm", group_norm(c));
  qkv = register_module("qkv", conv(c, 3 * c, 1));
  proj_out = register_module("proj_out", conv(c, c, 1));
}

torch::Tensor AttnBlockImpl::forward(const torch::Tensor& x) {
  auto qkv_ = qkv(norm(x));
  const int64_t B = qkv_.size(0), H = qkv_.size(2), W = qkv_.size(3), C = channels;
  auto parts = qkv_.reshape({B, 3, C, H, W}).unbind(1);
  auto q = parts[0].reshape({B, C, H * W}).permute({0, 2, 1}).contiguous();  // B, HW, C
  auto k = parts[1].reshape({B, C, H * W}).contiguous();                     // B, C, HW
  auto w = torch::bmm(q, k).mul_(std::pow(static_cast<double>(C), -0.5));     // single head, scale C^-1/2
  w = w.softmax(2);
  auto v = parts[2].reshape({B, C, H * W}).contiguous();
  auto h = torch::bmm(v, w.permute({0, 2, 1}).contiguous()).view({B, C, H, W});
  return x + proj_out(h);
}

// ---------------------------------------------------------------------------------------------------
EncoderImpl::EncoderImpl(const VqvaeArch& a) {
  const int64_t n = static_cast<int64_t>(a.ch_mult.size());
  conv_in = register_module("conv_in", conv(3, a.ch, 3));
  auto down = register_module("down", torch::nn::ModuleList());
  int64_t block_in = a.ch;
  for (int64_t i = 0; i < n; ++i) {
    VaeLevel level;
    auto holder = std::make_shared<torch::nn::Module>();
    auto block_list = holder->register_module("block", torch::nn::ModuleList());
    auto attn_list = holder->register_module("attn", torch::nn::ModuleList());
    const int64_t block_out = a.ch * a.ch_mult[i];
    for (int64_t j = 0; j < a.num_res_blocks; ++j) {
      level.blocks.emplace_back(block_in, block_out);
      block_list->push_back(level.blocks.back());
      block_in = block_out;
      if (i == n - 1) {
        level.attns.emplace_back(block_in);
        attn_list->push_back(level.attns.back());
      }
    }
    if (i != n - 1) {
      auto ds = std::make_shared<torch::nn::Module>();
      level.resample = ds->register_module("conv", conv(block_in, block_in, 3, 2, 0));
      holder->register_module("downsample", ds);
    }
    down->push_back(holder);
    levels.push_back(std::move(level));
  }
  auto mid = register_module("mid", std::make_shared<torch::nn::Module>());
  mid_block_1 = mid->register_module("block_1", ResnetBlock(block_in, block_in));
  mid_attn_1 = mid->register_module("attn_1", AttnBlock(block_in));
  mid_block_2 = mid->register_module("block_2", ResnetBlock(block_in, block_in));
  norm_out = register_module("norm_out", group_norm(block_in));
  conv_out = register_module("conv_out", conv(block_in, a.code_dim, 3));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& image) {
  auto h = conv_in(image);
  for (size_t i = 0; i < levels.size(); ++i) {
    auto& level = levels[i];
    for (size_t j = 0; j < level.blocks.size(); ++j) {
      h = level.blocks[j](h);
      if (!level.attns.empty()) h = level.attns[j](h);
    }
    // Stride-2 conv without padding after padding right/bottom by one.
    if (level.resample) h = level.resample(F::pad(h, F::PadFuncOptions({0, 1, 0, 1})));
  }
  h = mid_block_2(mid_attn_1(mid_block_1(h)));
  return conv_out(F::silu(norm_out(h)));
}

DecoderImpl::DecoderImpl(const VqvaeArch& a) {
  const int64_t n = static_cast<int64_t>(a.ch_mult.size());
  int64_t block_in = a.ch * a.ch_mult.back();
  conv_in = register_module("conv_in", conv(a.code_dim, block_in, 3));
  auto mid = register_module("mid", std::make_shared<torch::nn::Module>());
  mid_block_1 = mid->register_module("block_1", ResnetBlock(block_in, block_in));
  mid_attn_1 = mid->register_module("attn_1", AttnBlock(block_in));
  mid_block_2 = mid->register_module("block_2", ResnetBlock(block_in, block_in));
  // Built from the lowest resolution up, stored and registered by level index as `up.{i}`.
  std::vector<std::shared_ptr<torch::nn::Module>> holders(n);
  levels.resize(n);
  for (int64_t i = n - 1; i >= 0; --i) {
    VaeLevel& level = levels[i];
    holders[i] = std::make_shared<torch::nn::Module>();
    auto block_list = holders[i]->register_module("block", torch::nn::ModuleList());
    auto attn_list = holders[i]->register_module("attn", torch::nn::ModuleList());
    const int64_t block_out = a.ch * a.ch_mult[i];
    for (int64_t j = 0; j < a.num_res_blocks + 1; ++j) {
      level.blocks.emplace_back(block_in, block_out);
      block_list->push_back(level.blocks.back());
      block_in = block_out;
      if (i == n - 1) {
        level.attns.emplace_back(block_in);
        attn_list->push_back(level.attns.back());
      }
    }
    if (i != 0) {
      auto us = std::make_shared<torch::nn::Module>();
      level.resample = us->register_module("conv", conv(block_in, block_in, 3));
      holders[i]->register_module("upsample", us);
    }
  }
  auto up = register_module("up", torch::nn::ModuleList());
  for (auto& h : holders) up->push_back(h);
  norm_out = register_module("norm_out", group_norm(block_in));
  conv_out = register_module("conv_out", conv(block_in, 3, 3));
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& z) {
  auto h = mid_block_2(mid_attn_1(mid_block_1(conv_in(z))));
  for (int64_t i = static_cast<int64_t>(levels.size()) - 1; i >= 0; --i) {
    auto& level = levels[i];
    for (size_t j = 0; j < level.blocks.size(); ++j) {
      h = level.blocks[j](h);
      if (!level.attns.empty()) h = level.attns[j](h);
    }
    if (level.resample)
      h = level.resample(F::interpolate(h, F::InterpolateFuncOptions()
                                               .scale_factor(std::vector<double>{2.0, 2.0})
                                               .mode(torch::kNearest)));
  }
  return conv_out(F::silu(norm_out(h)));
}

// ---------------------------------------------------------------------------------------------------
VectorQuantizerImpl::VectorQuantizerImpl(const VqvaeArch& a) : phi_ratio(a.phi_ratio) {
  if (a.num_phi != 4)
    throw std::runtime_error(fmt::format("VQVAE with {} Phi convs: only the official 4 partially shared ones are supported", a.num_phi));
  embedding = register_module("embedding", torch::nn::Embedding(a.vocab_size, a.code_dim));
  auto quant_resi = register_module("quant_resi", std::make_shared<torch::nn::Module>());
  qresi_ls = quant_resi->register_module("qresi_ls", torch::nn::ModuleList());
  for (int64_t i = 0; i < a.num_phi; ++i) {
    phi_convs.push_back(conv(a.code_dim, a.code_dim, 3));
    qresi_ls->push_back(phi_convs.back());
  }
  ema_vocab_hit_SV = register_buffer("ema_vocab_hit_SV", torch::zeros({10, a.vocab_size}));
}

torch::Tensor VectorQuantizerImpl::phi(int64_t scale, int64_t num_scales, const torch::Tensor& h) {
  // The official code picks the Phi whose tick (linspace(1/12, 11/12, 4)) is nearest to scale/(S-1);
  // scales 2 and 7 are exact ties that floating point resolves this way, so the table is fixed here.
  static constexpr int64_t kPhiOfScale[10] = {0, 0, 1, 1, 1, 2, 2, 3, 3, 3};
  if (num_scales != 10) throw std::runtime_error(fmt::format("Phi table is defined for 10 scales, not {}", num_scales));
  auto& c = phi_convs[kPhiOfScale[scale]];
  return h.mul(1 - phi_ratio) + c->forward(h).mul_(phi_ratio);
}

torch::Tensor VectorQuantizerImpl::lookup(const torch::Tensor& tokens, int64_t side) {
  const int64_t B = tokens.size(0);
  return embedding->forward(tokens).transpose_(1, 2).reshape({B, embedding->weight.size(1), side, side});
}

// ---------------------------------------------------------------------------------------------------
VqvaeImpl::VqvaeImpl(const VqvaeArch& arch, int64_t num_scales) : arch_(arch) {
  encoder = register_module("encoder", Encoder(arch));
  decoder = register_module("decoder", Decoder(arch));
  quantize = register_module("quantize", VectorQuantizer(arch));
  quant_conv = register_module("quant_conv", conv(arch.code_dim, arch.code_dim, 3));
  post_quant_conv = register_module("post_quant_conv", conv(arch.code_dim, arch.code_dim, 3));
}

torch::Tensor VqvaeImpl::add_scale(int64_t scale, const std::vector<int64_t>& sides, torch::Tensor& f_hat,
                                   const torch::Tensor& codes) {
  const int64_t S = static_cast<int64_t>(sides.size()), full = sides.back();
  // phi is a 3x3 convolution over the full map, blended with its input.
  const double phi_flops = 18.0 * static_cast<double>(f_hat.numel() * f_hat.size(1));
  const double map_bytes = tensor_bytes({f_hat});
  if (scale != S - 1) {
    torch::Tensor upsampled;
    {
      PartScope part(Part::kInterpolation, 0, tensor_bytes({codes}) + map_bytes);
      upsampled = upsample_bicubic(codes, full);
    }
    {
      PartScope part(Part::kFhatUpdate, phi_flops, 5 * map_bytes);
      f_hat.add_(quantize->phi(scale, S, upsampled));  // conv after upsampling
    }
    PartScope part(Part::kInterpolation, 0, 1.25 * map_bytes);
    return downsample_area(f_hat, sides[scale + 1]);
  }
  PartScope part(Part::kFhatUpdate, phi_flops, 5 * map_bytes);
  f_hat.add_(quantize->phi(scale, S, codes));
  return {};
}

torch::Tensor VqvaeImpl::decode(const torch::Tensor& f_hat) {
  return decoder(post_quant_conv(f_hat.to(post_quant_conv->weight.scalar_type()))).clamp_(-1, 1);
}

std::vector<torch::Tensor> VqvaeImpl::encode_tokens(const torch::Tensor& image, const std::vector<int64_t>& sides) {
  auto f = quant_conv(encoder(image));
  const int64_t B = f.size(0), C = f.size(1), H = f.size(2), W = f.size(3), S = static_cast<int64_t>(sides.size());
  if (H != sides.back() || W != sides.back())
    throw std::runtime_error(fmt::format("encoder gives {}x{} maps, the scale schedule ends at {}", H, W, sides.back()));
  auto f_rest = f.clone();
  auto f_hat = torch::zeros_like(f_rest);
  const auto& E = quantize->embedding->weight;
  auto e_sq = E.square().sum(1);
  std::vector<torch::Tensor> tokens;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t side = sides[s];
    auto z = (s != S - 1 ? downsample_area(f_rest, side) : f_rest).permute({0, 2, 3, 1}).reshape({-1, C});
    // Squared distances as the official code forms them: |z|^2 + |e|^2 - 2 z.e (near-ties are possible).
    auto d = z.square().sum(1, true) + e_sq;
    d.addmm_(z, E.t(), /*beta=*/1, /*alpha=*/-2);
    auto idx = d.argmin(1);
    auto codes = quantize->embedding->forward(idx.view({B, side, side})).permute({0, 3, 1, 2});
    auto h = s != S - 1 ? upsample_bicubic(codes, H).contiguous() : codes.contiguous();
    h = quantize->phi(s, S, h);
    f_hat.add_(h);
    f_rest.sub_(h);
    tokens.push_back(idx.reshape({B, side * side}));
  }
  return tokens;
}

torch::Tensor VqvaeImpl::tokens_to_fhat(const std::vector<torch::Tensor>& tokens, const std::vector<int64_t>& sides) {
  const int64_t B = tokens.at(0).size(0);
  auto f_hat = torch::zeros({B, arch_.code_dim, sides.back(), sides.back()}, quantize->embedding->weight.options());
  for (size_t s = 0; s < sides.size(); ++s) add_scale(s, sides, f_hat, quantize->lookup(tokens[s], sides[s]));
  return f_hat;
}

torch::Tensor VqvaeImpl::tokens_to_var_input(const std::vector<torch::Tensor>& tokens, const std::vector<int64_t>& sides) {
  const int64_t B = tokens.at(0).size(0), C = arch_.code_dim;
  auto f_hat = torch::zeros({B, C, sides.back(), sides.back()}, quantize->embedding->weight.options());
  std::vector<torch::Tensor> next;
  for (size_t s = 0; s + 1 < sides.size(); ++s) {
    auto n = add_scale(s, sides, f_hat, quantize->lookup(tokens[s], sides[s]));
    next.push_back(n.view({B, C, -1}).transpose(1, 2));
  }
  return torch::cat(next, 1);
}

}  // namespace varbench
