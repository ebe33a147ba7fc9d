// The regression gate: Mann-Whitney U against scipy, the Hodges-Lehmann change and its interval, `varbench
// compare` on synthetic repetitions, and the A/B mode on two real executables, one slowed on purpose.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "formats/hdf5.h"
#include "harness/analysis/ab_rounds.h"
#include "harness/analysis/compare.h"
#include "harness/results/result_file.h"
#include "harness/analysis/rank_tests.h"
#include "metrics/uncertainty.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

TEST(MannWhitney, MatchesScipy) {
  // scipy.stats.mannwhitneyu(a, b, alternative='two-sided') with scipy 1.10 (Debian 12).
  EXPECT_NEAR(mann_whitney_u({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}).p_value, 0.007936507936507936, 1e-12);
  EXPECT_NEAR(mann_whitney_u({1, 2.5, 3, 4.5, 5}, {2, 3.5, 4, 5.5, 6}).p_value, 0.42063492063492064, 1e-12);
  EXPECT_NEAR(mann_whitney_u({1, 2, 3, 4, 5}, {2.5, 6, 7, 8, 9, 10, 11, 12, 13, 14}).p_value, 0.004662004662004662, 1e-12);
  // Ties, and both samples larger than 8: the normal approximation.
  const auto tied = mann_whitney_u({1, 2, 2, 4, 5, 6, 7, 8, 9}, {3, 3, 5, 6, 7, 8, 9, 10, 11, 12});
  EXPECT_FALSE(tied.exact);
  EXPECT_DOUBLE_EQ(tied.u, 24.5);
  EXPECT_NEAR(tied.p_value, 0.1014154472690683, 1e-12);
  EXPECT_NEAR(mann_whitney_u({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5}).p_value,
              0.7239320396139757, 1e-12);
}

TEST(HodgesLehmann, IsTheMedianPairwiseRatioWithAMosesInterval) {
  // Pairwise ratios of {2,4,6} over {1,2,3}: 2/3, 1, 4/3, 2, 2, 2, 3, 4, 6; median 2 (+100%). With 3 and 3
  // values no rank excludes anything at 95%: the interval is the range [2/3, 6].
  const auto e = hodges_lehmann_change({1, 2, 3}, {2, 4, 6}, 0.95);
  EXPECT_DOUBLE_EQ(e.change, 1.0);
  EXPECT_NEAR(e.lower, 2.0 / 3 - 1, 1e-12);
  EXPECT_NEAR(e.upper, 5.0, 1e-12);
  // Every value 10% larger: the estimate is exactly +10% (the log ratios of a sample with itself are symmetric).
  std::vector<double> a, b;
  for (int i = 10; i < 30; ++i) {
    a.push_back(i);
    b.push_back(1.1 * i);
  }
  EXPECT_NEAR(hodges_lehmann_change(a, b, 0.95).change, 0.1, 1e-12);
  EXPECT_NEAR(metrics::normal_quantile(0.975), 1.959963984540054, 1e-9);
}

TEST(HodgesLehmann, TheIntervalCoversTheTrueChangeAtItsConfidence) {
  // 2000 pairs of 12-value samples with 8% noise and a true +5% shift: a 90% interval should cover +5% in
  // about 90% of them (binomial sd 0.7%: 87%..93% is a 4-sd band).
  std::mt19937 gen(7);
  std::normal_distribution<double> noise(0, 0.08);
  int covered = 0;
  const int trials = 2000;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> a, b;
    for (int i = 0; i < 12; ++i) {
      a.push_back(100 * std::exp(noise(gen)));
      b.push_back(105 * std::exp(noise(gen)));
    }
    const auto e = hodges_lehmann_change(a, b, 0.90);
    covered += e.lower <= 0.05 && 0.05 <= e.upper;
  }
  EXPECT_NEAR(static_cast<double>(covered) / trials, 0.90, 0.03) << covered << " of " << trials;
}

