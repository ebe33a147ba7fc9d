#!/usr/bin/python3
"""Figures and tables of varbench result files, with the CoDe paper's numbers beside the measured ones.

    /usr/bin/python3 scripts/figures.py RESULTS.h5 [MORE.h5 ...] [--out DIR]

Draws (PNG and PDF), from whatever the files hold:
  fig1_speedup_vs_fid   speed-up against FID per configuration (Fig. 1); for runs of the trained toy world
                        scored in its feature space (and none with an FID): fig1_speedup_vs_fd_world
  fig5b_batch_scaling   images/s and speed-up against batch size (Fig. 5b)
  fig5c_scale_latency   per-scale latency as stacked bars (Fig. 5c); phases that are not one scale (set-up,
                        CoDe's prefix pass, speculative draft/verify rounds, decode excluded) stacked
                        above them under their own names
  fig5c_phase_memory    the memory pass phase by phase: allocator peak + weights, and the KV cache alive
  table3_memory         the memory split: weights / KV cache / activations (Table 3)
  speculative_acceptance  accepted share of drafted tokens per scale
and writes table1.md and table6.md (the layouts of Tables 1 and 6) plus figures.json, a manifest of what
was drawn (files and panel titles). A figure whose data is absent is skipped with a note. Where a run
matches a paper row (by engine and model depth), the published number is drawn beside the measured one.
Debian packages: python3-h5py, python3-matplotlib, python3-numpy.
"""
import argparse
import json
import math
from statistics import NormalDist
import os
import re
import sys
import tomllib

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# reference-spec.md section 6 (batch 64, one NVIDIA L20, fp16, VQ decoder excluded).
PAPER_TABLE1 = {
    "VAR-d30": dict(latency_s=3.62, images_per_s=17.71, peak_mb=39228, fid=1.95, inception_score=301, precision=0.81, recall=0.59),
    "VAR-d24": dict(latency_s=2.07, images_per_s=30.92, peak_mb=25093, fid=2.11, inception_score=311, precision=0.82, recall=0.59),
    "VAR-d20": dict(latency_s=1.29, images_per_s=49.62, peak_mb=17814, fid=2.61, inception_score=301, precision=0.83, recall=0.56),
    "CoDe N=9": dict(latency_s=2.97, images_per_s=21.54, peak_mb=28803, fid=1.94, inception_score=296, precision=0.80, recall=0.61),
    "CoDe N=8": dict(latency_s=2.11, images_per_s=30.33, peak_mb=21019, fid=1.98, inception_score=302, precision=0.81, recall=0.60),
    "CoDe N=7": dict(latency_s=1.60, images_per_s=40.00, peak_mb=19943, fid=2.11, inception_score=303, precision=0.82, recall=0.59),
    "CoDe N=6": dict(latency_s=1.27, images_per_s=50.39, peak_mb=19943, fid=2.27, inception_score=297, precision=0.82, recall=0.58),
}
PAPER_TABLE6_FID = {9: 1.99, 8: 2.10, 7: 2.25, 6: 2.42, 5: 2.56, 4: 2.75, 3: 2.99, 2: 3.19, 1: 3.39}
PAPER_TABLE3_MB = {  # batch 64: running activations, KV cache, weights
    "VAR-d30": dict(activations=2420, kv_cache=28707, weights=8089),
    "CoDe N=6": dict(activations=2195, kv_cache=8160, weights=9275),
}
PAPER_FIG5_SPEEDUP = {1: 1.6, 64: 2.9}  # CoDe N=6 over VAR-d30


def attr(group, name, default=None):
    if name not in group.attrs:
        return default
    v = group.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


