#include "metrics/inception.h"

#include "formats/weights.h"

namespace varbench::metrics {

namespace {
torch::Tensor avg_pool_valid(const torch::Tensor& x) {
  // TF's 3x3/stride-1 SAME average pool divides by the number of pixels inside the image.
  return torch::avg_pool2d(x, 3, 1, 1, /*ceil_mode=*/false, /*count_include_pad=*/false);
}

// A (height, width) kernel size or padding; brace lists do not pass through TORCH_MODULE's constructor.
torch::ExpandingArray<2> hw(int64_t h, int64_t w) { return torch::ExpandingArray<2>({h, w}); }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
  running_mean = register_buffer("running_mean", torch::zeros({channels}));
  running_var = register_buffer("running_var", torch::ones({channels}));
}

torch::Tensor FrozenBatchNorm2dImpl::forward(const torch::Tensor& x) {
  return torch::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false, /*momentum=*/0.0, eps,
                           /*cudnn_enabled=*/true);
}

BasicConv2dImpl::BasicConv2dImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel, torch::ExpandingArray<2> stride,
                                 torch::ExpandingArray<2> padding) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  bn = register_module("bn", FrozenBatchNorm2d(out, 1e-3));
  stride_ = c10::IntArrayRef(stride).vec();
  padding_ = c10::IntArrayRef(padding).vec();
}

torch::Tensor BasicConv2dImpl::forward(const torch::Tensor& x) {
  if (fused_weight.defined()) return torch::conv2d(x, fused_weight, fused_bias, stride_, padding_).relu_();
  return torch::relu(bn(conv(x)));
}

void BasicConv2dImpl::fuse(torch::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  const auto scale = bn->weight / torch::sqrt(bn->running_var + bn->eps);  // gamma / sigma per output channel
  fused_weight = (conv->weight * scale.view({-1, 1, 1, 1})).contiguous(format);
  fused_bias = bn->bias - bn->running_mean * scale;
}

// ------------------------------------------------------------------------------------------------
InceptionAImpl::InceptionAImpl(int64_t in, int64_t pool_features) {
  branch1x1 = register_module("branch1x1", BasicConv2d(in, 64, 1));
  branch5x5_1 = register_module("branch5x5_1", BasicConv2d(in, 48, 1));
  branch5x5_2 = register_module("branch5x5_2", BasicConv2d(48, 64, 5, 1, 2));
  branch3x3dbl_1 = register_module("branch3x3dbl_1", BasicConv2d(in, 64, 1));
  branch3x3dbl_2 = register_module("branch3x3dbl_2", BasicConv2d(64, 96, 3, 1, 1));
  branch3x3dbl_3 = register_module("branch3x3dbl_3", BasicConv2d(96, 96, 3, 1, 1));
  branch_pool = register_module("branch_pool", BasicConv2d(in, pool_features, 1));
}

torch::Tensor InceptionAImpl::forward(const torch::Tensor& x) {
  auto b1 = branch1x1(x);                                             // 64
  auto b5 = branch5x5_2(branch5x5_1(x));                              // 64
  auto b3 = branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x)));        // 96
  auto bp = branch_pool(avg_pool_valid(x));                           // pool_features
  return torch::cat({b1, b5, b3, bp}, 1);
}

InceptionBImpl::InceptionBImpl(int64_t in) {
  branch3x3 = register_module("branch3x3", BasicConv2d(in, 384, 3, 2));
  branch3x3dbl_1 = register_module("branch3x3dbl_1", BasicConv2d(in, 64, 1));
  branch3x3dbl_2 = register_module("branch3x3dbl_2", BasicConv2d(64, 96, 3, 1, 1));
  branch3x3dbl_3 = register_module("branch3x3dbl_3", BasicConv2d(96, 96, 3, 2));
}

torch::Tensor InceptionBImpl::forward(const torch::Tensor& x) {
  auto b3 = branch3x3(x);                                             // 384, 17x17
  auto bd = branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x)));        // 96
  auto bp = torch::max_pool2d(x, 3, 2);                               // in
  return torch::cat({b3, bd, bp}, 1);
}