TEST(WilcoxonSignedRank, MatchesScipy) {
  // scipy.stats.wilcoxon(d) with scipy 1.10 (Debian 12): exact below 51 pairs without zeros or ties; with
  // ties (|-0.05| = |0.05|, 2 and 2) mode='approx', the normal approximation with the tie correction.
  EXPECT_NEAR(wilcoxon_signed_rank({0.1, -0.02, 0.05, 0.07, 0.03, 0.12, -0.01, 0.08}).p_value, 0.0390625, 1e-12);
  EXPECT_NEAR(wilcoxon_signed_rank({0.1, -0.02, 0.05, 0.07, 0.03, 0.12, -0.01, 0.08, 0.2, 0.04, -0.051, 0.06}).p_value,
              0.01611328125, 1e-12);
  EXPECT_NEAR(wilcoxon_signed_rank({0.1, -0.02, 0.05, 0.07, 0.03, 0.12, -0.01, 0.08, 0.2, 0.04, -0.05, 0.06}).p_value,
              0.01668677011401322, 1e-12);
  EXPECT_NEAR(wilcoxon_signed_rank({1, 2, 2, 3, -1, 4, 5, -6, 7, 8}).p_value, 0.06619257972219345, 1e-12);
  std::vector<double> large;
  for (int i = 1; i <= 60; ++i) large.push_back(i % 4 == 2 ? -i : i);
  const auto approx = wilcoxon_signed_rank(large);
  EXPECT_FALSE(approx.exact);
  EXPECT_NEAR(approx.p_value, 0.0006190095773213842, 1e-12);
  EXPECT_DOUBLE_EQ(wilcoxon_signed_rank({0, 0}).p_value, 1.0);
}

TEST(PairedHodgesLehmann, TheIntervalCoversTheTrueChangeAtItsConfidence) {
  // 2000 sets of 12 paired log ratios with 8% noise around a true +5%: the exact 90% interval (its achieved
  // confidence for 12 pairs is 90.8%) covers +5% in about that share (binomial sd 0.65%).
  std::mt19937 gen(11);
  std::normal_distribution<double> noise(0, 0.08);
  int covered = 0;
  const int trials = 2000;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> d;
    for (int i = 0; i < 12; ++i) d.push_back(std::log(1.05) + noise(gen));
    const auto e = paired_hodges_lehmann_change(d, 0.90);
    covered += e.lower <= 0.05 && 0.05 <= e.upper;
  }
  EXPECT_NEAR(static_cast<double>(covered) / trials, 0.908, 0.025) << covered << " of " << trials;
  // Walsh averages of {0, log 2}: 0, log(2)/2, log 2; median log(2)/2; with two pairs the interval is the range.
  const auto e = paired_hodges_lehmann_change({0.0, std::log(2.0)}, 0.95);
  EXPECT_NEAR(e.change, std::sqrt(2.0) - 1, 1e-12);
  EXPECT_NEAR(e.lower, 0, 1e-12);
  EXPECT_NEAR(e.upper, 1, 1e-12);
}

TEST(AbOrder, EachPairOfRoundsPutsEachSideFirstOnceAndTheSeedDecidesWhich) {
  const auto a = ab_base_first_order(12, 42), again = ab_base_first_order(12, 42);
  EXPECT_EQ(a, again);
  ASSERT_EQ(a.size(), 12u);
  for (size_t r = 0; r < a.size(); r += 2) EXPECT_NE(a[r], a[r + 1]) << "rounds " << r + 1 << " and " << r + 2;
  // Over seeds the pairs are not always in one order (the fixed A B, B A, ... pattern of before).
  int base_first_in_first_round = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) base_first_in_first_round += ab_base_first_order(2, seed)[0];
  EXPECT_GT(base_first_in_first_round, 70);
  EXPECT_LT(base_first_in_first_round, 130);
  EXPECT_EQ(ab_base_first_order(7, 1).size(), 7u);
}

