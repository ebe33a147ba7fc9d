#include "harness/analysis/report.h"

#include "harness/analysis/rank_tests.h"
#include "harness/results/schema.h"

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace varbench {

ReportFormat parse_report_format(const std::string& name) {
  if (name == "md" || name == "markdown") return ReportFormat::kMarkdown;
  if (name == "wide") return ReportFormat::kWide;
  if (name == "csv") return ReportFormat::kCsv;
  if (name == "json") return ReportFormat::kJson;
  throw std::runtime_error(fmt::format("unknown report format '{}' (md, wide, csv, json)", name));
}

namespace {
double mb(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Milliseconds per image of every timed batch (batches of a run may differ in size: the last one).
std::vector<double> per_image_batch_ms(const RunRecord& r) {
  std::vector<double> out;
  for (size_t i = 0; i < r.batch_ms.size(); ++i)
    if (r.batch_images[i] > 0) out.push_back(r.batch_ms[i] / static_cast<double>(r.batch_images[i]));
  return out;
}
}  // namespace

std::vector<ReportRow> report_rows(const std::vector<RunRecord>& records, const std::string& baseline) {
  std::map<std::string, const RunRecord*> baselines;
  for (const auto& r : records)
    if (r.spec.engine_name == baseline && r.status == schema::kCompleted) baselines.emplace(comparison_context(r), &r);
  std::vector<ReportRow> rows;
  for (const auto& r : records) {
    ReportRow row;
    row.run_id = r.spec.id;
    row.engine = r.spec.engine_name;
    std::vector<std::string> params;
    for (const auto& [k, v] : r.spec.engine_params) params.push_back(k + "=" + param_to_string(v));
    row.params = fmt::format("{}", fmt::join(params, " "));
    row.status = r.status;
    row.error = r.error;
    row.device = r.spec.device;
    row.dtype = r.spec.dtype;
    row.batch_size = r.spec.batch_size;
    row.num_images = r.num_images;
    std::set<int64_t> reps(r.batch_repetition.begin(), r.batch_repetition.end());
    row.repetitions = static_cast<int64_t>(reps.size());
    row.driver_overhead = r.spec.engine_type == "null";
    if (r.status == schema::kCompleted && row.driver_overhead) {
      row.images_per_s = row.images_per_s_with_decode = row.latency_with_decode_p50_ms = std::nan("");
      row.latency_p50_ms = r.latency_percentile_ms(0.5, false);
      row.latency_p90_ms = r.latency_percentile_ms(0.9, false);
    } else if (r.status == schema::kCompleted) {
      row.images_per_s = r.median_images_per_s(false);
      row.images_per_s_with_decode = r.median_images_per_s(true);
      row.latency_p50_ms = r.latency_percentile_ms(0.5, false);
      row.latency_p90_ms = r.latency_percentile_ms(0.9, false);
      row.latency_with_decode_p50_ms = r.latency_percentile_ms(0.5, true);
      if (auto b = baselines.find(comparison_context(r)); b != baselines.end()) {
        row.speedup = row.images_per_s / b->second->median_images_per_s(false);
        row.speedup_with_decode = row.images_per_s_with_decode / b->second->median_images_per_s(true);
        // The interval: the HL shift of per-image batch times (baseline -> run) with its Moses interval; a
        // latency ratio 1 + change is a speed-up 1 / (1 + change), so the bounds swap.
        const auto run_ms = per_image_batch_ms(r), base_ms = per_image_batch_ms(*b->second);
        if (!run_ms.empty() && !base_ms.empty() && b->second != &r) {
          const auto shift = hodges_lehmann_change(base_ms, run_ms, 0.95);
          row.speedup_lower = 1 / (1 + shift.upper);
          row.speedup_upper = 1 / (1 + shift.lower);
        } else if (b->second == &r) {
          row.speedup_lower = row.speedup_upper = 1;
          row.is_baseline = true;
        }
        if (b->second->measurement != r.measurement && !r.mixed_hardware)
          row.hardware_note = fmt::format("speed-up against a baseline measured on other hardware ({} vs {})", r.measurement,
                                          b->second->measurement);
      }
      if (r.mixed_hardware) row.hardware_note = fmt::format("timings span hardware: measured on {}", r.measurement);
      row.memory_measured = r.memory_measured;
      row.peak_mb = mb(r.peak_bytes);
      row.weights_mb = mb(r.weights_bytes);
      row.kv_cache_mb = mb(r.kv_cache_bytes);
      row.kv_filled_mb = mb(r.kv_filled_bytes);
      row.activations_mb = mb(r.activations_bytes);
      auto quality = [&](const char* key) {
        const auto q = r.world_quality.find(key);
        return q == r.world_quality.end() ? std::nan("") : q->second;
      };
      row.world_fd = quality("fd");
      row.class_accuracy = quality("class_accuracy");
      row.world_precision = quality("precision");
      row.world_recall = quality("recall");
      row.world_fd_lower = quality("fd_lower");
      row.world_fd_upper = quality("fd_upper");
      row.class_accuracy_lower = quality("class_accuracy_lower");
      row.class_accuracy_upper = quality("class_accuracy_upper");
      row.world_precision_lower = quality("precision_lower");
      row.world_precision_upper = quality("precision_upper");
      row.world_recall_lower = quality("recall_lower");
      row.world_recall_upper = quality("recall_upper");
      auto versus = [&](const char* key) {
        const auto v = r.world_vs_baseline.find(key);
        return v == r.world_vs_baseline.end() ? std::nan("") : v->second;
      };
      row.fd_difference = versus("fd_difference");
      row.fd_difference_lower = versus("fd_difference_lower");
      row.fd_difference_upper = versus("fd_difference_upper");
      row.fd_detectable_difference = versus("fd_detectable_difference");
      row.class_accuracy_difference = versus("class_accuracy_difference");
      row.class_accuracy_difference_lower = versus("class_accuracy_difference_lower");
      row.class_accuracy_difference_upper = versus("class_accuracy_difference_upper");
      row.fd_permutation_p = versus("fd_permutation_p");
      row.mcnemar_p = versus("mcnemar_p");
      row.quality_verdict = r.world_verdict;
      row.quality_baseline_run = r.world_baseline_run;
      const auto drafted = r.per_scale.find("drafted_tokens"), accepted = r.per_scale.find("accepted_tokens");
      if (drafted != r.per_scale.end() && accepted != r.per_scale.end()) {
        double d = 0, a = 0;
        for (double v : drafted->second) d += v;
        for (double v : accepted->second) a += v;
        if (d > 0) row.acceptance = a / d;
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

namespace {
std::string num(double v, int digits = 2) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "-"; }
std::string ratio(double v) { return v > 0 ? fmt::format("{:.2f}x", v) : "-"; }

// "3359 [3102, 3650]": a value with its interval, digits by magnitude when `digits` < 0.
std::string with_interval(double v, double lo, double hi, int digits = -1, const char* suffix = "") {
  if (!std::isfinite(v)) return "-";
  if (digits < 0) {
    const double a = std::fabs(v);
    digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  }
  if (!std::isfinite(lo) || !std::isfinite(hi)) return fmt::format("{:.{}f}{}", v, digits, suffix);
  return fmt::format("{:.{}f}{} [{:.{}f}, {:.{}f}]", v, digits, suffix, lo, digits, hi, digits);
}
std::string signed_with_interval(double v, double lo, double hi) {
  if (!std::isfinite(v)) return "-";
  const double a = std::fabs(v);
  const int digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  if (!std::isfinite(lo) || !std::isfinite(hi)) return fmt::format("{:+.{}f}", v, digits);
  return fmt::format("{:+.{}f} [{:+.{}f}, {:+.{}f}]", v, digits, lo, digits, hi, digits);
}
std::string speedup_cell(const ReportRow& r) {
  if (r.is_baseline) return "1.00x";
  return r.speedup > 0 ? with_interval(r.speedup, r.speedup_lower, r.speedup_upper, 2, "x") : "-";
}
std::string status_of(const ReportRow& r) {
  const bool ok = r.status == schema::kCompleted;
  if (ok && r.driver_overhead) return "ok: the driver's own overhead per batch (no model runs)";
  return ok ? (r.hardware_note.empty() ? "ok" : "ok; " + r.hardware_note) : r.status + (r.error.empty() ? "" : ": " + r.error);
}
// The verdict against the baseline run in a few words.
std::string versus_cell(const ReportRow& r, bool compact) {
  if (!r.quality_verdict.empty()) {
    if (compact && r.quality_verdict.rfind("indistinguishable", 0) == 0) return "indistinguishable";
    return r.quality_verdict;
  }
  if (r.is_baseline && std::isfinite(r.world_fd)) return "(baseline)";
  return "-";
}

std::string markdown(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& cells) {
  std::ostringstream out;
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& row) {
    out << "|";
    for (size_t i = 0; i < row.size(); ++i) out << " " << row[i] << std::string(width[i] - row[i].size(), ' ') << " |";
    out << "\n";
  };
  line(header);
  out << "|";
  for (auto w : width) out << std::string(w + 2, '-') << "|";
  out << "\n";
  for (const auto& row : cells) line(row);
  return out.str();
}

std::string quality_notes(const std::vector<ReportRow>& rows) {
  std::ostringstream out;
  double detectable_min = INFINITY, detectable_max = -INFINITY;
  std::string baseline;
  for (const auto& r : rows)
    if (std::isfinite(r.fd_detectable_difference)) {
      detectable_min = std::min(detectable_min, r.fd_detectable_difference);
      detectable_max = std::max(detectable_max, r.fd_detectable_difference);
      baseline = r.quality_baseline_run;
    }
  out << "FD (world), class acc: the generated images in the toy world's feature space against its reference images (lower FD,\n"
         "higher accuracy are better), with 95% intervals: FD by a bootstrap over the generated images (reference fixed),\n"
         "accuracy by Wilson's interval. FD at n images is biased upwards by ~tr(Sigma)/n: compare FDs of equal n only.\n";
  if (!baseline.empty())
    out << fmt::format(
        "vs baseline: the run's FD against the baseline run's ({}) on the same image slots, a paired bootstrap of the difference:\n"
        "better or worse when its 95% interval excludes zero, otherwise indistinguishable. At this number of images an FD\n"
        "difference of {:.0f}{} would be detected with 80% power; smaller ones can hide in 'indistinguishable'.\n",
        baseline, detectable_min, detectable_max > 1.05 * detectable_min ? fmt::format("-{:.0f}", detectable_max) : "");
  return out.str();
}

std::string speed_notes(bool wide) {
  return std::string("img/s: transformer and sampling only (decode excluded, as the CoDe paper reports)") +
         (wide ? "; +dec: VQVAE decode included\n(as the released timing scripts). " : ".\n") +
         "Speed-ups against the baseline run with the same device, dtype, batch and sampling, with the 95% interval\n"
         "of the Hodges-Lehmann shift of per-image batch times (Moses; the batch is the unit, so few batches give wide\n"
         "intervals). Memory is a count of allocated bytes, not a sample: no interval. The null engine's row: the\n"
         "driver's own overhead per batch (no model runs).\n";
}

// The compact table: what a terminal shows.
std::string compact_table(const std::vector<ReportRow>& rows) {
  bool any_quality = false, any_note = false;
  for (const auto& r : rows) {
    any_quality |= std::isfinite(r.world_fd);
    any_note |= status_of(r) != "ok";
  }
  std::vector<std::string> header{"run", "img/s", "speed-up [95% CI]", "peak MB"};
  if (any_quality) header.insert(header.end(), {"FD (world) [95% CI]", "class acc [95% CI]", "vs baseline at 95%"});
  if (any_note) header.push_back("note");
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    const bool ok = r.status == schema::kCompleted;
    std::vector<std::string> row{r.run_id, ok && !r.driver_overhead ? num(r.images_per_s) : "-", ok ? speedup_cell(r) : "-",
                                 ok && r.memory_measured && !r.driver_overhead ? num(r.peak_mb, 0) : "-"};
    if (any_quality)
      row.insert(row.end(), {with_interval(r.world_fd, r.world_fd_lower, r.world_fd_upper),
                             with_interval(r.class_accuracy, r.class_accuracy_lower, r.class_accuracy_upper, 2), versus_cell(r, true)});
    if (any_note) {
      std::string note = status_of(r);
      if (ok && r.driver_overhead) note = fmt::format("overhead {} ms/batch (p50)", num(r.latency_p50_ms, 3));
      row.push_back(note == "ok" ? "" : note);
    }
    cells.push_back(std::move(row));
  }
  std::string out = markdown(header, cells) + speed_notes(false);
  if (any_quality) out += quality_notes(rows);
  out += "Every column, intervals and tests: --format wide (or csv, json).\n";
  return out;
}

// Every column: markdown (values with their intervals in one cell) or CSV (bounds in columns of their own).
std::string table(const std::vector<ReportRow>& rows, bool markdown_format) {
  std::vector<std::string> header{"run", "engine", "params", "batch", "images", "img/s", "img/s+dec", "p50 ms", "p90 ms",
                                  "p50 ms+dec", "speed-up", "speed-up+dec", "peak MB", "weights MB", "KV MB", "KV filled MB", "act MB"};
  // Quality and acceptance columns only where some run has them (scored toy-world runs, speculative runs).
  bool any_quality = false, any_acceptance = false;
  for (const auto& r : rows) {
    any_quality |= std::isfinite(r.world_fd);
    any_acceptance |= std::isfinite(r.acceptance);
  }
  if (any_quality)
    header.insert(header.end(), {"FD (world)", "class acc", "precision", "recall", "vs baseline", "FD diff", "detectable FD diff",
                                 "FD perm. p", "class acc diff", "McNemar p"});
  if (any_acceptance) header.push_back("accepted");
  header.push_back("status");
  if (!markdown_format) {
    header.insert(header.end(), {"speed-up lower", "speed-up upper"});
    if (any_quality)
      header.insert(header.end(), {"FD lower", "FD upper", "class acc lower", "class acc upper", "precision lower", "precision upper",
                                   "recall lower", "recall upper", "FD diff lower", "FD diff upper", "class acc diff lower",
                                   "class acc diff upper"});
  }
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    const bool ok = r.status == schema::kCompleted;
    std::vector<std::string> row;
    // Markdown cells carry their interval; CSV cells are bare numbers, the bounds in their own columns.
    auto cell = [&](double v, double lo, double hi, int digits, const char* suffix = "") {
      return markdown_format ? with_interval(v, lo, hi, digits, suffix) : num(v, digits < 0 ? 3 : digits);
    };
    if (ok && r.driver_overhead) {
      row = {r.run_id, r.engine, r.params, std::to_string(r.batch_size), std::to_string(r.num_images), "-", "-",
             num(r.latency_p50_ms, 3), num(r.latency_p90_ms, 3), "-", "-", "-", "-", "-", "-", "-", "-"};
    } else {
      const bool mem = ok && r.memory_measured;
      row = {r.run_id, r.engine, r.params, std::to_string(r.batch_size), std::to_string(r.num_images),
             ok ? num(r.images_per_s) : "-", ok ? num(r.images_per_s_with_decode) : "-", ok ? num(r.latency_p50_ms, 1) : "-",
             ok ? num(r.latency_p90_ms, 1) : "-", ok ? num(r.latency_with_decode_p50_ms, 1) : "-",
             markdown_format ? speedup_cell(r) : num(r.speedup, 4), ratio(r.speedup_with_decode),
             mem ? num(r.peak_mb, 1) : "-", ok ? num(r.weights_mb, 1) : "-", mem ? num(r.kv_cache_mb, 1) : "-",
             mem ? num(r.kv_filled_mb, 1) : "-", mem ? num(r.activations_mb, 1) : "-"};
    }
    if (any_quality)
      row.insert(row.end(), {cell(r.world_fd, r.world_fd_lower, r.world_fd_upper, 3), cell(r.class_accuracy, r.class_accuracy_lower, r.class_accuracy_upper, 3),
                             cell(r.world_precision, r.world_precision_lower, r.world_precision_upper, 3),
                             cell(r.world_recall, r.world_recall_lower, r.world_recall_upper, 3), versus_cell(r, false),
                             markdown_format ? signed_with_interval(r.fd_difference, r.fd_difference_lower, r.fd_difference_upper) : num(r.fd_difference, 3),
                             num(r.fd_detectable_difference, 1), num(r.fd_permutation_p, 3),
                             markdown_format ? signed_with_interval(r.class_accuracy_difference, r.class_accuracy_difference_lower,
                                                                    r.class_accuracy_difference_upper)
                                             : num(r.class_accuracy_difference, 4),
                             num(r.mcnemar_p, 3)});
    if (any_acceptance) row.push_back(num(r.acceptance, 3));
    row.push_back(status_of(r));
    if (!markdown_format) {
      row.insert(row.end(), {num(r.speedup_lower, 4), num(r.speedup_upper, 4)});
      if (any_quality)
        row.insert(row.end(), {num(r.world_fd_lower, 3), num(r.world_fd_upper, 3), num(r.class_accuracy_lower, 4),
                               num(r.class_accuracy_upper, 4), num(r.world_precision_lower, 4), num(r.world_precision_upper, 4),
                               num(r.world_recall_lower, 4), num(r.world_recall_upper, 4), num(r.fd_difference_lower, 3),
                               num(r.fd_difference_upper, 3), num(r.class_accuracy_difference_lower, 4),
                               num(r.class_accuracy_difference_upper, 4)});
    }
    cells.push_back(std::move(row));
  }
  std::ostringstream out;
  if (!markdown_format) {
    auto csv = [](const std::string& s) {
      if (s.find_first_of(",\"\n") == std::string::npos) return s;
      std::string q = "\"";
      for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      return q + "\"";
    };
    for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << csv(header[i]);
    out << "\n";
    for (const auto& row : cells) {
      for (size_t i = 0; i < row.size(); ++i) out << (i ? "," : "") << csv(row[i]);
      out << "\n";
    }
    return out.str();
  }
  out << markdown(header, cells) << speed_notes(true);
  if (any_quality) {
    out << quality_notes(rows)
        << "precision and recall (k = 3, with 95% intervals: Wilson; recall by the bootstrap with the sample's radii held).\n"
           "FD diff and class acc diff: run minus baseline with paired 95% intervals; detectable FD diff: the smallest difference\n"
           "detected with 80% power; FD perm. p: paired permutation test; McNemar p: exact test of the accuracy difference.\n";
  }
  if (any_acceptance) out << "accepted: share of drafted tokens the target model accepted, over all scales.\n";
  return out.str();
}

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Google Benchmark's JSON: one iteration entry per repetition (real_time = mean ms per batch of that
// repetition), plus mean/median/stddev aggregates, so tools/compare.py applies its U test.
std::string json(const std::vector<ReportRow>& rows, const std::vector<RunRecord>& records, const std::string& context_json) {
  nlohmann::json j;
  j["context"] = nlohmann::json::parse(context_json);
  j["benchmarks"] = nlohmann::json::array();
  for (size_t k = 0; k < records.size(); ++k) {
    const auto& r = records[k];
    if (r.status != schema::kCompleted || r.spec.engine_type == "null") continue;  // the overhead row is in varbench_rows
    std::map<int64_t, std::vector<double>> per_rep;
    for (size_t i = 0; i < r.batch_ms.size(); ++i) per_rep[r.batch_repetition[i]].push_back(r.batch_ms[i]);
    const auto ips = r.repetition_images_per_s(false);
    std::vector<double> means;
    size_t idx = 0;
    for (const auto& [rep, v] : per_rep) {
      double mean = 0;
      for (double x : v) mean += x;
      mean /= static_cast<double>(v.size());
      means.push_back(mean);
      j["benchmarks"].push_back({{"name", r.spec.id}, {"family_index", k}, {"per_family_instance_index", 0},
                                 {"run_name", r.spec.id}, {"run_type", "iteration"}, {"repetitions", per_rep.size()},
                                 {"repetition_index", rep}, {"threads", 1}, {"iterations", v.size()}, {"real_time", mean},
                                 {"cpu_time", mean}, {"time_unit", "ms"}, {"items_per_second", idx < ips.size() ? ips[idx] : 0.0}});
      ++idx;
    }
    const double mean_all = [&] { double s = 0; for (double x : means) s += x; return s / means.size(); }();
    double var = 0;
    for (double x : means) var += (x - mean_all) * (x - mean_all);
    const double stddev = means.size() > 1 ? std::sqrt(var / (means.size() - 1)) : 0.0;
    for (const auto& [name, value] : std::vector<std::pair<std::string, double>>{{"mean", mean_all}, {"median", median(means)}, {"stddev", stddev}})
      j["benchmarks"].push_back({{"name", r.spec.id + "_" + name}, {"family_index", k}, {"per_family_instance_index", 0},
                                 {"run_name", r.spec.id}, {"run_type", "aggregate"}, {"repetitions", per_rep.size()},
                                 {"threads", 1}, {"aggregate_name", name}, {"aggregate_unit", "time"}, {"iterations", per_rep.size()},
                                 {"real_time", value}, {"cpu_time", value}, {"time_unit", "ms"}});
  }
  j["varbench_rows"] = nlohmann::json::array();
  for (const auto& r : rows)
    j["varbench_rows"].push_back({{"run", r.run_id}, {"engine", r.engine}, {"params", r.params}, {"status", r.status}, {"hardware_note", r.hardware_note},
                                  {"error", r.error}, {"batch_size", r.batch_size}, {"images_per_s", r.images_per_s},
                                  {"images_per_s_with_decode", r.images_per_s_with_decode}, {"latency_p50_ms", r.latency_p50_ms},
                                  {"latency_p90_ms", r.latency_p90_ms}, {"speedup", r.speedup}, {"peak_mb", r.peak_mb},
                                  {"weights_mb", r.weights_mb}, {"kv_cache_mb", r.kv_cache_mb}, {"kv_filled_mb", r.kv_filled_mb},
                                  {"activations_mb", r.activations_mb},
                                  {"world_fd", json_number(r.world_fd)}, {"class_accuracy", json_number(r.class_accuracy)},
                                  {"world_precision", json_number(r.world_precision)}, {"world_recall", json_number(r.world_recall)},
                                  {"acceptance", json_number(r.acceptance)},
                                  {"speedup_lower", json_number(r.speedup_lower)}, {"speedup_upper", json_number(r.speedup_upper)},
                                  {"world_fd_lower", json_number(r.world_fd_lower)}, {"world_fd_upper", json_number(r.world_fd_upper)},
                                  {"class_accuracy_lower", json_number(r.class_accuracy_lower)},
                                  {"class_accuracy_upper", json_number(r.class_accuracy_upper)},
                                  {"world_precision_lower", json_number(r.world_precision_lower)},
                                  {"world_precision_upper", json_number(r.world_precision_upper)},
                                  {"world_recall_lower", json_number(r.world_recall_lower)},
                                  {"world_recall_upper", json_number(r.world_recall_upper)},
                                  {"quality_baseline_run", r.quality_baseline_run}, {"quality_verdict", r.quality_verdict},
                                  {"fd_difference", json_number(r.fd_difference)},
                                  {"fd_difference_lower", json_number(r.fd_difference_lower)},
                                  {"fd_difference_upper", json_number(r.fd_difference_upper)},
                                  {"fd_detectable_difference", json_number(r.fd_detectable_difference)},
                                  {"fd_permutation_p", json_number(r.fd_permutation_p)},
                                  {"class_accuracy_difference", json_number(r.class_accuracy_difference)},
                                  {"class_accuracy_difference_lower", json_number(r.class_accuracy_difference_lower)},
                                  {"class_accuracy_difference_upper", json_number(r.class_accuracy_difference_upper)},
                                  {"mcnemar_p", json_number(r.mcnemar_p)},
                                  {"driver_overhead", r.driver_overhead}});
  return j.dump(2) + "\n";
}
}  // namespace

std::string format_report(const std::vector<ReportRow>& rows, ReportFormat format, const std::vector<RunRecord>& records,
                          const std::string& context_json) {
  switch (format) {
    case ReportFormat::kMarkdown: return compact_table(rows);
    case ReportFormat::kWide: return table(rows, true);
    case ReportFormat::kCsv: return table(rows, false);
    case ReportFormat::kJson: return json(rows, records, context_json);
  }
  return "";
}

}  // namespace varbench
