// varbench generate: sample images with one VAR model and write labels, seeds, tokens and images. It is
// an experiment of one `single` engine run by the driver: one generation path for every command.
#include <filesystem>
#include <iostream>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engines/model/architecture.h"
#include "engines/model/loading.h"
#include "engines/model/precision.h"
#include "formats/hdf5.h"
#include "formats/image_files.h"
#include "harness/cli/commands.h"
#include "harness/driver.h"
#include "harness/experiment/experiment.h"
#include "harness/experiment/experiment_check.h"
#include "harness/experiment/image_plan.h"
#include "harness/platform/device.h"
#include "harness/results/schema.h"

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

// A TOML string (JSON's escapes are TOML's).
std::string toml_string(const std::string& s) { return nlohmann::json(s).dump(); }

// The shortest text that reads back as the same double, always with a decimal point or exponent (a TOML float).
std::string toml_number(double v) {
  auto text = fmt::format("{}", v);
  return text.find_first_of(".eEn") == std::string::npos ? text + ".0" : text;
}
std::string toml_number(int64_t v) { return fmt::format("{}", v); }

template <typename T>
std::string toml_per_scale(const std::vector<T>& values) {  // one value, or one per scale ([[...]]: not a sweep)
  std::vector<std::string> texts;
  for (const auto& v : values) texts.push_back(toml_number(v));
  return texts.size() == 1 ? texts[0] : fmt::format("[[{}]]", fmt::join(texts, ", "));
}

// The experiment `generate` runs: one `single` engine named "generate" over the one model, no warm-up,
// one pass over the images. Its text goes into the result file like any experiment's, so that `report`,
// `merge` and `run` read the file as they read any other.
std::string generate_experiment_toml(const GenerateOptions& o) {
  auto model = [](const std::string& checkpoint, const std::string& config, uint64_t init_seed) {
    return checkpoint.empty() ? fmt::format("config = {}\ninit_seed = {}\n", toml_string(config), init_seed)
                              : fmt::format("checkpoint = {}\n", toml_string(checkpoint));
  };
  const auto vqvae_config =
      o.random_vqvae.empty() && o.vqvae_checkpoint.empty() ? default_vqvae_for(o.random_init) : o.random_vqvae;
  return fmt::format(
      "# varbench generate\n"
      "[experiment]\nname = \"generate\"\nout = {}\ndevice = {}\ndtype = {}\nthreads = {}\nclasses = {}\nimages_per_class = {}\n"
      "batch_size = {}\nwarmup = 0\nrepetitions = 1\nseed = {}\nrng = {}\nstore_images = {}\n\n"
      "[sampling]\ncfg = {}\ntop_k = {}\ntop_p = {}\ntemperature = {}\nmore_smooth = {}\n\n"
      "[models.var]\n{}\n[vqvae]\n{}\n[[engines]]\nname = \"generate\"\ntype = \"single\"\nmodel = \"var\"\n",
      toml_string(o.out), toml_string(o.device), toml_string(o.dtype), o.threads, toml_string(o.classes), o.images_per_class,
      o.batch_size, o.seed, toml_string(o.rng), o.no_images ? "false" : "true", toml_number(o.cfg), toml_per_scale(o.top_k),
      toml_number(o.top_p),
      toml_per_scale(o.temperature), o.more_smooth ? "true" : "false", model(o.var_checkpoint, o.random_init, o.init_seed),
      model(o.vqvae_checkpoint, vqvae_config, o.init_seed + 1));
}