// A result file with one completed run per (id, per-repetition latencies).
void write_results(const std::string& path, const std::map<std::string, std::vector<double>>& runs) {
  h5::File f(path, h5::File::Mode::kCreate);
  auto root = f.root();
  root.set_attr("schema_version", int64_t{1});
  Provenance p;
  int64_t index = 0;
  for (const auto& [id, latencies] : runs) {
    RunRecord r;
    r.spec.id = id;
    r.spec.index = index++;
    r.spec.engine_name = id;
    r.num_scales = 10;
    for (size_t rep = 0; rep < latencies.size(); ++rep)
      for (int b = 0; b < 2; ++b) {  // two batches per repetition, mean = the given latency
        r.batch_repetition.push_back(static_cast<int64_t>(rep));
        r.batch_images.push_back(4);
        r.batch_ms.push_back(latencies[rep] + (b ? 1.0 : -1.0));
        r.batch_with_decode_ms.push_back(latencies[rep] + 50);
        r.scale_ms.push_back(std::vector<double>(10, latencies[rep] / 10));
      }
    write_run_record(root.create_group("runs/" + run_group_name(id)), r, p);
  }
}

std::vector<double> noisy(double center, double relative_sd, int n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> d(center, center * relative_sd);
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(d(gen));
  return v;
}

TEST(CompareCli, ATenPercentSlowdownFailsAndNoiseAlonePasses) {
  const auto dir = testing::temp_dir("compare");
  // 9 repetitions (Google Benchmark's recommended minimum for its U test), 2% noise.
  write_results(dir + "/base.h5", {{"var", noisy(100, 0.02, 9, 1)}, {"code", noisy(60, 0.02, 9, 2)}});
  write_results(dir + "/noise.h5", {{"var", noisy(100, 0.02, 9, 3)}, {"code", noisy(60, 0.02, 9, 4)}});
  write_results(dir + "/slow.h5", {{"var", noisy(100, 0.02, 9, 5)}, {"code", noisy(66, 0.02, 9, 6)}});
  const auto ok = testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/noise.h5 --tolerance 5%");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("0 regressions"), std::string::npos) << ok.output;
  const auto slow = testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/slow.h5 --tolerance 5%");
  EXPECT_EQ(slow.exit_code, 1) << slow.output;
  EXPECT_NE(slow.output.find("| code |"), std::string::npos);
  EXPECT_NE(slow.output.find("SLOWER"), std::string::npos) << slow.output;
  EXPECT_NE(slow.output.find("1 regression "), std::string::npos) << slow.output;
  // A 10% slowdown inside a 15% tolerance passes.
  EXPECT_EQ(testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/slow.h5 --tolerance 15%").exit_code, 0);
  // A run missing from the current file is reported, not failed.
  write_results(dir + "/partial.h5", {{"var", noisy(100, 0.02, 9, 7)}});
  const auto partial = testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/partial.h5");
  EXPECT_EQ(partial.exit_code, 0) << partial.output;
  EXPECT_NE(partial.output.find("only in baseline"), std::string::npos) << partial.output;
  EXPECT_NE(testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/slow.h5 --tolerance five").output.find(
                "--tolerance 'five'"),
            std::string::npos);
}

TEST(CompareCli, TheVerdictTellsNoChangeFromNotEnoughEvidence) {
  const auto dir = testing::temp_dir("compare-verdict");
  // 30 repetitions of 1% noise: the interval is narrow and within 5% -> "no change". 3 repetitions of 10%
  // noise: the interval reaches past 5% -> "inconclusive". Neither fails.
  write_results(dir + "/a.h5", {{"steady", noisy(100, 0.01, 30, 1)}, {"noisy", noisy(100, 0.10, 3, 2)}});
  write_results(dir + "/b.h5", {{"steady", noisy(100, 0.01, 30, 3)}, {"noisy", noisy(100, 0.10, 3, 4)}});
  const auto r = testing::run_varbench("compare " + dir + "/a.h5 " + dir + "/b.h5");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| steady |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("] | " ), std::string::npos) << r.output;
  const auto line = [&](const std::string& run) {
    const auto at = r.output.find("| " + run + " |");
    return r.output.substr(at, r.output.find('\n', at) - at);
  };
  EXPECT_NE(line("steady").find("| no change |"), std::string::npos) << line("steady");
  EXPECT_NE(line("noisy").find("| inconclusive |"), std::string::npos) << line("noisy");
}

