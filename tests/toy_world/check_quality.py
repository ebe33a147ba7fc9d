#!/usr/bin/python3
"""Holds the trained toy world (models/toy-world) to its purpose, end to end through `varbench run`:

  1. the large model's class accuracy beats the small model's by the stated margin (and significantly, by
     a permutation test), and its FD is lower;
  2. CoDe's FD lies between them and moves towards the large model as the draft steps N grow;
  3. the exact speculative engine samples what the large model samples: two-sample permutation tests
     (images as the units) on the world features (energy distance), on per-scale token histograms and on
     the class-accuracy indicator do not reject at ALPHA_EXACT, while the class-accuracy test tells the small
     model from the large one at ALPHA_POWER (the test has power against a sampler of the wrong model);
  4. the neighbourhood (relaxed) speculative variant accepts more drafted tokens than the exact rule and
     pays in measured quality (a class accuracy ACCURACY_COST below the large model's, told apart at
     ALPHA_TRADE).

    /usr/bin/python3 tests/toy_world/check_quality.py --varbench build/varbench --out DIR

It runs quality.toml (large, small, CoDe at several N; seed 1) and quality-speculative.toml (the exact and
the neighbourhood speculative engines; seed 2, so that they share no random numbers with the large run).

Every claim prints its numbers; the exit status is the number of failed claims. Needs numpy and h5py.
"""
import argparse
import os
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The margins. Measured on the committed models (512 images per run, cfg 3; quality.toml seed 1,
# quality-speculative.toml seed 2), Debian lane (libtorch 1.13): class accuracy large 0.309, small 0.207 (permutation
# p 0.001); FD large 3021, small 3734; CoDe N = 2, 4, 6, 8: FD 3628, 3513, 3594, 3099. FD in this feature
# space is noisy at 512 images (the exact speculative engine, distributed like the large model, scored
# 3673 against the large run's 3021), so the FD claims are orderings with slack, and the accuracy claims
# carry the weight. Each margin is about half of what was measured, so that another lane's last-bit
# differences (which resample the images) do not flip a claim.
ACCURACY_MARGIN = 0.05       # accuracy(large) - accuracy(small) at least this
SLACK = 0.35                 # CoDe may leave [FD(large), FD(small)], or rise between neighbouring N, by this share of the gap
PERMUTATIONS = 1999
ALPHA_EXACT = 1e-3           # exactness: each two-sample test must not reject at this level
ALPHA_POWER = 1e-2           # power: a different distribution must be told apart at this level
ACCEPTANCE_MARGIN = 0.05     # neighbourhood acceptance - exact acceptance at least this
ACCURACY_COST = 0.03         # neighbourhood (k = 128): accuracy(large) - accuracy(neighbourhood) at least this
ALPHA_TRADE = 0.05           # ... and one of the three tests tells it from the large model at this level
# Measured: neighbourhood k = 128 accepted 0.956 of drafted tokens (exact 0.547), class accuracy 0.244 vs the
# large model's 0.309, FD 3548; tests against the large model p = 0.036 (features), 0.024 (tokens), 0.030
# (accuracy): the quality cost is visible at 512 images, but only at the 5% level.


def load(path):
    runs = {}
    with h5py.File(path, "r") as f:
        for name, g in f["runs"].items():
            if g.attrs.get("status") not in (b"completed", "completed"):
                raise SystemExit(f"check_quality: run {name} did not complete: {g.attrs.get('error')}")
            m = g["metrics_world"]
            correct = (m["logits"][:].argmax(1) == g["labels"][:]).astype(np.float64)[:, None]
            r = dict(fd=float(m.attrs["fd"]), accuracy=float(m.attrs["class_accuracy"]), features=m["features"][:], correct=correct,
                     tokens=[g["tokens"][f"scale_{s}"][:] for s in range(len(g["tokens"]))])
            if "engine_stats" in g and "drafted_tokens" in g["engine_stats"]:
                r["acceptance"] = float(g["engine_stats"]["accepted_tokens"][:].sum() / g["engine_stats"]["drafted_tokens"][:].sum())
            runs[g.attrs["engine"].decode() if isinstance(g.attrs["engine"], bytes) else g.attrs["engine"], name] = r
    return runs


def by_engine(runs, engine):
    found = [r for (e, _), r in runs.items() if e == engine]
    assert len(found) == 1, f"{engine}: {len(found)} runs"
    return found[0]


def permutation_p(stat, n_a, n_b, rng):
    """p-value of stat(idx_a, idx_b) over the pooled rows under exchangeability (images are the units)."""
    pooled = np.arange(n_a + n_b)
    observed = stat(pooled[:n_a], pooled[n_a:])
    count = 0
    for _ in range(PERMUTATIONS):
        idx = rng.permutation(pooled)
        count += stat(idx[:n_a], idx[n_a:]) >= observed
    return (count + 1) / (PERMUTATIONS + 1), observed


def energy_statistic(a, b):
    """Energy distance 2 E|a - b| - E|a - a'| - E|b - b'| as a function of index sets into the pooled rows."""
    pooled = np.concatenate([a, b]).astype(np.float64)
    sq = (pooled ** 2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0))
    return lambda i, j: 2 * dist[np.ix_(i, j)].mean() - dist[np.ix_(i, i)].mean() - dist[np.ix_(j, j)].mean()


def mean_gap_statistic(a, b):
    """Squared distance between the two sets' mean rows, over index sets into the pooled rows."""
    pooled = np.concatenate([a, b])
    return lambda i, j: float(((pooled[i].mean(0) - pooled[j].mean(0)) ** 2).sum())


