#include "engines/model/architecture.h"

#include <regex>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "formats/safetensors.h"

namespace varbench {

int64_t ScaleSchedule::begin(int64_t scale) const {
  int64_t n = 0;
  for (int64_t s = 0; s < scale; ++s) n += tokens(s);
  return n;
}

ScaleSchedule ScaleSchedule::for_resolution(int64_t image_px) {
  if (image_px == 256) return {{1, 2, 3, 4, 5, 6, 8, 10, 13, 16}};
  if (image_px == 512) return {{1, 2, 3, 4, 6, 9, 13, 18, 24, 32}};
  throw std::runtime_error(fmt::format("no VAR scale schedule for {} px images (256 or 512)", image_px));
}

ScaleSchedule ScaleSchedule::for_total_tokens(int64_t total) {
  for (int64_t px : {256, 512}) {
    auto s = for_resolution(px);
    if (s.total_tokens() == total) return s;
  }
  throw std::runtime_error(fmt::format("no VAR scale schedule has {} tokens (680 for 256 px, 2240 for 512 px)", total));
}

int64_t VarArch::parameter_count() const {
  const int64_t C = width, L = schedule.total_tokens(), S = schedule.num_scales();
  const int64_t attention = 3 * C * C + 2 * C + heads + C * C + C;  // mat_qkv, q/v bias, scale_mul, proj
  const int64_t ffn = C * mlp_hidden + mlp_hidden + mlp_hidden * C + C;
  const int64_t adaln = shared_adaln ? 6 * C : 6 * C * C + 6 * C;  // ada_gss or ada_lin
  int64_t n = code_dim * C + C + (num_classes + 1) * C + C + L * C + S * C;
  n += depth * (attention + ffn + adaln);
  if (shared_adaln) n += C * 6 * C + 6 * C;
  n += 2 * C * C + 2 * C + C * vocab_size + vocab_size;  // head_nm, head
  return n;
}

VarArch VarArch::official(const std::string& name, int64_t depth, bool shared_adaln, int64_t image_px) {
  VarArch a;
  a.name = name;
  a.depth = depth;
  a.width = 64 * depth;
  a.heads = depth;
  a.mlp_hidden = 4 * a.width;
  a.shared_adaln = shared_adaln;
  a.schedule = ScaleSchedule::for_resolution(image_px);
  return a;
}

namespace {
struct NamedVar {
  const char* name;
  int64_t depth;
  bool shared;
  int64_t px;
  const char* vqvae;
};
// The official models, and small ones for tests and the quickstart. The small ones keep the real scale
// schedule, vocabulary (4096) and code dimension (32), so every code path is the real one.
constexpr NamedVar kNamedVar[] = {
    {"var-d16", 16, false, 256, "vqvae-ch160"}, {"var-d20", 20, false, 256, "vqvae-ch160"},
    {"var-d24", 24, false, 256, "vqvae-ch160"}, {"var-d30", 30, false, 256, "vqvae-ch160"},
    {"var-d36-s", 36, true, 512, "vqvae-ch160"}, {"tiny-d2", 2, false, 256, "vqvae-ch32"},
    {"tiny-d3", 3, false, 256, "vqvae-ch32"},   {"tiny-d4", 4, false, 256, "vqvae-ch32"},
};
}  // namespace

VarArch VarArch::named(const std::string& name) {
  for (const auto& n : kNamedVar)
    if (name == n.name) return official(n.name, n.depth, n.shared, n.px);
  throw std::runtime_error(fmt::format("unknown VAR config '{}' (known: {})", name, fmt::join(names(), ", ")));
}

std::vector<std::string> VarArch::names() {
  std::vector<std::string> out;
  for (const auto& n : kNamedVar) out.emplace_back(n.name);
  return out;
}

std::string default_vqvae_for(const std::string& var_config_name) {
  for (const auto& n : kNamedVar)
    if (var_config_name == n.name) return n.vqvae;
  return "vqvae-ch160";
}

namespace {
const TensorInfo& need(const SafetensorsFile& f, const std::string& key) {
  auto it = f.entries().find(key);
  if (it == f.entries().end())
    throw std::runtime_error(fmt::format("{}: cannot read the architecture: no tensor '{}'", f.path(), key));
  return it->second;
}
int64_t count_indexed(const SafetensorsFile& f, const std::string& prefix) {
  std::set<int64_t> idx;
  const std::regex re("^" + std::regex_replace(prefix, std::regex(R"([.])"), R"(\.)") + R"((\d+)\..*)");
  std::smatch m;
  for (const auto& [key, info] : f.entries())
    if (std::regex_match(key, m, re)) idx.insert(std::stoll(m[1]));
  return static_cast<int64_t>(idx.size());
}
}  // namespace

VarArch VarArch::from_checkpoint(const SafetensorsFile& f) {
  VarArch a;
  a.name = "checkpoint";
  const auto& word = need(f, "word_embed.weight");
  a.width = word.shape.at(0);
  a.code_dim = word.shape.at(1);
  a.depth = count_indexed(f, "blocks.");
  if (a.depth == 0) throw std::runtime_error(fmt::format("{}: no transformer blocks (blocks.0.*) in the checkpoint", f.path()));
  a.heads = need(f, "blocks.0.attn.scale_mul_1H11").shape.at(1);
  a.mlp_hidden = need(f, "blocks.0.ffn.fc1.weight").shape.at(0);
  a.num_classes = need(f, "class_emb.weight").shape.at(0) - 1;
  // The head's size has a fallback so that a checkpoint missing it still reaches the strict loader,
  // which lists every problem at once.
  if (f.contains("head.weight") || f.contains("head.bias"))
    a.vocab_size = need(f, f.contains("head.weight") ? "head.weight" : "head.bias").shape.at(0);
  a.shared_adaln = f.contains("shared_ada_lin.1.weight");
  a.schedule = ScaleSchedule::for_total_tokens(need(f, "pos_1LC").shape.at(1));
  if (a.width % a.heads != 0)
    throw std::runtime_error(fmt::format("{}: width {} is not divisible by {} heads", f.path(), a.width, a.heads));
  return a;
}

VqvaeArch VqvaeArch::named(const std::string& name) {
  VqvaeArch a;
  a.name = name;
  if (name == "vqvae-ch160") return a;  // vae_ch160v4096z32, the official tokenizer
  if (name == "vqvae-ch32") {           // narrow test tokenizer (GroupNorm(32) needs >= 32 channels)
    a.ch = 32;
    return a;
  }
  throw std::runtime_error(fmt::format("unknown VQVAE config '{}' (known: {})", name, fmt::join(names(), ", ")));
}

std::vector<std::string> VqvaeArch::names() { return {"vqvae-ch160", "vqvae-ch32"}; }

VqvaeArch VqvaeArch::from_checkpoint(const SafetensorsFile& f) {
  VqvaeArch a;
  a.name = "checkpoint";
  const auto& emb = need(f, "quantize.embedding.weight");
  a.vocab_size = emb.shape.at(0);
  a.code_dim = emb.shape.at(1);
  const int64_t levels = count_indexed(f, "decoder.up.");
  if (levels == 0) throw std::runtime_error(fmt::format("{}: no decoder levels (decoder.up.0.*) in the checkpoint", f.path()));
  a.ch = need(f, "decoder.up.0.block.0.conv2.weight").shape.at(0);
  a.ch_mult.clear();
  for (int64_t i = 0; i < levels; ++i) {
    const int64_t c = need(f, fmt::format("decoder.up.{}.block.0.conv2.weight", i)).shape.at(0);
    if (c % a.ch != 0) throw std::runtime_error(fmt::format("{}: level {} has {} channels, not a multiple of {}", f.path(), i, c, a.ch));
    a.ch_mult.push_back(c / a.ch);
  }
  a.num_res_blocks = count_indexed(f, "decoder.up.0.block.") - 1;
  a.num_phi = count_indexed(f, "quantize.quant_resi.qresi_ls.");
  return a;
}

}  // namespace varbench