// A completed run record with one batch per repetition, of the given latencies.
RunRecord record(const std::string& id, const std::vector<double>& latencies) {
  RunRecord r;
  r.spec.id = id;
  for (size_t i = 0; i < latencies.size(); ++i) {
    r.batch_repetition.push_back(static_cast<int64_t>(i));
    r.batch_images.push_back(1);
    r.batch_ms.push_back(latencies[i]);
    r.batch_with_decode_ms.push_back(latencies[i]);
  }
  return r;
}

// Measured on the 2-core VM: an A/B comparison of one build with itself, 12 rounds x 3 repetitions of the
// `small` run, in round order.
const std::vector<double> kMeasuredBase{213.0, 216.9, 211.8, 185.6, 196.2, 190.3, 181.8, 182.9, 192.8, 178.4, 192.5, 183.2,
                                        190.8, 187.1, 184.9, 191.8, 195.8, 190.9, 208.7, 212.5, 186.2, 210.6, 251.7, 215.3,
                                        191.9, 202.8, 184.4, 187.5, 190.9, 198.5, 210.4, 183.6, 194.8, 211.9, 226.2, 186.2};
const std::vector<double> kMeasuredSame{229.6, 218.1, 215.3, 184.5, 183.9, 193.5, 223.0, 235.0, 215.8, 198.7, 191.8, 198.1,
                                        211.5, 218.6, 217.8, 193.5, 184.1, 185.5, 221.0, 220.6, 290.6, 184.8, 185.5, 186.0,
                                        190.8, 232.2, 212.6, 191.5, 243.5, 186.4, 237.2, 191.1, 209.5, 230.6, 263.6, 294.5};

TEST(CompareRuns, TheVerdictWeighsTheHodgesLehmannShiftNotTheRatioOfMedians) {
  // Measured on the 2-core VM: an A/B comparison of one build with itself (12 rounds x 3 repetitions, the
  // `small` run), where bursts of interference hit the candidate more often. The medians differ by +10.3%,
  // the U test says p = 0.0106, but the shift between the samples (HL) is +4.7%: not a regression at 5%.
  const auto& base = kMeasuredBase;
  const auto& same = kMeasuredSame;
  const auto c = compare_runs({record("small", base)}, {record("small", same)}, 0.05, 0.05, false);
  ASSERT_EQ(c.runs.size(), 1u);
  EXPECT_NEAR(c.runs[0].change, 0.1033, 1e-4);
  EXPECT_NEAR(c.runs[0].shift.change, 0.0467, 1e-4);
  EXPECT_LT(c.runs[0].p_value, 0.05);
  EXPECT_FALSE(c.runs[0].regression);
  EXPECT_EQ(c.runs[0].verdict, "inconclusive");
  // The same samples 10% slower are a regression.
  std::vector<double> slower;
  for (double v : same) slower.push_back(v * 1.10);
  const auto s = compare_runs({record("small", base)}, {record("small", slower)}, 0.05, 0.05, false);
  EXPECT_TRUE(s.runs[0].regression);
  EXPECT_EQ(s.runs[0].verdict, "SLOWER");
}