def token_histograms(run, vocab, scales):
    """Per image, the normalised token histogram of each of `scales`, concatenated: [N, len(scales) * vocab]."""
    rows = []
    for s in scales:
        t = run["tokens"][s]
        h = np.zeros((t.shape[0], vocab))
        np.add.at(h, (np.repeat(np.arange(t.shape[0]), t.shape[1]), t.reshape(-1)), 1.0 / t.shape[1])
        rows.append(h)
    return np.concatenate(rows, 1)


def two_sample(x, y, vocab, seed):
    """p-values (and statistics) of three permutation tests of x against y: energy distance of the world
    features, the gap between the mean per-scale token histograms (scales 0-5), the gap in class accuracy."""
    rng = np.random.default_rng(seed)
    n_x, n_y = len(x["features"]), len(y["features"])
    scales = range(0, 6)
    tests = {"features": energy_statistic(x["features"], y["features"]),
             "tokens": mean_gap_statistic(token_histograms(x, vocab, scales), token_histograms(y, vocab, scales)),
             "accuracy": mean_gap_statistic(x["correct"], y["correct"])}
    return {name: permutation_p(stat, n_x, n_y, rng) for name, stat in tests.items()}


def describe(p):
    return ", ".join(f"{name} p = {pv:.4f} (statistic {st:.4g})" for name, (pv, st) in p.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--varbench", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reuse", action="store_true", help="check existing result files (no generation)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    runs = {}
    for name in ("quality", "quality-speculative"):
        result = os.path.join(args.out, name + ".h5")
        if not args.reuse:
            if os.path.exists(result):
                os.remove(result)
            cmd = [args.varbench, "run", os.path.join(HERE, name + ".toml"), "--out", result, "--quiet"]
            print("$ " + " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stdout, stderr=sys.stderr)
        runs.update(load(result))
    vocab = int(max(t.max() for r in runs.values() for t in r["tokens"])) + 1
    failures = []

    def claim(ok, text):
        print(("PASS " if ok else "FAIL ") + text, flush=True)
        if not ok:
            failures.append(text)

    large, small = by_engine(runs, "large"), by_engine(runs, "small")
    print(f"large: FD {large['fd']:.3f}, accuracy {large['accuracy']:.3f}; small: FD {small['fd']:.3f}, accuracy {small['accuracy']:.3f}")
    power = two_sample(small, large, vocab, seed=2)
    print(f"small vs large: {describe(power)}")
    claim(large["accuracy"] - small["accuracy"] >= ACCURACY_MARGIN and power["accuracy"][0] < ALPHA_POWER,
          f"accuracy(large) - accuracy(small) = {large['accuracy'] - small['accuracy']:.3f} >= {ACCURACY_MARGIN}, "
          f"told apart at p = {power['accuracy'][0]:.4f} < {ALPHA_POWER}")
    claim(small["fd"] > large["fd"], f"FD(small) {small['fd']:.1f} > FD(large) {large['fd']:.1f}")

    code = sorted(((int(name.split("draft_steps=")[1].split(",")[0]), r) for (e, name), r in runs.items() if e == "CoDe"),
                  key=lambda x: x[0])
    slack = SLACK * (small["fd"] - large["fd"])
    for n, r in code:
        print(f"CoDe N={n}: FD {r['fd']:.1f}, accuracy {r['accuracy']:.3f}")
        claim(large["fd"] - slack <= r["fd"] <= small["fd"] + slack,
              f"CoDe N={n}: FD {r['fd']:.1f} lies between FD(large) {large['fd']:.1f} and FD(small) {small['fd']:.1f} (slack {slack:.1f})")
    for (n0, r0), (n1, r1) in zip(code, code[1:]):
        claim(r1["fd"] <= r0["fd"] + slack, f"CoDe FD N={n0} -> N={n1}: {r0['fd']:.1f} -> {r1['fd']:.1f} (towards large, slack {slack:.1f})")
    claim(len(code) > 1 and code[-1][1]["fd"] < code[0][1]["fd"],
          f"CoDe FD at the largest N ({code[-1][1]['fd']:.1f}) < at the smallest N ({code[0][1]['fd']:.1f})")

    exact = by_engine(runs, "speculative")
    p = two_sample(exact, large, vocab, seed=1)
    print(f"speculative (exact) vs large: accuracy {exact['accuracy']:.3f} vs {large['accuracy']:.3f}, FD {exact['fd']:.1f}; {describe(p)}")
    claim(all(pv >= ALPHA_EXACT for pv, _ in p.values()),
          f"exact speculative is distributed like the large model (no test rejects at {ALPHA_EXACT})")

    hood = by_engine(runs, "speculative (neighbourhood)")
    p_n = two_sample(hood, large, vocab, seed=3)
    print(f"speculative (neighbourhood) vs large: acceptance {hood['acceptance']:.3f} (exact {exact['acceptance']:.3f}), "
          f"accuracy {hood['accuracy']:.3f}, FD {hood['fd']:.1f}; {describe(p_n)}")
    claim(hood["acceptance"] - exact["acceptance"] >= ACCEPTANCE_MARGIN,
          f"neighbourhood acceptance {hood['acceptance']:.3f} - exact {exact['acceptance']:.3f} >= {ACCEPTANCE_MARGIN}")
    min_p = min(pv for pv, _ in p_n.values())
    claim(large["accuracy"] - hood["accuracy"] >= ACCURACY_COST and min_p < ALPHA_TRADE,
          f"the neighbourhood variant pays in quality: accuracy {hood['accuracy']:.3f}, {large['accuracy'] - hood['accuracy']:.3f} below "
          f"the large model's (>= {ACCURACY_COST}), told apart at p = {min_p:.4f} < {ALPHA_TRADE}")
    print(f"check_quality: {len(failures)} claim(s) failed")
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