def load_runs(paths):
    runs = []
    for path in paths:
        with h5py.File(path, "r") as f:
            if "runs" not in f:
                continue
            baseline = None
            if "experiment_toml" in f.attrs:
                try:
                    baseline = tomllib.loads(attr(f, "experiment_toml")).get("experiment", {}).get("baseline")
                except tomllib.TOMLDecodeError:
                    pass
            for name, g in f["runs"].items():
                r = dict(file=path, group=name, id=attr(g, "run_id", name), engine=attr(g, "engine", name),
                         type=attr(g, "engine_type", ""), status=attr(g, "status", "running"),
                         batch=int(attr(g, "batch_size", 0)), device=attr(g, "device", ""), dtype=attr(g, "dtype", ""),
                         index=int(attr(g, "run_index", 0)), baseline=baseline)
                r["params"] = {k[6:]: attr(g, k) for k in g.attrs if k.startswith("param_")}
                r["device_name"] = attr(g, "device_name", "")
                try:
                    r["identity"] = json.loads(attr(g, "identity_json", "{}"))
                except json.JSONDecodeError:
                    r["identity"] = {}
                r["models"] = {k[6:]: attr(g, k) for k in g.attrs if k.startswith("model_")}
                if r["status"] == "completed" and "timing" in g:
                    t = g["timing"]
                    r["batch_ms"] = t["batch_ms"][:]
                    r["batch_with_decode_ms"] = t["batch_with_decode_ms"][:]
                    r["batch_images"] = t["batch_images"][:]
                    r["batch_repetition"] = t["batch_repetition"][:]
                    r["scale_ms"] = t["scale_ms"][:]
                    if "phase_kind" in t:
                        kinds = attr(t, "phase_kinds", "").split(",")
                        r["phases"] = dict(batch=t["phase_batch"][:], kind=[kinds[k] for k in t["phase_kind"][:]],
                                           first=t["phase_first_scale"][:], ms=t["phase_ms"][:])
                if "memory" in g:
                    m = g["memory"]
                    r["memory"] = {k: int(v) for k, v in m.attrs.items() if not isinstance(v, (str, bytes))}
                    if "phase_kind" in m:
                        kinds = attr(m, "phase_kinds", "").split(",")
                        r["memory_phases"] = [dict(kind=kinds[k], first=int(f), last=int(l), allocated=int(a), kv=int(kv), kv_filled=int(kf))
                                              for k, f, l, a, kv, kf in zip(m["phase_kind"][:], m["phase_first_scale"][:],
                                                                            m["phase_last_scale"][:], m["phase_allocated_bytes"][:],
                                                                            m["phase_kv_allocated_bytes"][:], m["phase_kv_filled_bytes"][:])]
                if "metrics" in g:
                    r["metrics"] = {k: attr(g["metrics"], k) for k in g["metrics"].attrs}
                if "metrics_world" in g:
                    r["world"] = {k: attr(g["metrics_world"], k) for k in g["metrics_world"].attrs}
                    if "vs_baseline" in g["metrics_world"]:
                        v = g["metrics_world"]["vs_baseline"]
                        r["world_vs_baseline"] = {k: attr(v, k) for k in v.attrs}
                if "engine_stats" in g:
                    r["engine_stats"] = {k: g["engine_stats"][k][:] for k in g["engine_stats"]}
                runs.append(r)
    runs.sort(key=lambda r: (r["file"], r["index"]))
    return runs


def images_per_s(r, with_decode=False):
    if "batch_ms" not in r:
        return float("nan")
    ms = r["batch_with_decode_ms"] if with_decode else r["batch_ms"]
    per_rep = {}
    for rep, n, t in zip(r["batch_repetition"], r["batch_images"], ms):
        a = per_rep.setdefault(int(rep), [0.0, 0.0])
        a[0] += n
        a[1] += t
    return float(np.median([n / (t / 1000.0) for n, t in per_rep.values() if t > 0]))


def depth_of(r, name):
    m = re.search(r"depth=(\d+)", r["models"].get(name, ""))
    return int(m.group(1)) if m else None


def paper_row(r):
    """The Table 1 row a run corresponds to, if any (by engine type and model depths)."""
    if r["type"] == "single":
        d = depth_of(r, r["params"].get("model", ""))
        return f"VAR-d{d}" if d in (20, 24, 30) else None
    if r["type"] == "collaborative":
        n = int(r["params"].get("draft_steps", 0))
        if depth_of(r, r["params"].get("drafter", "")) == 30 and depth_of(r, r["params"].get("refiner", "")) == 16:
            return f"CoDe N={n}"
    return None


