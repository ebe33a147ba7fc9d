#pragma once
// The FID Inception-v3: the TensorFlow 2015-12-05 graph as pytorch-fid and torch-fidelity port it.
// Units are conv (no bias) + BatchNorm (eps 1e-3, frozen statistics) + ReLU. The blocks differ from
// torchvision's Inception3 where the TF graph does: the pool branches of Mixed_5b/5c/5d, Mixed_6b..6e and
// Mixed_7b average over the pixels inside the image only (TF's average pool ignores padding), and
// Mixed_7c's pool branch is a max pool. Module and parameter names equal the keys of pytorch-fid's
// pt_inception-2015-12-05-6726825d.pth (e.g. Mixed_6d.branch1x1.bn.running_mean, fc.weight).
#include <torch/torch.h>

#include <string>

namespace varbench::metrics {

// What the metrics read off one forward pass.
struct InceptionFeatures {
  torch::Tensor pool3;    // [N, 2048] float32: global average of Mixed_7c (FID, precision/recall, KID)
  torch::Tensor logits;   // [N, 1008] float32: pool3 @ fc.weight^T without the fc bias (torch-fidelity's
                          // "logits_unbiased", the ADM evaluator's softmax input; Inception Score)
  torch::Tensor spatial;  // [N, 2023] float32: sFID features, see below
};

inline constexpr int64_t kInceptionSide = 299;       // input resolution
inline constexpr int64_t kPool3Dims = 2048;
inline constexpr int64_t kLogitDims = 1008;
// sFID: the ADM evaluator reads the TF tensor `mixed_6/conv:0` (= Mixed_6d.branch1x1 after its ReLU,
// N x 17 x 17 x 192 in TF's NHWC layout), keeps channels 0..6 and flattens (H, W, C): 17*17*7 = 2023.
inline constexpr int64_t kSpatialChannels = 7;
inline constexpr int64_t kSpatialDims = 17 * 17 * kSpatialChannels;

// BatchNorm with frozen statistics and no `num_batches_tracked` slot: the checkpoint's counters are
// skipped by the loader's ignore filter rather than loaded into a module that never uses them.
struct FrozenBatchNorm2dImpl : torch::nn::Module {
  explicit FrozenBatchNorm2dImpl(int64_t channels, double eps = 1e-3);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias, running_mean, running_var;
  double eps;
};
TORCH_MODULE(FrozenBatchNorm2d);

struct BasicConv2dImpl : torch::nn::Module {
  BasicConv2dImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel, torch::ExpandingArray<2> stride = 1,
                  torch::ExpandingArray<2> padding = 0);
  torch::Tensor forward(const torch::Tensor& x);
  // Folds the BatchNorm into the convolution (weight * gamma/sigma, bias beta - mean * gamma/sigma), in
  // channels-last layout: one oneDNN convolution with bias instead of three passes over the activations.
  // Changes results by float rounding only (~1e-7 relative); the parity tests run the fused network.
  void fuse(torch::MemoryFormat format);
  torch::nn::Conv2d conv{nullptr};
  FrozenBatchNorm2d bn{nullptr};
  torch::Tensor fused_weight, fused_bias;  // not registered: derived from the checkpoint's tensors
  std::vector<int64_t> stride_, padding_;
};
TORCH_MODULE(BasicConv2d);

// Mixed_5b/5c/5d (35x35).
struct InceptionAImpl : torch::nn::Module {
  InceptionAImpl(int64_t in, int64_t pool_features);
  torch::Tensor forward(const torch::Tensor& x);
  BasicConv2d branch1x1{nullptr}, branch5x5_1{nullptr}, branch5x5_2{nullptr}, branch3x3dbl_1{nullptr},
      branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionA);

// Mixed_6a (35x35 -> 17x17).
struct InceptionBImpl : torch::nn::Module {
  explicit InceptionBImpl(int64_t in);
  torch::Tensor forward(const torch::Tensor& x);
  BasicConv2d branch3x3{nullptr}, branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr};
};
TORCH_MODULE(InceptionB);

// Mixed_6b..6e (17x17). `branch1x1_out`, when given, receives the 1x1 branch (Mixed_6d's is sFID's input).
struct InceptionCImpl : torch::nn::Module {
  InceptionCImpl(int64_t in, int64_t channels_7x7);
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* branch1x1_out = nullptr);
  BasicConv2d branch1x1{nullptr}, branch7x7_1{nullptr}, branch7x7_2{nullptr}, branch7x7_3{nullptr},
      branch7x7dbl_1{nullptr}, branch7x7dbl_2{nullptr}, branch7x7dbl_3{nullptr}, branch7x7dbl_4{nullptr},
      branch7x7dbl_5{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionC);

// Mixed_7a (17x17 -> 8x8).
struct InceptionDImpl : torch::nn::Module {
  explicit InceptionDImpl(int64_t in);
  torch::Tensor forward(const torch::Tensor& x);
  BasicConv2d branch3x3_1{nullptr}, branch3x3_2{nullptr}, branch7x7x3_1{nullptr}, branch7x7x3_2{nullptr},
      branch7x7x3_3{nullptr}, branch7x7x3_4{nullptr};
};
TORCH_MODULE(InceptionD);

// Mixed_7b (average pool over valid pixels) and Mixed_7c (max pool), 8x8.
enum class PoolBranch { kAverageValid, kMax };
struct InceptionEImpl : torch::nn::Module {
  InceptionEImpl(int64_t in, PoolBranch pool);
  torch::Tensor forward(const torch::Tensor& x);
  BasicConv2d branch1x1{nullptr}, branch3x3_1{nullptr}, branch3x3_2a{nullptr}, branch3x3_2b{nullptr},
      branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3a{nullptr}, branch3x3dbl_3b{nullptr},
      branch_pool{nullptr};
  PoolBranch pool;
};
TORCH_MODULE(InceptionE);

struct FidInceptionImpl : torch::nn::Module {
  FidInceptionImpl();
  // x: preprocessed images, float32 [N, 3, 299, 299] in [-1, 1] (see preprocess.h).
  InceptionFeatures forward(const torch::Tensor& x);
  // BatchNorm folding and channels-last weights; call once after loading and placing the weights.
  void prepare_for_inference();

  BasicConv2d Conv2d_1a_3x3{nullptr}, Conv2d_2a_3x3{nullptr}, Conv2d_2b_3x3{nullptr}, Conv2d_3b_1x1{nullptr},
      Conv2d_4a_3x3{nullptr};
  InceptionA Mixed_5b{nullptr}, Mixed_5c{nullptr}, Mixed_5d{nullptr};
  InceptionB Mixed_6a{nullptr};
  InceptionC Mixed_6b{nullptr}, Mixed_6c{nullptr}, Mixed_6d{nullptr}, Mixed_6e{nullptr};
  InceptionD Mixed_7a{nullptr};
  InceptionE Mixed_7b{nullptr}, Mixed_7c{nullptr};
  torch::nn::Linear fc{nullptr};  // 2048 -> 1008; its bias is loaded (strictness) but IS uses no bias
  torch::MemoryFormat memory_format = torch::MemoryFormat::Contiguous;
};
TORCH_MODULE(FidInception);

// Loads the converted pytorch-fid weights (scripts/convert_checkpoint.py pt_inception-...pth OUT.safetensors)
// strictly: every key must match in name, shape and dtype, except the BatchNorm `num_batches_tracked`
// counters, which are ignored. Places the network on `device` and prepares it for inference.
FidInception load_fid_inception(const std::string& path, torch::Device device = torch::kCPU);

}  // namespace varbench::metrics