InceptionCImpl::InceptionCImpl(int64_t in, int64_t c7) {
  branch1x1 = register_module("branch1x1", BasicConv2d(in, 192, 1));
  branch7x7_1 = register_module("branch7x7_1", BasicConv2d(in, c7, 1));
  branch7x7_2 = register_module("branch7x7_2", BasicConv2d(c7, c7, hw(1, 7), 1, hw(0, 3)));
  branch7x7_3 = register_module("branch7x7_3", BasicConv2d(c7, 192, hw(7, 1), 1, hw(3, 0)));
  branch7x7dbl_1 = register_module("branch7x7dbl_1", BasicConv2d(in, c7, 1));
  branch7x7dbl_2 = register_module("branch7x7dbl_2", BasicConv2d(c7, c7, hw(7, 1), 1, hw(3, 0)));
  branch7x7dbl_3 = register_module("branch7x7dbl_3", BasicConv2d(c7, c7, hw(1, 7), 1, hw(0, 3)));
  branch7x7dbl_4 = register_module("branch7x7dbl_4", BasicConv2d(c7, c7, hw(7, 1), 1, hw(3, 0)));
  branch7x7dbl_5 = register_module("branch7x7dbl_5", BasicConv2d(c7, 192, hw(1, 7), 1, hw(0, 3)));
  branch_pool = register_module("branch_pool", BasicConv2d(in, 192, 1));
}

torch::Tensor InceptionCImpl::forward(const torch::Tensor& x, torch::Tensor* branch1x1_out) {
  auto b1 = branch1x1(x);                                             // 192
  auto b7 = branch7x7_3(branch7x7_2(branch7x7_1(x)));                 // 192
  auto bd = branch7x7dbl_5(branch7x7dbl_4(branch7x7dbl_3(branch7x7dbl_2(branch7x7dbl_1(x)))));  // 192
  auto bp = branch_pool(avg_pool_valid(x));                           // 192
  if (branch1x1_out) *branch1x1_out = b1;
  return torch::cat({b1, b7, bd, bp}, 1);
}

InceptionDImpl::InceptionDImpl(int64_t in) {
  branch3x3_1 = register_module("branch3x3_1", BasicConv2d(in, 192, 1));
  branch3x3_2 = register_module("branch3x3_2", BasicConv2d(192, 320, 3, 2));
  branch7x7x3_1 = register_module("branch7x7x3_1", BasicConv2d(in, 192, 1));
  branch7x7x3_2 = register_module("branch7x7x3_2", BasicConv2d(192, 192, hw(1, 7), 1, hw(0, 3)));
  branch7x7x3_3 = register_module("branch7x7x3_3", BasicConv2d(192, 192, hw(7, 1), 1, hw(3, 0)));
  branch7x7x3_4 = register_module("branch7x7x3_4", BasicConv2d(192, 192, 3, 2));
}

torch::Tensor InceptionDImpl::forward(const torch::Tensor& x) {
  auto b3 = branch3x3_2(branch3x3_1(x));                                              // 320, 8x8
  auto b7 = branch7x7x3_4(branch7x7x3_3(branch7x7x3_2(branch7x7x3_1(x))));            // 192
  auto bp = torch::max_pool2d(x, 3, 2);                                               // in
  return torch::cat({b3, b7, bp}, 1);
}

InceptionEImpl::InceptionEImpl(int64_t in, PoolBranch pool_) : pool(pool_) {
  branch1x1 = register_module("branch1x1", BasicConv2d(in, 320, 1));
  branch3x3_1 = register_module("branch3x3_1", BasicConv2d(in, 384, 1));
  branch3x3_2a = register_module("branch3x3_2a", BasicConv2d(384, 384, hw(1, 3), 1, hw(0, 1)));
  branch3x3_2b = register_module("branch3x3_2b", BasicConv2d(384, 384, hw(3, 1), 1, hw(1, 0)));
  branch3x3dbl_1 = register_module("branch3x3dbl_1", BasicConv2d(in, 448, 1));
  branch3x3dbl_2 = register_module("branch3x3dbl_2", BasicConv2d(448, 384, 3, 1, 1));
  branch3x3dbl_3a = register_module("branch3x3dbl_3a", BasicConv2d(384, 384, hw(1, 3), 1, hw(0, 1)));
  branch3x3dbl_3b = register_module("branch3x3dbl_3b", BasicConv2d(384, 384, hw(3, 1), 1, hw(1, 0)));
  branch_pool = register_module("branch_pool", BasicConv2d(in, 192, 1));
}

torch::Tensor InceptionEImpl::forward(const torch::Tensor& x) {
  auto b1 = branch1x1(x);                                                             // 320
  auto t = branch3x3_1(x);
  auto b3 = torch::cat({branch3x3_2a(t), branch3x3_2b(t)}, 1);                       // 768
  auto u = branch3x3dbl_2(branch3x3dbl_1(x));
  auto bd = torch::cat({branch3x3dbl_3a(u), branch3x3dbl_3b(u)}, 1);                 // 768
  // Mixed_7c of the TF graph max-pools here where the paper (and Mixed_7b) average.
  auto pooled = pool == PoolBranch::kMax ? torch::max_pool2d(x, 3, 1, 1) : avg_pool_valid(x);
  auto bp = branch_pool(pooled);                                                      // 192
  return torch::cat({b1, b3, bd, bp}, 1);
}