TEST(CompareRounds, TheRoundIsTheUnitNotTheRepetition) {
  // The same measured sample as above, in its 12 rounds of 3 repetitions: repetitions within a round are
  // correlated (intra-round correlation ~0.4), so the round is the unit. Per round the median of its three,
  // the log ratio candidate/base, the signed-rank test over 12 rounds: p = 0.0771 (scipy.stats.wilcoxon), where
  // the U test over 36 pooled repetitions said 0.0106; HL +6.2% [-1.4%, +13.6%].
  const auto& base = kMeasuredBase;
  const auto& same = kMeasuredSame;
  auto rounds_of = [](const std::vector<double>& v, double factor) {
    std::vector<std::vector<RunRecord>> rounds;
    for (size_t r = 0; r < 12; ++r) rounds.push_back({record("small", {factor * v[3 * r], factor * v[3 * r + 1], factor * v[3 * r + 2]})});
    return rounds;
  };
  const auto c = compare_rounds(rounds_of(base, 1), rounds_of(same, 1), 0.05, 0.05, false);
  ASSERT_EQ(c.runs.size(), 1u);
  EXPECT_TRUE(c.by_rounds);
  EXPECT_EQ(c.runs[0].rounds, 12);
  EXPECT_EQ(c.runs[0].current_repetitions, 36);
  EXPECT_NEAR(c.runs[0].p_value, 0.0771484375, 1e-12);
  EXPECT_NEAR(c.runs[0].shift.change, 0.06171, 1e-4);
  EXPECT_NEAR(c.runs[0].shift.lower, -0.01381, 1e-4);
  EXPECT_NEAR(c.runs[0].shift.upper, 0.13627, 1e-4);
  EXPECT_FALSE(c.runs[0].regression);
  EXPECT_EQ(c.runs[0].verdict, "inconclusive");
  // 15% slower in every round: every log ratio shifts by log 1.15, all but one positive: a regression.
  const auto s = compare_rounds(rounds_of(base, 1), rounds_of(same, 1.15), 0.05, 0.05, false);
  EXPECT_TRUE(s.runs[0].regression) << format_comparison(s, 0.05, 0.05);
  EXPECT_EQ(s.runs[0].verdict, "SLOWER");
  EXPECT_NE(format_comparison(s, 0.05, 0.05).find("signed-rank p"), std::string::npos);
  // A round that failed on the candidate side fails the run, naming the round.
  auto cand = rounds_of(same, 1);
  cand[4][0].status = "failed";
  cand[4][0].error = "out of memory";
  const auto f = compare_rounds(rounds_of(base, 1), cand, 0.05, 0.05, false);
  EXPECT_TRUE(f.runs[0].regression);
  EXPECT_NE(f.runs[0].note.find("round 5: out of memory"), std::string::npos) << f.runs[0].note;
  EXPECT_DOUBLE_EQ(smallest_signed_rank_p(6), 0.03125);
}

TEST(CompareRuns, RecordsOfOneRunArePooledAcrossRounds) {
  const std::vector<RunRecord> base{record("x", {10, 11, 12}), record("x", {10, 11, 12})};
  const std::vector<RunRecord> cur{record("x", {20, 21}), record("x", {22, 23}), record("x", {24})};
  const auto c = compare_runs(base, cur, 0.05, 0.05, false);
  ASSERT_EQ(c.runs.size(), 1u);
  EXPECT_EQ(c.runs[0].baseline_repetitions, 6);
  EXPECT_EQ(c.runs[0].current_repetitions, 5);
  EXPECT_DOUBLE_EQ(c.runs[0].current_ms, 22);
  EXPECT_TRUE(c.runs[0].regression);
  // A failed round fails the run.
  auto failed = record("x", {});
  failed.status = "failed";
  failed.error = "out of memory";
  const auto f = compare_runs(base, {record("x", {10, 11}), failed}, 0.05, 0.05, false);
  EXPECT_TRUE(f.runs[0].regression);
  EXPECT_NE(f.runs[0].note.find("out of memory"), std::string::npos);
}

