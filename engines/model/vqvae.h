#pragma once
// The multi-scale VQVAE of VAR (models/vqvae.py, basic_vae.py, quant.py): encoder, residual quantiser,
// the four shared Phi convs, decoder. Module names equal the official state_dict keys.
#include <torch/torch.h>

#include <vector>

#include "engines/model/architecture.h"

namespace varbench {

class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, nin_shortcut{nullptr};  // 1x1 shortcut only when channels change
};
TORCH_MODULE(ResnetBlock);

class AttnBlockImpl : public torch::nn::Module {
 public:
  explicit AttnBlockImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t channels;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d qkv{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(AttnBlock);

// One resolution level: res blocks, optional attention blocks and an optional resampling conv.
struct VaeLevel {
  std::vector<ResnetBlock> blocks;
  std::vector<AttnBlock> attns;
  torch::nn::Conv2d resample{nullptr};
};

class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const VqvaeArch& arch);
  torch::Tensor forward(const torch::Tensor& image);  // [B,3,H,W] in [-1,1] -> [B,Cvae,H/16,W/16]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<VaeLevel> levels;
  ResnetBlock mid_block_1{nullptr}, mid_block_2{nullptr};
  AttnBlock mid_attn_1{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(Encoder);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const VqvaeArch& arch);
  torch::Tensor forward(const torch::Tensor& z);
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<VaeLevel> levels;  // index = resolution level (0 = full resolution), as `up.{i}`
  ResnetBlock mid_block_1{nullptr}, mid_block_2{nullptr};
  AttnBlock mid_attn_1{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(Decoder);

class VectorQuantizerImpl : public torch::nn::Module {
 public:
  explicit VectorQuantizerImpl(const VqvaeArch& arch);
  // Phi for scale `scale` of `num_scales`: h -> (1-r) h + r conv3x3(h).
  torch::Tensor phi(int64_t scale, int64_t num_scales, const torch::Tensor& h);
  // Code vectors of tokens [B,l] as maps [B,Cvae,side,side].
  torch::Tensor lookup(const torch::Tensor& tokens, int64_t side);

  double phi_ratio;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::ModuleList qresi_ls{nullptr};  // registered under quant_resi
  std::vector<torch::nn::Conv2d> phi_convs;
  torch::Tensor ema_vocab_hit_SV;  // training statistic; in the checkpoint, unused
};
TORCH_MODULE(VectorQuantizer);

class VqvaeImpl : public torch::nn::Module {
 public:
  explicit VqvaeImpl(const VqvaeArch& arch, int64_t num_scales = 10);
  const VqvaeArch& arch() const { return arch_; }

  // One scale of the running map: f_hat += Phi(upsample(codes)); returns the next scale's input
  // area-downsampled to `next_side` (or an undefined tensor after the last scale).
  // codes: [B,Cvae,side,side]; f_hat: [B,Cvae,H,W] fp32, updated in place.
  torch::Tensor add_scale(int64_t scale, const std::vector<int64_t>& sides, torch::Tensor& f_hat, const torch::Tensor& codes);
  // f_hat -> image in [-1,1] (decoder(post_quant_conv(f_hat)).clamp(-1,1)).
  torch::Tensor decode(const torch::Tensor& f_hat);
  // Residual quantisation of an image [B,3,H,W] in [-1,1]: one token tensor [B, side^2] per scale.
  std::vector<torch::Tensor> encode_tokens(const torch::Tensor& image, const std::vector<int64_t>& sides);
  // Tokens of every scale -> f_hat (all scales upsampled to the last side).
  torch::Tensor tokens_to_fhat(const std::vector<torch::Tensor>& tokens, const std::vector<int64_t>& sides);
  // Teacher-forcing inputs of the transformer: next-scale inputs of scales 1..S-1, [B, L - first, Cvae].
  torch::Tensor tokens_to_var_input(const std::vector<torch::Tensor>& tokens, const std::vector<int64_t>& sides);

  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  VectorQuantizer quantize{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  VqvaeArch arch_;
};
TORCH_MODULE(Vqvae);

// The resamplers of the official code, kept in one place: bicubic (A=-0.75, align_corners=false) and
// area (adaptive average pooling).
torch::Tensor upsample_bicubic(const torch::Tensor& x, int64_t side);
torch::Tensor downsample_area(const torch::Tensor& x, int64_t side);

}  // namespace varbench
