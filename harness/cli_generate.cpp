// varbench generate: sample images with one VAR model and write labels, seeds, tokens and images.
#include <chrono>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "engines/model/generation.h"
#include "engines/model/loading.h"
#include "engines/model/torch_compat.h"
#include "harness/commands.h"
#include "harness/device/device.h"
#include "harness/image_plan.h"
#include "formats/image_files.h"
#include "harness/progress.h"
#include "harness/provenance.h"
#include "harness/sample_writer.h"

namespace varbench {

namespace {

struct GenerateOptions {
  std::string var_checkpoint, vqvae_checkpoint, random_init, random_vqvae;
  uint64_t init_seed = 0;
  std::string classes = "0-9";
  int64_t images_per_class = 1;
  int64_t batch_size = 8;
  uint64_t seed = 0;
  double cfg = 1.5;
  std::vector<int64_t> top_k{900};
  double top_p = 0.96;
  std::vector<double> temperature{1.0};
  bool more_smooth = false;
  std::string rng = "per-image";
  std::string device = "cpu";
  std::string dtype = "fp32";
  int threads = 0;
  std::string out;
  std::string png_dir, npz;
  bool no_images = false;
  bool overwrite = false;
};

int run_generate(const GenerateOptions& o) {
  const int threads = configure_threads(o.threads);
  const auto device = device::resolve(o.device);
  const auto precision = parse_precision(o.dtype);
  if (device.is_cpu() && !cpu_supports(precision))
    throw std::runtime_error(fmt::format("--dtype {}: CPU runs are fp32 or bf16-autocast (the other low precisions are for CUDA)", o.dtype));
  const auto policy = PrecisionPolicy::of(precision);

  SamplingSettings sampling;
  sampling.cfg = o.cfg;
  sampling.top_k = o.top_k;
  sampling.top_p = o.top_p;
  sampling.temperature = o.temperature;
  sampling.more_smooth = o.more_smooth;
  const auto rng_mode = parse_rng_mode(o.rng);

  if (std::filesystem::exists(o.out) && !o.overwrite)
    throw std::runtime_error(fmt::format("{}: exists; pass --overwrite to replace it", o.out));
  if (o.no_images && !o.npz.empty()) throw std::runtime_error("--npz needs the images: drop --no-images");

  ModelSource var_source{o.var_checkpoint, o.random_init, o.init_seed};
  ModelSource vqvae_source{o.vqvae_checkpoint, o.random_vqvae, o.init_seed + 1};
  if (!o.random_init.empty() && o.vqvae_checkpoint.empty() && o.random_vqvae.empty())
    vqvae_source.random_config = default_vqvae_for(o.random_init);
  auto var = load_var(var_source);
  auto vqvae = load_vqvae(vqvae_source);
  place(*var, device, policy.weight_dtype);
  place(*vqvae, device, torch::kFloat32);
  const auto& arch = var->arch();
  sampling.validate(arch.schedule.num_scales());
  if (vqvae->arch().code_dim != arch.code_dim || vqvae->arch().vocab_size != arch.vocab_size)
    throw std::runtime_error(fmt::format("VAR model ({} codes of dim {}) and VQVAE ({} codes of dim {}) do not match",
                                         arch.vocab_size, arch.code_dim, vqvae->arch().vocab_size, vqvae->arch().code_dim));

  const auto plan = plan_images(parse_class_list(o.classes, arch.num_classes), o.images_per_class);
  const int64_t N = plan.size(), px = arch.schedule.final_side() * vqvae->arch().downsample();
  if (o.batch_size < 1) throw std::runtime_error(fmt::format("--batch-size {}: must be >= 1", o.batch_size));

  h5::File file(o.out, h5::File::Mode::kCreate);
  const auto provenance = collect_provenance(device, policy.compute_dtype());
  write_provenance(file.root(), provenance);
  file.root().set_attr("schema_version", int64_t{1});
  auto root = file.root().create_group("runs/generate");
  write_provenance(root, provenance);
  root.set_attr("engine", "single");
  root.set_attr("status", "running");
  root.set_attr("num_images", N);
  root.set_attr("var_model", var_source.describe());
  root.set_attr("vqvae_model", vqvae_source.describe());
  root.set_attr("var_depth", arch.depth);
  root.set_attr("seed", static_cast<int64_t>(o.seed));
  root.set_attr("rng_mode", rng_mode_name(rng_mode));
  root.set_attr("cfg", sampling.cfg);
  root.set_attr("top_k", sampling.top_k);
  root.set_attr("top_p", sampling.top_p);
  root.set_attr("temperature", sampling.temperature);
  root.set_attr("more_smooth", static_cast<int64_t>(sampling.more_smooth));
  root.set_attr("dtype", precision_name(precision));
  root.set_attr("batch_size", o.batch_size);
  SampleWriter writer(root, N, arch.schedule, px, px, !o.no_images);
  if (!o.png_dir.empty()) std::filesystem::create_directories(o.png_dir);

  std::cerr << fmt::format("varbench generate: {} images of {}x{} px with {} (depth {}) on {} ({} threads), batch {}\n", N, px,
                           px, var_source.describe(), arch.depth, device::name(device), threads, o.batch_size);
  c10::InferenceMode inference;
  ProgressBar progress(N, "generate");
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < N; first += o.batch_size) {
    const int64_t B = std::min(o.batch_size, N - first);
    GenerationRequest request;
    std::vector<int64_t> labels(plan.labels.begin() + first, plan.labels.begin() + first + B);
    std::vector<int64_t> in_class(plan.index_in_class.begin() + first, plan.index_in_class.begin() + first + B);
    request.labels = torch::tensor(labels, torch::kLong).to(device);
    for (int64_t i = 0; i < B; ++i) request.image_indices.push_back(first + i);
    request.rng_mode = rng_mode;
    request.seed = rng_mode == RngMode::kReference ? reference_batch_seed(plan, first, o.seed) : o.seed;
    request.sampling = sampling;
    auto state = generate_single(var, vqvae, request, policy);
    torch::Tensor images;
    {
      compat::AutocastGuard autocast(policy.autocast && !device.is_cpu(), policy.autocast_dtype);  // fp32 decode on the CPU (driver.cpp)
      images = images_to_uint8(vqvae->decode(state.f_hat));
    }
    std::vector<int64_t> seeds(B, static_cast<int64_t>(request.seed));
    writer.write_batch(first, labels, in_class, seeds, state.tokens, images, request.image_indices);
    file.flush();
    if (!o.png_dir.empty())
      for (int64_t i = 0; i < B; ++i)
        io::write_png(fmt::format("{}/{}_{}.png", o.png_dir, labels[i], in_class[i]), images[i].data_ptr<uint8_t>(), px, px);
    progress.advance(B);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.finish();
  if (!o.npz.empty()) {
    auto images = root.dataset(schema::kImages);
    io::write_npz_streamed(o.npz, "arr_0", "|u1", {N, px, px, 3}, [&](int64_t row, int64_t count, uint8_t* dst) {
      auto rows = images.read_rows<uint8_t>(static_cast<uint64_t>(row), static_cast<uint64_t>(count));
      std::copy(rows.begin(), rows.end(), dst);
    });
  }
  root.set_attr("status", "completed");
  std::cout << fmt::format("wrote {} images to {} in {:.2f} s ({:.2f} images/s, VQVAE decode and writing included)\n", N,
                           o.out, seconds, N / seconds);
  return 0;
}

}  // namespace

void register_generate_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Sample images with one VAR model (large-only or small-only)");
  auto* var = cmd->add_option("--var", o->var_checkpoint, "VAR checkpoint (.safetensors; see scripts/convert_checkpoint.py)");
  cmd->add_option("--vqvae", o->vqvae_checkpoint, "VQVAE checkpoint (.safetensors)");
  auto* rnd = cmd->add_option("--random-init", o->random_init,
                              "Random weights for a named VAR config instead of --var: var-d16/20/24/30, var-d36-s, tiny-d2/3/4");
  cmd->add_option("--random-vqvae", o->random_vqvae, "Random VQVAE config (vqvae-ch160, vqvae-ch32); default follows --random-init");
  cmd->add_option("--init-seed", o->init_seed, "Seed of the random initialisation")->capture_default_str();
  var->excludes(rnd);
  cmd->add_option("--classes", o->classes, "Classes: '0-999', '1,5,7', or a list with repeats")->capture_default_str();
  cmd->add_option("--images-per-class", o->images_per_class, "Images per class")->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Images per model call")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--cfg", o->cfg, "Classifier-free guidance scale (ramped as cfg*s/9)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Top-k: one value or one per scale (0 disables)")->delimiter(',')->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Top-p (0 disables)")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Temperature: one value or one per scale")->delimiter(',')->capture_default_str();
  cmd->add_flag("--more-smooth", o->more_smooth, "Gumbel-softmax code mixture (visualisation only)");
  cmd->add_option("--rng", o->rng, "per-image (tokens independent of batch/shard) or reference (the official sampler's stream)")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "fp32, fp16, bf16 or fp16-autocast (the official samplers' mode)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--out", o->out, "Output HDF5 file")->required();
  cmd->add_option("--png", o->png_dir, "Also write {class}_{index}.png into this folder");
  cmd->add_option("--npz", o->npz, "Also write an ADM-style .npz (arr_0: N x H x W x 3 uint8)");
  cmd->add_flag("--no-images", o->no_images, "Store tokens only, not the decoded images");
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  cmd->callback([o, &action] {
    if (o->var_checkpoint.empty() && o->random_init.empty()) throw CLI::ValidationError("--var or --random-init is required");
    if (!o->var_checkpoint.empty() && o->vqvae_checkpoint.empty() && o->random_vqvae.empty())
      throw CLI::ValidationError("--vqvae is required with --var (or --random-vqvae)");
    action = [o] { return run_generate(*o); };
  });
}

}  // namespace varbench