def weights_kind(r):
    """'fine-tuned' (CoDe's drafter_N/refiner_N), 'random' (random init: speed and memory only) or 'plain'."""
    sources = r["models"].values()
    if any("drafter_" in s or "refiner_" in s for s in sources):
        return "fine-tuned"
    if sources and all("source=random:" in s for s in sources):
        return "random"
    return "plain"


def table1_row(r):
    """Table 1's row for a run: VAR-d20/24/30, or CoDe N with the fine-tuned pair (random weights match
    for speed and memory); training-free CoDe belongs to Table 6."""
    row = paper_row(r)
    if row and row.startswith("CoDe") and weights_kind(r) == "plain":
        return None
    return row


def table6_n(r):
    """N of a training-free CoDe run (plain VAR-d30 drafting, VAR-d16 refining), else None."""
    row = paper_row(r)
    return int(r["params"]["draft_steps"]) if row and row.startswith("CoDe") and weights_kind(r) == "plain" else None


def context(r):
    return (r["file"], r["device"], r["dtype"], r["batch"])


def baseline_runs(runs):
    """Per context, the run speed-ups refer to: the file's baseline engine, or a single-model run of the
    largest model."""
    base = {}
    for r in runs:
        if r["type"] == "single" and "batch_ms" in r:
            key = context(r)
            rank = (r["engine"] == r["baseline"], max([depth_of(r, m) or 0 for m in r["models"]] or [0]))
            if key not in base or rank > base[key][0]:
                base[key] = (rank, r)
    return {k: v[1] for k, v in base.items()}


def speedups(runs, with_decode=False):
    """Speed-up of every run against the baseline run of its context (baseline_runs)."""
    base = baseline_runs(runs)
    return {(r["id"], r["file"]): images_per_s(r, with_decode) / images_per_s(base[context(r)], with_decode)
            for r in runs if context(r) in base and "batch_ms" in r}


def per_image_ms(r):
    return [t / n for t, n in zip(r["batch_ms"], r["batch_images"]) if n > 0]


