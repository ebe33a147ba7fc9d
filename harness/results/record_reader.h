#pragma once
// The result file's reader: every run record (timing, memory, status, quality) of a result file, for
// reports, comparisons and scoring. Damaged files are refused here, naming file and dataset.
#include <string>
#include <vector>

#include "formats/hdf5.h"
#include "harness/results/run_record.h"

namespace varbench {

// Reads every run record of a result file (timing, memory, status), for reports and comparisons.
std::vector<RunRecord> read_run_records(const std::string& path);
// The runs the file's experiment (its root experiment_toml, the text of the sweep that wrote it last) asks
// for; the ids of any others it holds (runs of an earlier version of the experiment) go to `others`. A
// file without experiment text gives every run.
std::vector<RunRecord> read_requested_run_records(const std::string& path, std::vector<std::string>* others = nullptr);
// One run group's record (`path` names the file in errors).
RunRecord read_run_record(const std::string& path, const h5::Group& group, const std::string& name);

}  // namespace varbench