int run_generate(const GenerateOptions& o) {
  // What the experiment's checks cannot say in generate's own terms (flags, not keys of a file), first.
  const auto device = device::resolve(o.device);
  const auto precision = parse_precision(o.dtype);
  if (device.is_cpu() && !cpu_supports(precision))
    throw std::runtime_error(fmt::format("--dtype {}: CPU runs are fp32 or bf16-autocast (the other low precisions are for CUDA)", o.dtype));
  const auto rng_mode = parse_rng_mode(o.rng);
  if (std::filesystem::exists(o.out) && !o.overwrite)
    throw std::runtime_error(fmt::format("{}: exists; pass --overwrite to replace it", o.out));
  if (o.no_images && !o.npz.empty()) throw std::runtime_error("--npz needs the images: drop --no-images");
  if (o.no_images && !o.png_dir.empty()) throw std::runtime_error("--png needs the images: drop --no-images");
  if (o.batch_size < 1) throw std::runtime_error(fmt::format("--batch-size {}: must be >= 1", o.batch_size));
  if (o.images_per_class < 1) throw std::runtime_error(fmt::format("--images-per-class {}: must be >= 1", o.images_per_class));
  for (const auto& [flag, seed] : {std::pair{"--seed", o.seed}, std::pair{"--init-seed", o.init_seed}})
    if (seed > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw std::runtime_error(fmt::format("{} {}: at most {}", flag, seed, std::numeric_limits<int64_t>::max()));
  const ModelSource var_source{o.var_checkpoint, o.random_init, o.init_seed};
  const auto arch = var_architecture(var_source);
  if (!o.vqvae_checkpoint.empty()) vqvae_architecture({o.vqvae_checkpoint, "", 0});  // "PATH: cannot open ..." in generate's terms
  parse_class_list(o.classes, arch.num_classes);
  SamplingSettings sampling;
  sampling.cfg = o.cfg;
  sampling.top_k = o.top_k;
  sampling.top_p = o.top_p;
  sampling.temperature = o.temperature;
  sampling.more_smooth = o.more_smooth;
  sampling.validate(arch.schedule.num_scales());

  // From here on the same path as `varbench run`: the experiment's checks, the driver, the result file.
  const auto x = parse_experiment(generate_experiment_toml(o), "varbench generate");
  check_experiment(x, CheckOptions{});
  const auto outcome = [&] {
    ResultFile results(o.out, "varbench generate", x.toml_text);  // holds the file's lock from here on
    // --overwrite: a new file, and no partial run of an earlier attempt resumed into it.
    std::filesystem::remove(o.out);
    std::filesystem::remove_all(o.out + ".partial");
    return run_experiment(x, DriverOptions{}, results);
  }();
  if (outcome.stop_signal != 0) {
    std::cerr << fmt::format("varbench generate: stopped by {}\n", outcome.stop_message);
    return 128 + outcome.stop_signal;
  }
  const auto& record = outcome.records.at(0);
  if (record.status != schema::kCompleted) return 1;  // the driver said why, in one line

  // generate's own description of the run, beside the driver's (readers of earlier files find it).
  const int64_t N = record.num_images;
  int64_t px = 0;
  {
    h5::File file(o.out, h5::File::Mode::kReadWrite);
    auto run = file.root().group(std::string(schema::kRuns) + "/generate");
    run.set_attr("var_model", var_source.describe());
    run.set_attr("vqvae_model", x.vqvae.source(false).describe());
    run.set_attr("var_depth", arch.depth);
    run.set_attr("seed", static_cast<int64_t>(o.seed));
    run.set_attr("rng_mode", rng_mode_name(rng_mode));
    run.set_attr("cfg", sampling.cfg);
    run.set_attr("top_k", sampling.top_k);
    run.set_attr("top_p", sampling.top_p);
    run.set_attr("temperature", sampling.temperature);
    run.set_attr("more_smooth", static_cast<int64_t>(sampling.more_smooth));
    run.set_attr(schema::kDtype, precision_name(precision));
    file.flush();
    if (!o.no_images) {
      auto images = run.dataset(schema::kImages);
      px = static_cast<int64_t>(images.dims()[1]);
      if (!o.png_dir.empty()) {
        std::filesystem::create_directories(o.png_dir);
        const auto labels = run.dataset(schema::kLabels).read<int64_t>();
        const auto in_class = run.dataset(schema::kIndexInClass).read<int64_t>();
        for (int64_t i = 0; i < N; ++i) {
          const auto pixels = images.read_rows<uint8_t>(static_cast<uint64_t>(i), 1);
          io::write_png(fmt::format("{}/{}_{}.png", o.png_dir, labels[i], in_class[i]), pixels.data(), px, px);
        }
      }
      if (!o.npz.empty())
        io::write_npz_streamed(o.npz, "arr_0", "|u1", {N, px, px, 3}, [&](int64_t row, int64_t count, uint8_t* dst) {
          auto rows = images.read_rows<uint8_t>(static_cast<uint64_t>(row), static_cast<uint64_t>(count));
          std::copy(rows.begin(), rows.end(), dst);
        });
    }
  }
  double ms = 0;
  for (double b : record.batch_with_decode_ms) ms += b;
  std::cout << fmt::format("wrote {} images to {}: {:.2f} s timed ({:.2f} images/s, VQVAE decode included; `varbench report {}` "
                           "for the full record)\n",
                           N, o.out, ms / 1000, N / (ms / 1000), o.out);
  return 0;
}

}  // namespace

void register_generate_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Sample images with one VAR model (large-only or small-only)");
  auto* var = cmd->add_option("--var", o->var_checkpoint, "VAR checkpoint (.safetensors; see scripts/convert_checkpoint.py)");
  auto* vqvae = cmd->add_option("--vqvae", o->vqvae_checkpoint, "VQVAE checkpoint (.safetensors)");
  auto* rnd = cmd->add_option("--random-init", o->random_init,
                              "Random weights for a named VAR config instead of --var: var-d16/20/24/30, var-d36-s, tiny-d2/3/4");
  cmd->add_option("--random-vqvae", o->random_vqvae, "Random VQVAE config (vqvae-ch160, vqvae-ch32); default follows --random-init")
      ->excludes(vqvae);
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
