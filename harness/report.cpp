#include "harness/report.h"

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
  if (name == "csv") return ReportFormat::kCsv;
  if (name == "json") return ReportFormat::kJson;
  throw std::runtime_error(fmt::format("unknown report format '{}' (md, csv, json)", name));
}

namespace {
const std::set<std::string> kContextAxes{"device", "dtype", "batch_size", "cfg", "top_k", "top_p", "temperature"};

// What a run is compared on: everything but its engine and the engine's own parameters.
std::string context_key(const RunRecord& r) {
  std::string key = fmt::format("{}|{}|{}", r.spec.device, r.spec.dtype, r.spec.batch_size);
  for (const auto& [k, v] : r.spec.swept)
    if (kContextAxes.count(k)) key += "|" + k + "=" + v;
  return key;
}

double mb(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }
}  // namespace

std::vector<ReportRow> report_rows(const std::vector<RunRecord>& records, const std::string& baseline) {
  std::map<std::string, const RunRecord*> baselines;
  for (const auto& r : records)
    if (r.spec.engine_name == baseline && r.status == "completed") baselines.emplace(context_key(r), &r);
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
    if (r.status == "completed" && row.driver_overhead) {
      row.images_per_s = row.images_per_s_with_decode = row.latency_with_decode_p50_ms = std::nan("");
      row.latency_p50_ms = r.latency_percentile_ms(0.5, false);
      row.latency_p90_ms = r.latency_percentile_ms(0.9, false);
    } else if (r.status == "completed") {
      row.images_per_s = r.median_images_per_s(false);
      row.images_per_s_with_decode = r.median_images_per_s(true);
      row.latency_p50_ms = r.latency_percentile_ms(0.5, false);
      row.latency_p90_ms = r.latency_percentile_ms(0.9, false);
      row.latency_with_decode_p50_ms = r.latency_percentile_ms(0.5, true);
      if (auto b = baselines.find(context_key(r)); b != baselines.end()) {
        row.speedup = row.images_per_s / b->second->median_images_per_s(false);
        row.speedup_with_decode = row.images_per_s_with_decode / b->second->median_images_per_s(true);
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

std::string table(const std::vector<ReportRow>& rows, bool markdown) {
  std::vector<std::string> header{"run", "engine", "params", "batch", "images", "img/s", "img/s+dec", "p50 ms", "p90 ms",
                                  "p50 ms+dec", "speed-up", "speed-up+dec", "peak MB", "weights MB", "KV MB", "KV filled MB", "act MB"};
  // Quality and acceptance columns only where some run has them (scored toy-world runs, speculative runs).
  bool any_quality = false, any_acceptance = false;
  for (const auto& r : rows) {
    any_quality |= std::isfinite(r.world_fd);
    any_acceptance |= std::isfinite(r.acceptance);
  }
  if (any_quality) header.insert(header.end(), {"FD (world)", "class acc", "precision", "recall"});
  if (any_acceptance) header.push_back("accepted");
  header.push_back("status");
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    const bool ok = r.status == "completed";
    std::vector<std::string> row;
    std::string status;
    if (ok && r.driver_overhead) {
      row = {r.run_id, r.engine, r.params, std::to_string(r.batch_size), std::to_string(r.num_images), "-", "-",
             num(r.latency_p50_ms, 3), num(r.latency_p90_ms, 3), "-", "-", "-", "-", "-", "-", "-", "-"};
      status = "ok: the driver's own overhead per batch (no model runs)";
    } else {
      const bool mem = ok && r.memory_measured;
      row = {r.run_id, r.engine, r.params, std::to_string(r.batch_size), std::to_string(r.num_images),
             ok ? num(r.images_per_s) : "-", ok ? num(r.images_per_s_with_decode) : "-", ok ? num(r.latency_p50_ms, 1) : "-",
             ok ? num(r.latency_p90_ms, 1) : "-", ok ? num(r.latency_with_decode_p50_ms, 1) : "-", ratio(r.speedup),
             ratio(r.speedup_with_decode), mem ? num(r.peak_mb, 1) : "-", ok ? num(r.weights_mb, 1) : "-",
             mem ? num(r.kv_cache_mb, 1) : "-", mem ? num(r.kv_filled_mb, 1) : "-", mem ? num(r.activations_mb, 1) : "-"};
      status = ok ? (r.hardware_note.empty() ? "ok" : "ok; " + r.hardware_note) : r.status + (r.error.empty() ? "" : ": " + r.error);
    }
    if (any_quality)
      row.insert(row.end(), {num(r.world_fd, 3), num(r.class_accuracy, 3), num(r.world_precision, 3), num(r.world_recall, 3)});
    if (any_acceptance) row.push_back(num(r.acceptance, 3));
    row.push_back(status);
    cells.push_back(std::move(row));
  }
  std::ostringstream out;
  if (!markdown) {
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
  out << "img/s: transformer and sampling only (decode excluded, as the CoDe paper reports); +dec: VQVAE decode included "
         "(as the released timing scripts). Latency per batch; speed-ups against the baseline run with the same device, "
         "dtype, batch and sampling.\n";
  if (any_quality)
    out << "FD (world), class acc, precision, recall: the generated images in the toy world's feature space against its "
           "reference images (lower FD, higher accuracy are better; `varbench score --features world`).\n";
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
    if (r.status != "completed" || r.spec.engine_type == "null") continue;  // the overhead row is in varbench_rows
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
                                  {"driver_overhead", r.driver_overhead}});
  return j.dump(2) + "\n";
}
}  // namespace

std::string format_report(const std::vector<ReportRow>& rows, ReportFormat format, const std::vector<RunRecord>& records,
                          const std::string& context_json) {
  switch (format) {
    case ReportFormat::kMarkdown: return table(rows, true);
    case ReportFormat::kCsv: return table(rows, false);
    case ReportFormat::kJson: return json(rows, records, context_json);
  }
  return "";
}

}  // namespace varbench
