#pragma once
// Architecture descriptions of the VAR transformer and the multi-scale VQVAE. Named configurations cover
// the official models and the small test/quickstart models; `from_checkpoint` reads the architecture
// off the tensor shapes so any official-layout checkpoint loads, small test ones included.
#include <cstdint>
#include <string>
#include <vector>

namespace varbench {

class SafetensorsFile;

// Side lengths of the token maps, smallest first, and where each scale's tokens start in the sequence.
struct ScaleSchedule {
  std::vector<int64_t> sides;

  int64_t num_scales() const { return static_cast<int64_t>(sides.size()); }
  int64_t tokens(int64_t scale) const { return sides.at(scale) * sides.at(scale); }
  int64_t begin(int64_t scale) const;  // tokens of all scales before `scale`
  int64_t end(int64_t scale) const { return begin(scale) + tokens(scale); }
  int64_t total_tokens() const { return end(num_scales() - 1); }
  int64_t final_side() const { return sides.back(); }

  static ScaleSchedule for_resolution(int64_t image_px);  // 256 or 512
  static ScaleSchedule for_total_tokens(int64_t total);   // 680 or 2240
};

struct VarArch {
  std::string name;
  int64_t depth = 16;
  int64_t width = 1024;  // C = 64 * depth for the official models
  int64_t heads = 16;
  int64_t mlp_hidden = 4096;
  int64_t num_classes = 1000;  // class_emb has num_classes + 1 rows: the last is the unconditional class
  int64_t vocab_size = 4096;
  int64_t code_dim = 32;
  bool shared_adaln = false;  // VAR-d36-s: one AdaLN projection shared by all blocks
  double norm_eps = 1e-6;
  ScaleSchedule schedule;

  int64_t head_dim() const { return width / heads; }
  int64_t parameter_count() const;  // analytic, as sum(p.numel() for p in model.parameters())
  // The official constructor: width 64*depth, heads = depth.
  static VarArch official(const std::string& name, int64_t depth, bool shared_adaln = false, int64_t image_px = 256);
  static VarArch named(const std::string& name);  // throws listing the known names
  static std::vector<std::string> names();
  static VarArch from_checkpoint(const SafetensorsFile& file);
};

struct VqvaeArch {
  std::string name;
  int64_t ch = 160;
  std::vector<int64_t> ch_mult{1, 1, 2, 2, 4};
  int64_t num_res_blocks = 2;  // encoder; the decoder has one more per level
  int64_t vocab_size = 4096;
  int64_t code_dim = 32;
  int64_t num_phi = 4;  // partially shared residual convs
  double phi_ratio = 0.5;

  int64_t downsample() const { return int64_t{1} << (ch_mult.size() - 1); }
  static VqvaeArch named(const std::string& name);
  static std::vector<std::string> names();
  static VqvaeArch from_checkpoint(const SafetensorsFile& file);
};

// A generator's pair: which VQVAE goes with a named VAR config when both are random-initialised.
std::string default_vqvae_for(const std::string& var_config_name);

}  // namespace varbench
