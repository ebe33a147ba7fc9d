#pragma once
// The result file of an experiment (docs/hdf5-schema.md), written run by run so that a killed sweep
// loses at most the run in flight and never leaves an unreadable file:
//  - a run streams its samples into its own file under <out>.partial/ while it runs;
//  - when it ends, its group is copied into the result file in one short step during which SIGINT,
//    SIGTERM and SIGHUP are held back (only SIGKILL inside that window could hurt the file), and the
//    result file is closed again; the partial file is removed.
// Running the same experiment again skips the runs already completed with the same identity
// (harness/experiment/run_identity.h). One process at a time writes a result file (`<out>.lock`, formats/file_lock.h).
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "engines/model/architecture.h"
#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/platform/provenance.h"
#include "harness/results/run_record.h"
#include "harness/results/sample_writer.h"

namespace varbench {

// A run's partial file. It can be resumed: `checkpoint` saves the timed batches done so far with their
// measurements (group run/resume: identity_json, timed_batches; and the timing datasets), and a later
// attempt at the same run with the same identity reopens the file and goes on after them (its samples
// stay where they were written; later rows are written again, to the same values).
class RunWriter {
 public:
  // `resume`: reopen `path` as written by an earlier attempt (begin_run decides); otherwise create it.
  RunWriter(std::string path, const RunSpec& spec, int64_t num_images, const ScaleSchedule& schedule, int64_t image_px,
            bool store_images, bool resume = false);
  SampleWriter& samples() { return *samples_; }
  const std::string& path() const { return path_; }
  h5::Group group() const { return file_->root().group(schema::kPartialRun); }
  // Timed batches an earlier attempt saved (0 for a new run); their measurements are in group().
  int64_t resumed_timed_batches() const { return resumed_timed_batches_; }
  // Saves `record`'s measurements so far as the first `timed_batches` timed batches, with how this
  // process measures (provenance.h measurement_of), and flushes the file.
  void checkpoint(const RunRecord& record, int64_t timed_batches, const std::string& measurement);
  void close();  // flushes and closes the partial file

 private:
  std::string path_;
  std::unique_ptr<h5::File> file_;
  std::unique_ptr<SampleWriter> samples_;
  int64_t resumed_timed_batches_ = 0;
};

// A run already in the result file: its status and the identity it was made with ("" when the varbench
// that made it recorded none).
struct StoredRun {
  std::string status, identity_json;
};

class ResultFile {
 public:
  // Takes the file's lock for the object's lifetime (throws naming the holder when another process has it).
  ResultFile(std::string path, std::string experiment_path, std::string experiment_text);
  const std::string& path() const { return path_; }
  // Runs already in the file by run id (none if it does not exist yet).
  std::map<std::string, StoredRun> stored_runs() const;
  // The run's partial file: an earlier attempt's with the same `identity_json` and saved batches is
  // resumed (RunWriter::resumed_timed_batches), anything else there is replaced.
  std::unique_ptr<RunWriter> begin_run(const RunSpec& spec, int64_t num_images, const ScaleSchedule& schedule, int64_t image_px,
                                       bool store_images, const std::string& identity_json) const;
  // Before a sweep's first run, when the file exists: removes the runs in `remove` (those --fresh
  // replaces that the experiment no longer asks for) and records this experiment's text and this
  // process's provenance at the root, so that readers of the file (merge, report, compare) plan from
  // the experiment that wrote it last.
  void prepare_sweep(const std::vector<std::string>& remove, const Provenance& provenance) const;
  // Writes the record into the run's partial file and moves it into the result file.
  void commit(RunWriter& writer, const RunRecord& record, const Provenance& provenance) const;
  // A run that failed before or during generation: status, error, settings, nothing else.
  void record_failure(const RunRecord& record, const Provenance& provenance) const;

 private:
  void move_into_result(const std::string& partial, const std::string& run_id, const Provenance& provenance) const;
  void write_root(const h5::Group& root, const Provenance& provenance) const;
  // The staging folder goes once no run is in it (it holds only the run in flight).
  void remove_partial_dir_if_empty() const;
  std::string path_, experiment_path_, experiment_text_;
  std::unique_ptr<FileLock> lock_;
};

// The group name of a run (HDF5 names cannot hold '/').
std::string run_group_name(const std::string& run_id);

// Writes the record's attributes and datasets (timing/, memory/, engine series) into `group`.
void write_run_record(const h5::Group& group, const RunRecord& record, const Provenance& provenance);
// Just the measurements (timing/, memory/, engine_stats/), replacing any already in `group`.
void write_measurements(const h5::Group& group, const RunRecord& record);

}  // namespace varbench
