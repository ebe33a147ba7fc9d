#pragma once
// Interleaved A/B runs of two varbench executables on one machine (`varbench compare --ab`): both run the
// same experiment file, alternating in rounds (A B, B A, A B, ...), so that both see the same minutes of
// a shared machine's drifting speed. A stored baseline measured on another VM or another hour differs by
// 10-25% for no reason of the code's; alternation removes that from the comparison.
#include <ostream>
#include <string>
#include <vector>

namespace varbench {

struct AbPlan {
  std::string base_binary, candidate_binary;  // executables (or scripts) that take `run EXP --out F --fresh --quiet`
  std::string experiment;
  std::string out_dir;  // round files <out_dir>/{base,candidate}-round-<r>.h5 and their logs
  int rounds = 8;
};

struct AbFiles {
  std::vector<std::string> base, candidate;  // one result file per round
};

// Runs the rounds. Each round's result file and log are removed before its side runs, so a round only
// ever judges what that side wrote then. A side that exits with an error other than failed runs (exit
// code 1 with a result file: the file records them, and the comparison reports them) stops everything
// with a one-line error naming the side, executable, round and log.
AbFiles run_ab_rounds(const AbPlan& plan, std::ostream& progress);

}  // namespace varbench