// ------------------------------------------------------------------------------------------------
FidInceptionImpl::FidInceptionImpl() {
  Conv2d_1a_3x3 = register_module("Conv2d_1a_3x3", BasicConv2d(3, 32, 3, 2));
  Conv2d_2a_3x3 = register_module("Conv2d_2a_3x3", BasicConv2d(32, 32, 3));
  Conv2d_2b_3x3 = register_module("Conv2d_2b_3x3", BasicConv2d(32, 64, 3, 1, 1));
  Conv2d_3b_1x1 = register_module("Conv2d_3b_1x1", BasicConv2d(64, 80, 1));
  Conv2d_4a_3x3 = register_module("Conv2d_4a_3x3", BasicConv2d(80, 192, 3));
  Mixed_5b = register_module("Mixed_5b", InceptionA(192, 32));
  Mixed_5c = register_module("Mixed_5c", InceptionA(256, 64));
  Mixed_5d = register_module("Mixed_5d", InceptionA(288, 64));
  Mixed_6a = register_module("Mixed_6a", InceptionB(288));
  Mixed_6b = register_module("Mixed_6b", InceptionC(768, 128));
  Mixed_6c = register_module("Mixed_6c", InceptionC(768, 160));
  Mixed_6d = register_module("Mixed_6d", InceptionC(768, 160));
  Mixed_6e = register_module("Mixed_6e", InceptionC(768, 192));
  Mixed_7a = register_module("Mixed_7a", InceptionD(768));
  Mixed_7b = register_module("Mixed_7b", InceptionE(1280, PoolBranch::kAverageValid));
  Mixed_7c = register_module("Mixed_7c", InceptionE(2048, PoolBranch::kMax));
  fc = register_module("fc", torch::nn::Linear(kPool3Dims, kLogitDims));
}

InceptionFeatures FidInceptionImpl::forward(const torch::Tensor& input) {
  auto x = input.contiguous(memory_format);                    // N x 3 x 299 x 299
  x = Conv2d_1a_3x3(x);                                         // N x 32 x 149 x 149
  x = Conv2d_2a_3x3(x);                                         // N x 32 x 147 x 147
  x = Conv2d_2b_3x3(x);                                         // N x 64 x 147 x 147
  x = torch::max_pool2d(x, 3, 2);                               // N x 64 x 73 x 73
  x = Conv2d_3b_1x1(x);                                         // N x 80 x 73 x 73
  x = Conv2d_4a_3x3(x);                                         // N x 192 x 71 x 71
  x = torch::max_pool2d(x, 3, 2);                               // N x 192 x 35 x 35
  x = Mixed_5b(x);                                              // N x 256 x 35 x 35
  x = Mixed_5c(x);                                              // N x 288 x 35 x 35
  x = Mixed_5d(x);                                              // N x 288 x 35 x 35
  x = Mixed_6a(x);                                              // N x 768 x 17 x 17
  x = Mixed_6b(x);
  x = Mixed_6c(x);
  torch::Tensor mixed_6_conv;                                   // N x 192 x 17 x 17 (TF: mixed_6/conv)
  x = Mixed_6d->forward(x, &mixed_6_conv);
  x = Mixed_6e(x);                                              // N x 768 x 17 x 17
  x = Mixed_7a(x);                                              // N x 1280 x 8 x 8
  x = Mixed_7b(x);                                              // N x 2048 x 8 x 8
  x = Mixed_7c(x);                                              // N x 2048 x 8 x 8
  InceptionFeatures out;
  out.pool3 = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);                       // N x 2048
  out.logits = torch::mm(out.pool3, fc->weight.t());                                  // N x 1008, no bias
  out.spatial = mixed_6_conv.slice(1, 0, kSpatialChannels).permute({0, 2, 3, 1})     // N x 17 x 17 x 7
                    .reshape({input.size(0), -1});                                    // N x 2023 (H, W, C)
  return out;
}

void FidInceptionImpl::prepare_for_inference() {
  // oneDNN runs these convolutions directly on NHWC; in NCHW every layer pays two layout reorders
  // (measured ~3x slower on CPU with libtorch 1.13).
  memory_format = torch::MemoryFormat::ChannelsLast;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* unit = m->as<BasicConv2dImpl>()) unit->fuse(memory_format);
}

FidInception load_fid_inception(const std::string& path, torch::Device device) {
  FidInception net;
  SafetensorsFile file(path);
  load_strict(*net, file, "", [](const std::string& key) { return ends_with(key, ".num_batches_tracked"); });
  freeze_for_inference(*net);
  net->to(device);
  net->prepare_for_inference();
  return net;
}

}  // namespace varbench::metrics
