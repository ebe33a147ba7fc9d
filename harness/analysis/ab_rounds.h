#pragma once
// Interleaved A/B runs of two varbench executables on one machine (`varbench compare --ab`): both run the
// same experiment file once per round, back to back, so that both see the same minutes of a shared
// machine's drifting speed. A stored baseline measured on another VM or another hour differs by 10-25% for
// no reason of the code's; pairing within a round removes that from the comparison. Which side goes first
// is drawn per pair of rounds from a recorded seed and balanced inside the pair (A B then B A, or B A then
// A B): each side goes first equally often, and interference that repeats with a period of two runs cannot
// line up with one side the way a fixed A B, B A, A B, ... pattern lets it.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace varbench {

struct AbPlan {
  std::string base_binary, candidate_binary;  // executables (or scripts) that take `run EXP --out F --fresh --quiet`
  std::string experiment;
  std::string out_dir;  // round files <out_dir>/{base,candidate}-round-<r>.h5 and their logs
  int rounds = 8;
  uint64_t order_seed = 0;  // draws the order of the sides; recorded in <out_dir>/ab-order.txt
};

struct AbFiles {
  std::vector<std::string> base, candidate;  // one result file per round
  std::vector<bool> base_first;              // per round
};

// The order of the sides per round: for each pair of rounds one draw from `seed` decides whether the pair
// is (base first, candidate first) or the reverse; an odd last round gets its own draw. Deterministic in the
// seed (a 64-bit Mersenne Twister, the same on every platform).
std::vector<bool> ab_base_first_order(int rounds, uint64_t seed);

// Runs the rounds. Each round's result file and log are removed before its side runs, so a round only
// ever judges what that side wrote then. A side that exits with an error other than failed runs (exit
// code 1 with a result file: the file records them, and the comparison reports them) stops everything
// with a one-line error naming the side, executable, round and log.
AbFiles run_ab_rounds(const AbPlan& plan, std::ostream& progress);

}  // namespace varbench