TEST(CompareAb, TwoBuildsRunAlternatelyAndAnInjectedSlowdownFails) {
  const auto dir = testing::temp_dir("compare-ab");
  // The candidate: the same executable with VARBENCH_TEST_SLOWDOWN=1 (every timed batch twice as long).
  const std::string slow = dir + "/slow-varbench";
  {
    std::ofstream w(slow);
    w << "#!/bin/sh\nVARBENCH_TEST_SLOWDOWN=1 exec " << VARBENCH_BINARY << " \"$@\"\n";
  }
  std::filesystem::permissions(slow, std::filesystem::perms::owner_all);
  const std::string exp = dir + "/ab.toml";
  {
    std::ofstream w(exp);
    w << testing::experiment_toml(
        "name = \"ab\"\ndevice = \"cpu\"\nimages = 1\nbatch_size = 1\nwarmup = 1\nrepetitions = 5\nthreads = 1\nstore_images = false\n",
        {{"m", "tiny-d2"}}, testing::single_engine("tiny", "m"));
  }
  const auto r = testing::run_varbench("compare --ab " + std::string(VARBENCH_BINARY) + " " + slow + " " + exp +
                                       " --rounds 6 --order-seed 5 --out-dir " + dir + "/ab");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("6 rounds paired (base first in 3, candidate first in 3; order seed 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("SLOWER"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 regression "), std::string::npos) << r.output;
  // The sides ran in the order drawn from the seed, which ab-order.txt records; all twelve files are there.
  const auto order = ab_base_first_order(6, 5);
  const auto progress_at = [&](const std::string& s) { return r.output.find(s); };
  std::ifstream recorded(dir + "/ab/ab-order.txt");
  std::string line;
  std::getline(recorded, line);
  EXPECT_EQ(line, "order_seed 5");
  for (int round = 0; round < 6; ++round) {
    const auto base_at = progress_at(fmt::format("round {}/6: base", round + 1)),
               candidate_at = progress_at(fmt::format("round {}/6: candidate", round + 1));
    EXPECT_EQ(base_at < candidate_at, order[round]) << "round " << round + 1 << "\n" << r.output;
    std::getline(recorded, line);
    EXPECT_EQ(line, fmt::format("round {} {}", round + 1, order[round] ? "base candidate" : "candidate base"));
    for (const char* side : {"base", "candidate"})
      EXPECT_TRUE(std::filesystem::exists(fmt::format("{}/ab/{}-round-{}.h5", dir, side, round))) << side << round;
  }
  // Too few rounds for the signed-rank test to reach alpha: refused before any work.
  const auto few = testing::run_varbench("compare --ab " + std::string(VARBENCH_BINARY) + " " + slow + " " + exp +
                                         " --rounds 4 --out-dir " + dir + "/ab-few");
  EXPECT_EQ(few.exit_code, 1) << few.output;
  EXPECT_NE(few.output.find("--rounds 4: the signed-rank test over 4 rounds cannot reach p < 0.05 (its smallest p is 0.125); "
                            "use at least 6"),
            std::string::npos)
      << few.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/ab-few"));
  // The candidate's files say they were slowed.
  h5::File f(dir + "/ab/candidate-round-0.h5", h5::File::Mode::kReadOnly);
  EXPECT_TRUE(f.root().has_attr("test_slowdown"));
  // A base that fails before any work (it exits 1 and writes nothing) in a folder holding an earlier
  // comparison's round files: the comparison fails naming side, round and log, instead of judging the
  // earlier invocation's file.
  const std::string failing = dir + "/failing-varbench";
  {
    std::ofstream w(failing);
    w << "#!/bin/sh\necho 'varbench: unknown parameter lookahead' >&2\nexit 1\n";
  }
  std::filesystem::permissions(failing, std::filesystem::perms::owner_all);
  const auto stale = testing::run_varbench("compare --ab " + failing + " " + slow + " " + exp + " --rounds 6 --order-seed 5 --out-dir " +
                                           dir + "/ab");
  EXPECT_EQ(stale.exit_code, 1) << stale.output;
  // The first side of round 1 under seed 5 runs first: the failing base either fails there or right after.
  EXPECT_NE(stale.output.find("base side (" + failing + ") exited with 1 in round 1 of 6 without writing a result file; its output is in " +
                              dir + "/ab/base-round-0.log"),
            std::string::npos)
      << stale.output;
  EXPECT_EQ(stale.output.find("SLOWER"), std::string::npos) << stale.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/ab/base-round-0.h5"));
  // An executable that does not exist is named.
  const auto missing = testing::run_varbench("compare --ab " + dir + "/nothing " + slow + " " + exp + " --out-dir " + dir + "/ab2");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("base executable '" + dir + "/nothing': not found or not executable"), std::string::npos)
      << missing.output;
}

TEST(CompareAb, AnInvalidTestSlowdownIsRefusedNamingTheVariable) {
  const auto r = testing::run_command("VARBENCH_TEST_SLOWDOWN=fast " + std::string(VARBENCH_BINARY) + " run " +
                                      std::string(VARBENCH_SOURCE_DIR) + "/experiments/quickstart.toml --dry-run");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("VARBENCH_TEST_SLOWDOWN='fast': expected a fraction in [0, 10]"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace varbench
