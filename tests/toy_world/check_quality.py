#!/usr/bin/python3
"""Holds the trained toy world (models/toy-world) to its purpose, end to end through `varbench run`:

  1. the large model's FD and class accuracy beat the small model's by the stated margins;
  2. CoDe's quality lies between them and moves towards the large model as the draft steps N grow;
  3. the exact speculative engine samples what the large model samples: a two-sample permutation test
     (images as the units) on the world features (energy distance) and on per-scale token histograms
     does not reject at the stated level, while the same test tells the large model from the small one
     (the test has power);
  4. the neighbourhood (relaxed) speculative variant accepts more drafted tokens than the exact rule and
     pays in measured quality (its samples are told apart from the large model's, or its FD is worse).

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

# The margins (measured on the committed models, see the README's toy-world section): the claims hold with
# room at these sizes, and a model or engine change that breaks the world's ordering fails them.
FD_MARGIN = 1.0              # FD(small) - FD(large) at least this
ACCURACY_MARGIN = 0.10       # accuracy(large) - accuracy(small) at least this
MONOTONE_SLACK = 0.35        # CoDe's FD may rise with N by at most this between neighbouring N (sampling noise)
ALPHA = 1e-3                 # two-sample tests: reject at p < ALPHA (the exactness claims are tested at this level)
PERMUTATIONS = 999
ACCEPTANCE_MARGIN = 0.05     # neighbourhood acceptance - exact acceptance at least this


def load(path):
    runs = {}
    with h5py.File(path, "r") as f:
        for name, g in f["runs"].items():
            if g.attrs.get("status") not in (b"completed", "completed"):
                raise SystemExit(f"check_quality: run {name} did not complete: {g.attrs.get('error')}")
            m = g["metrics_world"]
            r = dict(fd=float(m.attrs["fd"]), accuracy=float(m.attrs["class_accuracy"]), features=m["features"][:],
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
    rng = np.random.default_rng(seed)
    n_x, n_y = len(x["features"]), len(y["features"])
    p_feat, e = permutation_p(energy_statistic(x["features"], y["features"]), n_x, n_y, rng)
    scales = range(0, 6)
    p_tok, g = permutation_p(mean_gap_statistic(token_histograms(x, vocab, scales), token_histograms(y, vocab, scales)), n_x, n_y, rng)
    return p_feat, e, p_tok, g


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
    claim(small["fd"] - large["fd"] >= FD_MARGIN, f"FD(small) - FD(large) = {small['fd'] - large['fd']:.3f} >= {FD_MARGIN}")
    claim(large["accuracy"] - small["accuracy"] >= ACCURACY_MARGIN,
          f"accuracy(large) - accuracy(small) = {large['accuracy'] - small['accuracy']:.3f} >= {ACCURACY_MARGIN}")

    code = sorted(((int(name.split("draft_steps=")[1].split("_")[0].split(",")[0]), r) for (e, name), r in runs.items() if e == "CoDe"),
                  key=lambda x: x[0])
    for n, r in code:
        print(f"CoDe N={n}: FD {r['fd']:.3f}, accuracy {r['accuracy']:.3f}")
        claim(large["fd"] - MONOTONE_SLACK <= r["fd"] <= small["fd"] + MONOTONE_SLACK,
              f"CoDe N={n}: FD {r['fd']:.3f} lies between FD(large) {large['fd']:.3f} and FD(small) {small['fd']:.3f} (slack {MONOTONE_SLACK})")
    for (n0, r0), (n1, r1) in zip(code, code[1:]):
        claim(r1["fd"] <= r0["fd"] + MONOTONE_SLACK, f"CoDe FD N={n0} -> N={n1}: {r0['fd']:.3f} -> {r1['fd']:.3f} (towards large, slack {MONOTONE_SLACK})")
    if len(code) > 1:
        claim(code[-1][1]["fd"] < code[0][1]["fd"], f"CoDe FD at the largest N ({code[-1][1]['fd']:.3f}) < at the smallest ({code[0][1]['fd']:.3f})")

    exact = by_engine(runs, "speculative")
    p_feat, e, p_tok, g = two_sample(exact, large, vocab, seed=1)
    print(f"speculative (exact) vs large: energy distance {e:.4f} p = {p_feat:.4f}; token histograms gap {g:.3g} p = {p_tok:.4f}")
    claim(p_feat >= ALPHA and p_tok >= ALPHA, f"exact speculative is distributed like the large model (p = {p_feat:.4f}, {p_tok:.4f} >= {ALPHA})")
    p_feat_s, e_s, p_tok_s, g_s = two_sample(small, large, vocab, seed=2)
    print(f"small vs large: energy distance {e_s:.4f} p = {p_feat_s:.4f}; token histograms gap {g_s:.3g} p = {p_tok_s:.4f}")
    claim(p_feat_s < ALPHA and p_tok_s < ALPHA, f"the two-sample test tells small from large (p = {p_feat_s:.4f}, {p_tok_s:.4f} < {ALPHA})")

    hood = by_engine(runs, "speculative (neighbourhood)")
    p_feat_n, e_n, p_tok_n, g_n = two_sample(hood, large, vocab, seed=3)
    print(f"speculative (neighbourhood) vs large: acceptance {hood['acceptance']:.3f} (exact {exact['acceptance']:.3f}); "
          f"FD {hood['fd']:.3f} (exact {exact['fd']:.3f}); energy distance {e_n:.4f} p = {p_feat_n:.4f}; token gap {g_n:.3g} p = {p_tok_n:.4f}")
    claim(hood["acceptance"] - exact["acceptance"] >= ACCEPTANCE_MARGIN,
          f"neighbourhood acceptance {hood['acceptance']:.3f} - exact {exact['acceptance']:.3f} >= {ACCEPTANCE_MARGIN}")
    claim(min(p_feat_n, p_tok_n) < ALPHA or hood["fd"] > exact["fd"],
          "the neighbourhood variant pays in quality: its samples differ from the large model's or its FD is worse than exact's")
    print(f"check_quality: {len(failures)} claim(s) failed")
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