def speedup_interval(base_ms, run_ms, confidence=0.95):
    """95% interval of a speed-up as `varbench report` computes it (harness/analysis/report.cpp): the Hodges-Lehmann
    shift of per-image batch times, baseline to run, with Moses' interval (pairwise log ratios, the rank
    from the normal approximation of the U statistic); a latency ratio 1 + c is a speed-up 1 / (1 + c)."""
    d = sorted(math.log(y) - math.log(x) for x in base_ms for y in run_ms)
    n1, n2 = len(base_ms), len(run_ms)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    c = math.floor(n1 * n2 / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0))
    k = 0 if c < 0 else min(c, (len(d) - 1) // 2)
    return 1 / (1 + math.expm1(d[len(d) - 1 - k])), 1 / (1 + math.expm1(d[k]))


def speedup_intervals(runs):
    base = baseline_runs(runs)
    out = {}
    for r in runs:
        b = base.get(context(r))
        if b is None or "batch_ms" not in r:
            continue
        out[r["id"], r["file"]] = (1.0, 1.0) if b is r else speedup_interval(per_image_ms(b), per_image_ms(r))
    return out


def legend_outside(ax, **kwargs):
    """The legend to the right of the axes, never over the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def save(fig, out, name, formats, manifest, panels):
    files = []
    for ext in formats:
        path = os.path.join(out, f"{name}.{ext}")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        files.append(path)
    plt.close(fig)
    manifest[name] = dict(files=files, panels=panels)


def output_key(r):
    """What defines a run's output (so that a speed run and a quality run of it pair up across files): the
    engine type and its parameters with every model replaced by its content (run identity `model.*`),
    and the sampling settings. Batch size, seed, RNG mode, device and dtype are left out: they change the
    samples drawn or how fast, not what is sampled from. None for runs without an identity."""
    ident = r.get("identity") or {}
    if "engine_type" not in ident:
        return None
    contents = {k[len("model."):]: v for k, v in ident.items() if k.startswith("model.")}
    params = tuple(sorted((k, contents.get(v, v)) for k, v in ident.items() if k.startswith("param.")))
    return (ident["engine_type"], params) + tuple(ident.get(k) for k in ("cfg", "top_k", "top_p", "temperature", "more_smooth"))


def fig1(runs, out, formats, manifest, notes):
    """Speed-up against FID (Inception) where runs were scored with it; otherwise against FD in the toy
    world's feature space. Each quality run takes its speed-up from the timed runs of the same output
    (output_key) in any of the files given, e.g. Table 1's batch-64 speed file beside the batch-1 FID file;
    a quality run with no such partner uses its own timings. Points are grouped by the speed run's batch
    size and device, one curve each (batch sizes are never mixed in a curve), and the paper's Table 1
    markers (batch 64) are drawn only beside a batch-64 group."""
    inception = [r for r in runs if r.get("metrics", {}).get("fid") is not None]
    world = [r for r in runs if r.get("world", {}).get("fd") is not None]
    if not inception and not world:
        notes.append("fig1_speedup_vs_fid: no run has an FID or a world FD (run varbench score first)")
        return
    scored, key, name, label = ((inception, "metrics", "fid", "FID (lower is better)") if inception else
                                (world, "world", "fd", "FD in the toy world's feature space (lower is better)"))
    sp = speedups(runs)
    sp_interval = speedup_intervals(runs)
    timed_by_output = {}
    for t in runs:
        if (t["id"], t["file"]) in sp and output_key(t) is not None:
            timed_by_output.setdefault(output_key(t), []).append(t)
    groups = {}  # (batch, device name) -> points
    for q in scored:
        partners = [t for t in timed_by_output.get(output_key(q), []) if t is not q] if output_key(q) else []
        if not partners and (q["id"], q["file"]) in sp:
            partners = [q]
        for t in partners:
            lo, hi = q[key].get(name + "_lower"), q[key].get(name + "_upper")
            s_lo, s_hi = sp_interval.get((t["id"], t["file"]), (None, None))
            groups.setdefault((t["batch"], t["device_name"] or t["device"]), []).append(dict(
                run=q["id"], quality_file=q["file"], speed_run=t["id"], speed_file=t["file"], batch=t["batch"],
                device=t["device_name"] or t["device"], speedup=sp[t["id"], t["file"]], quality=float(q[key][name]),
                quality_lower=None if lo is None else float(lo), quality_upper=None if hi is None else float(hi),
                speedup_lower=s_lo, speedup_upper=s_hi, verdict=q.get("world_vs_baseline", {}).get("verdict"),
                collaborative=q["type"] == "collaborative", draft_steps=int(q["params"].get("draft_steps", 0) or 0),
                table1_row=table1_row(q)))
    if not groups:
        notes.append("fig1_speedup_vs_fid: no scored run has timings, in its own file or another one given")
        return
    fig, ax = plt.subplots(figsize=(8.5, 5.0))
    markers = "os^Dv<>p"
    points = []
    for g, ((batch, device), pts) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))):
        tag = f"batch {batch}, {device}"
        colour = f"C{g % 10}"
        # 95% intervals as error bars: quality (bootstrap over the images) and speed-up (Moses, over batches).
        for p in pts:
            def bar(v, lo, hi):
                return None if lo is None or hi is None else [[max(v - lo, 0.0)], [max(hi - v, 0.0)]]
            ax.errorbar(p["quality"], p["speedup"], xerr=bar(p["quality"], p["quality_lower"], p["quality_upper"]),
                        yerr=bar(p["speedup"], p["speedup_lower"], p["speedup_upper"]), fmt="none", ecolor=colour,
                        alpha=0.45, capsize=2, linewidth=0.8)
        ax.scatter([p["quality"] for p in pts], [p["speedup"] for p in pts], color=colour, marker=markers[g % len(markers)],
                   label=tag, zorder=3)
        code = sorted((p["draft_steps"], p["quality"], p["speedup"]) for p in pts if p["collaborative"])
        if len(code) > 1:  # CoDe's trade-off curve over N, within one batch size and device
            ax.plot([c[1] for c in code], [c[2] for c in code], color=colour, alpha=0.5)
        points += pts
    # Points are numbered on the plot and named in a key beside it: run names written at the points
    # overlap wherever runs are close (the quickstart's CoDe runs sit within each other's intervals).
    for i, p in enumerate(points, 1):
        p["label"] = i
        ax.annotate(str(i), (p["quality"], p["speedup"]), xytext=(3, 3), textcoords="offset points", fontsize=7)
    key_lines = [f"{p['label']}  {p['run']}" + (f"  ({p['verdict']})" if p.get("verdict") else "") for p in points]
    ax.text(1.01, 0.0, "\n".join(key_lines), transform=ax.transAxes, fontsize=6.5, va="bottom", ha="left", family="monospace")
    matched = {p["table1_row"] for p in points if p["batch"] == 64} & set(PAPER_TABLE1) if inception else set()
    paper = [(v["fid"], v["images_per_s"] / PAPER_TABLE1["VAR-d30"]["images_per_s"], k) for k, v in PAPER_TABLE1.items() if k in matched]
    if paper:
        ax.scatter([p[0] for p in paper], [p[1] for p in paper], marker="x", color="C3", label="paper (Table 1: batch 64, L20)")
        for x, y, k in paper:
            ax.annotate(k, (x, y), fontsize=7, color="C3")
    legend_outside(ax, fontsize=7)
    ax.set_xlabel(label + "; bars: 95% intervals")
    ax.set_ylabel("speed-up over the baseline (same batch and device)")
    ax.set_title("Speed-up against FID" if inception else "Speed-up against FD (toy world)")
    name_out = "fig1_speedup_vs_fid" if inception else "fig1_speedup_vs_fd_world"
    save(fig, out, name_out, formats, manifest, [ax.get_title()])
    manifest[name_out]["points"] = [{k: v for k, v in p.items() if k not in ("collaborative", "draft_steps")} for p in points]
    manifest[name_out]["error_bars"] = dict(quality=sum(p["quality_lower"] is not None for p in points),
                                            speedup=sum(p["speedup_lower"] is not None for p in points))
    manifest[name_out]["paper_markers"] = sorted(k for _, _, k in paper)


def fig5b(runs, out, formats, manifest, notes):
    timed = [r for r in runs if "batch_ms" in r and r["type"] != "null"]
    by_engine = {}
    for r in timed:
        by_engine.setdefault((r["file"], r["engine"]), []).append(r)
    if not any(len({r["batch"] for r in rs}) > 1 for rs in by_engine.values()):
        notes.append("fig5b_batch_scaling: no engine was run at more than one batch size")
        return
    sp = speedups(runs)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (_, engine), rs in sorted(by_engine.items()):
        rs = sorted(rs, key=lambda r: r["batch"])
        b = [r["batch"] for r in rs]
        a1.plot(b, [images_per_s(r) for r in rs], marker="o", label=engine)
        a2.plot(b, [sp.get((r["id"], r["file"]), float("nan")) for r in rs], marker="o", label=engine)
    if any(paper_row(r) == "CoDe N=6" for r in timed):
        a2.scatter(list(PAPER_FIG5_SPEEDUP), list(PAPER_FIG5_SPEEDUP.values()), marker="x", color="C3", zorder=5,
                   label="paper: CoDe N=6")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xlabel("batch size")
    legend_outside(a2, fontsize=7)
    a1.set_ylabel("images/s (decode excluded)")
    a1.set_title("Throughput against batch size")
    a2.set_ylabel("speed-up")
    a2.set_title("Speed-up against batch size")
    save(fig, out, "fig5b_batch_scaling", formats, manifest, [a1.get_title(), a2.get_title()])


def fig5c(runs, out, formats, manifest, notes):
    timed = [r for r in runs if "scale_ms" in r and r["type"] != "null"]
    if not timed:
        notes.append("fig5c_scale_latency: no timed runs")
        return
    # One bar per engine: at batch 64 if it was run, else the largest batch.
    chosen = {}
    for r in timed:
        key = (r["file"], r["engine"], tuple(sorted(r["params"].items())))
        best = chosen.get(key)
        score = (r["batch"] == 64, r["batch"])
        if best is None or score > best[0]:
            chosen[key] = (score, r)
    bars = [r for _, r in chosen.values()]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(bars) + 2), 4.5))
    labels = [f"{r['id']}\n(batch {r['batch']})" for r in bars]
    bottom = np.zeros(len(bars))
    scales = bars[0]["scale_ms"].shape[1]
    cmap = plt.get_cmap("viridis", scales)
    for s in range(scales):
        vals = np.array([np.nanmean(r["scale_ms"][:, s]) if not np.all(np.isnan(r["scale_ms"][:, s])) else 0.0 for r in bars])
        ax.bar(range(len(bars)), vals, bottom=bottom, color=cmap(s), label=f"scale {s}")
        bottom += vals
    # What is not one scale's work, per batch, under its own name (a speculative round settles several
    # scales at once; CoDe's refiner runs one prefix pass over the drafted scales).
    other = {"setup": ("set-up (conditioning, KV cache)", "0.85"), "prefix": ("CoDe refiner prefix pass", "0.6"),
             "draft": ("speculative draft rounds", "0.45"), "verify": ("speculative verify rounds", "0.3")}
    for kind, (label, colour) in other.items():
        vals = []
        for r in bars:
            ph = r.get("phases")
            if ph is None:
                vals.append(0.0)
                continue
            per_batch = {}
            for b, k, ms in zip(ph["batch"], ph["kind"], ph["ms"]):
                if k == kind:
                    per_batch[int(b)] = per_batch.get(int(b), 0.0) + float(ms)
            vals.append(sum(per_batch.values()) / len(r["batch_ms"]) if per_batch else 0.0)
        vals = np.array(vals)
        if vals.any():
            ax.bar(range(len(bars)), vals, bottom=bottom, color=colour, hatch="//", label=label)
            bottom += vals
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("ms per batch")
    ax.set_title("Per-scale latency (paper: the last three scales take 64% of VAR-d30's time at batch 64)", fontsize=9)
    legend_outside(ax, fontsize=6)
    save(fig, out, "fig5c_scale_latency", formats, manifest, [ax.get_title()])

    # Beside it: the memory pass, phase by phase.
    measured = [r for r in bars if r.get("memory_phases") and r.get("memory", {}).get("measured")]
    if not measured:
        notes.append("fig5c_phase_memory: no run with a measured memory pass")
        return
    # Small multiples: one panel per run, grouped by engine family, each with its own phases on its x axis
    # (a speculative run's set-up, draft and verify rounds are not a CoDe run's drafter and refiner scales).
    family_order = {"single": 0, "collaborative": 1, "speculative": 2}
    measured.sort(key=lambda r: (family_order.get(r["type"], 3), r["type"], r["index"]))
    cols = min(4, len(measured))
    rows = math.ceil(len(measured) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows + 0.6), sharey=True, squeeze=False)
    panels, phase_labels = [], {}
    for ax, r in zip(axes.flat, measured):
        ph = r["memory_phases"]
        w = r["memory"]["weights_bytes"]
        ax.step(range(len(ph)), [(w + p["allocated"]) / 2**20 for p in ph], where="mid", color="C0",
                label="allocator peak + weights")
        ax.step(range(len(ph)), [p["kv"] / 2**20 for p in ph], where="mid", color="C1", linestyle="--", label="KV cache alive")
        # Scales as s<k>; a speculative round by its first scale (draft s3, verify s3).
        names = [f"s{p['first']}" if p["kind"] == "scale" else
                 f"{p['kind']} s{p['first']}" if p["kind"] in ("draft", "verify") and p["first"] >= 0 else p["kind"] for p in ph]
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=5.5, rotation=90)
        ax.set_title(f"{r['id']} ({r['type']}, batch {r['batch']})", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        panels.append(ax.get_title())
        phase_labels[r["id"]] = names
    for ax in axes.flat[len(measured):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("MB")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=7, ncol=2, frameon=False)
    fig.suptitle("Memory per phase (memory pass): allocator peak + weights, and the KV cache alive", fontsize=9, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save(fig, out, "fig5c_phase_memory", formats, manifest, panels)
    manifest["fig5c_phase_memory"]["phase_labels"] = phase_labels


def table3(runs, out, formats, manifest, notes):
    mem = [r for r in runs if r.get("memory", {}).get("measured") and r["type"] != "null"]
    if not mem:
        notes.append("table3_memory: no run with measured memory")
        return
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(mem) + 3), 4.5))
    labels, W, K, A = [], [], [], []
    for r in mem:
        m = r["memory"]
        labels.append(f"{r['id']}\n(batch {r['batch']})")
        W.append(m["weights_bytes"] / 2**20)
        K.append(m["kv_cache_bytes"] / 2**20)
        A.append(m["activations_bytes"] / 2**20)
    matched = {paper_row(r) for r in mem}
    for key, row in PAPER_TABLE3_MB.items():  # published bars, hatched, beside matching runs
        if key not in matched:
            continue
        labels.append(f"paper {key}\n(batch 64)")
        W.append(row["weights"])
        K.append(row["kv_cache"])
        A.append(row["activations"])
    x = np.arange(len(labels))
    hatch = ["" if i < len(mem) else "//" for i in range(len(labels))]
    for i in range(len(labels)):
        ax.bar(i, W[i], color="C0", hatch=hatch[i], label="weights" if i == 0 else None)
        ax.bar(i, K[i], bottom=W[i], color="C1", hatch=hatch[i], label="KV cache" if i == 0 else None)
        ax.bar(i, A[i], bottom=W[i] + K[i], color="C2", hatch=hatch[i], label="activations" if i == 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("MB")
    ax.set_title("Memory split at the peak phase (Table 3)")
    legend_outside(ax, fontsize=7)
    save(fig, out, "table3_memory", formats, manifest, [ax.get_title()])


def acceptance(runs, out, formats, manifest, notes):
    spec = [r for r in runs if "drafted_tokens" in r.get("engine_stats", {})]
    if not spec:
        notes.append("speculative_acceptance: no speculative run")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in spec:
        d, a = r["engine_stats"]["drafted_tokens"], r["engine_stats"]["accepted_tokens"]
        rate = np.where(d > 0, a / np.maximum(d, 1), np.nan)
        ax.plot(range(len(rate)), rate, marker="o", label=r["id"])
    ax.set_xlabel("scale")
    ax.set_ylabel("accepted / drafted tokens")
    ax.set_ylim(0, 1.05)
    ax.set_title("Speculative acceptance per scale")
    legend_outside(ax, fontsize=7)
    save(fig, out, "speculative_acceptance", formats, manifest, [ax.get_title()])


def fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def fmt_interval(values, key, spec):
    """'3359 [2411, 4710]' from a metrics group's key, key_lower, key_upper."""
    v, lo, hi = values.get(key), values.get(key + "_lower"), values.get(key + "_upper")
    if v is None:
        return "-"
    return fmt(v, spec) if lo is None or hi is None else f"{fmt(v, spec)} [{fmt(lo, spec)}, {fmt(hi, spec)}]"


def tables(runs):
    lines = ["| config | run | latency (s) | images/s | peak memory (MB) | FID | IS | precision | recall |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if r["status"] != "completed" or r["type"] == "null":
            continue
        met = r.get("metrics", {})
        lat = float(np.median(r["batch_ms"])) / 1000 if "batch_ms" in r else None
        peak = r["memory"]["peak_bytes"] / 2**20 if r.get("memory", {}).get("measured") else None
        row = table1_row(r)
        lines.append(f"| {row or r['engine']} | {r['id']} (batch {r['batch']}, measured) | {fmt(lat, '.2f')} | "
                     f"{fmt(images_per_s(r), '.2f')} | {fmt(peak, '.0f')} | {fmt(met.get('fid'), '.2f')} | "
                     f"{fmt(met.get('inception_score'), '.0f')} | {fmt(met.get('precision'), '.2f')} | {fmt(met.get('recall'), '.2f')} |")
        if row in PAPER_TABLE1:
            p = PAPER_TABLE1[row]
            lines.append(f"| {row} | paper (batch 64, L20) | {p['latency_s']:.2f} | {p['images_per_s']:.2f} | {p['peak_mb']} | "
                         f"{p['fid']:.2f} | {p['inception_score']} | {p['precision']:.2f} | {p['recall']:.2f} |")
    table1 = "\n".join(lines) + "\n"
    lines = ["| N | run | FID (measured) | FID (paper, training-free) | FD (toy world) [95% CI] | class accuracy (toy world) [95% CI] | "
             "vs baseline (FD difference [95% CI]) |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:  # the baseline first (the drafter alone: what CoDe's quality is compared with)
        if r["type"] == "single" and r["engine"] == r["baseline"] and r["status"] == "completed":
            world = r.get("world", {})
            lines.append(f"| baseline | {r['id']} | {fmt(r.get('metrics', {}).get('fid'), '.2f')} | - | "
                         f"{fmt_interval(world, 'fd', '.3f')} | {fmt_interval(world, 'class_accuracy', '.3f')} | - |")
    for r in runs:
        if r["type"] != "collaborative" or r["status"] != "completed":
            continue
        n = int(r["params"].get("draft_steps", 0))
        paper = PAPER_TABLE6_FID.get(n) if table6_n(r) else None
        world = r.get("world", {})
        versus = r.get("world_vs_baseline", {})
        verdict = (f"{versus['verdict']} ({fmt_interval(versus, 'fd_difference', '+.3f')})" if "verdict" in versus else "-")
        lines.append(f"| {n} | {r['id']} | {fmt(r.get('metrics', {}).get('fid'), '.2f')} | {fmt(paper, '.2f')} | "
                     f"{fmt_interval(world, 'fd', '.3f')} | {fmt_interval(world, 'class_accuracy', '.3f')} | {verdict} |")
    table6 = "\n".join(lines) + "\n"
    return table1, table6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="varbench result files (.h5)")
    ap.add_argument("--out", help="output folder (default: results/figures/<name of the first file>)")
    ap.add_argument("--formats", default="png,pdf")
    args = ap.parse_args(argv)
    for p in args.results:
        if not os.path.exists(p):
            sys.exit(f"figures.py: {p}: no such file")
    out = args.out or os.path.join("results", "figures", os.path.splitext(os.path.basename(args.results[0]))[0])
    os.makedirs(out, exist_ok=True)
    runs = load_runs(args.results)
    formats = [f for f in args.formats.split(",") if f]
    manifest, notes = {}, []
    for draw in (fig1, fig5b, fig5c, table3, acceptance):
        draw(runs, out, formats, manifest, notes)
    table1, table6 = tables(runs)
    for name, text in (("table1", table1), ("table6", table6)):
        path = os.path.join(out, f"{name}.md")
        with open(path, "w") as f:
            f.write(text)
        manifest[name] = dict(files=[path], panels=[])
    with open(os.path.join(out, "figures.json"), "w") as f:
        json.dump(dict(figures=manifest, skipped=notes), f, indent=2)
    print(table1)
    print(table6)
    for n in notes:
        print(f"figures.py: skipped {n}")
    print(f"figures.py: {len(manifest)} figures and tables written to {out} (figures.json lists the files)")


if __name__ == "__main__":
    main()
