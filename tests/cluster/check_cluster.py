#!/usr/bin/python3
"""The cluster rehearsal: varbench's multi-process workflows run end to end on this machine, with tiny
random-init models on the CPU, and each must give what one unsharded run gives.

  1. Slurm: scripts/slurm/fid50k.sbatch itself, submitted through the test-only sbatch stand-in
     (tests/cluster/bin/sbatch: array tasks with Slurm's variables, the script run from a spool copy in the
     submission folder, afterok ordering, preemption with requeue): submit -> 4 shard tasks (run + score
     each; task 1 preempted mid-run by SIGTERM and requeued, its run resumed) -> merge -> score -> report. Every task must complete, and the merged file must equal the unsharded run: tokens, images,
     labels, seeds and image indices identical for every run, FID equal (the merged Inception statistics are
     sums of the shards': statistics equal to RELATIVE_STATS, FID to RELATIVE_FID).
  2. The script's refusals before anything is queued: a varbench without CUDA while SCORE_DEVICE is cuda,
     no CUDA build found by default, a static error in the experiment (each: exit 2, its message, no job).
  3. torchrun-style launch: 4 processes with WORLD_SIZE/RANK/LOCAL_RANK (and nothing else) write 4 shard
     files that merge into the unsharded result.
  4. srun-style launch: `srun -n 4 varbench run` (the srun stand-in: SLURM_PROCID/NTASKS/LOCALID), the same.

    /usr/bin/python3 tests/cluster/check_cluster.py --varbench build/varbench --fixtures build/tests/fixtures --out DIR

Prints a transcript of every command; exits non-zero on the first failed claim. Needs numpy and h5py.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SBATCH_SCRIPT = os.path.join(ROOT, "scripts", "slurm", "fid50k.sbatch")
SHARDS = 4
# Scored at batch 1 with one thread, the shards' Inception statistics (n, sums, sums of outer products) add up
# to the unsharded pass's up to the order of the additions. (At the default batch size the per-image float32
# features of a 3-image shard and of the 12-image file differed by 6e-7 relative, and the FID by 1.4e-8.)
RELATIVE_STATS = 1e-12
# Shard task 1 is preempted in its first attempt once its first run has begun (its partial file exists):
# inside `varbench run` whatever the machine's load (a fixed delay landed in the first run at 1.5 s and in
# the second at 2.5 s here, and could land before varbench starts on a loaded machine).
PREEMPT_WHEN = "results/shards/rehearsal/rehearsal.shard-1-of-4.h5.partial"
RELATIVE_FID = 1e-9

# Two runs (one model, and CoDe over two models), the FID protocol's batch 1 and reference RNG; 12 images,
# so each of the 4 shards holds 3 batches.
EXPERIMENT = """
[experiment]
name = "rehearsal"
classes = "0-5"
images_per_class = 2
batch_size = 1
warmup = 0
repetitions = 1
seed = 5
rng = "reference"
threads = 1
baseline = "large"
[models.large]
random_init = "tiny-d3"
[models.small]
random_init = "tiny-d2"
[vqvae]
random_init = "vqvae-ch32"
[[engines]]
name = "large"
type = "single"
model = "large"
[[engines]]
name = "CoDe-N4"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = 4
"""

failures = 0


def claim(ok, text):
    global failures
    print(("PASS " if ok else "FAIL ") + text, flush=True)
    if not ok:
        failures += 1
        raise SystemExit(f"check_cluster: failed: {text}")


def sh(cmd, cwd, env=None, expect=0):
    print(f"$ {' '.join(cmd)}", flush=True)
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print("  " + r.stdout.rstrip().replace("\n", "\n  ") if r.stdout.strip() else "  (no output)", flush=True)
    if expect is not None:
        claim(r.returncode == expect, f"exit {r.returncode} (expected {expect}): {' '.join(cmd)}")
    return r


def samples(path):
    """run -> {dataset: array ordered by global image index}."""
    out = {}
    with h5py.File(path, "r") as f:
        for name, g in f["runs"].items():
            status = g.attrs.get("status")
            status = status.decode() if isinstance(status, bytes) else status
            claim(status == "completed", f"{path}: run {name} completed (status {status}, {g.attrs.get('error', '')})")
            order = np.argsort(g["image_index"][:])
            run = {k: g[k][:][order] for k in ("image_index", "labels", "index_in_class", "seeds", "images")}
            for s in g["tokens"]:
                run["tokens/" + s] = g["tokens"][s][:][order]
            if "metrics" in g and "fid" in g["metrics"].attrs:
                run["fid"] = float(g["metrics"].attrs["fid"])
                stats = {}
                g["feature_stats"].visititems(lambda k, v: stats.__setitem__(k, v[:]) if isinstance(v, h5py.Dataset) else None)
                run["stats"] = stats
            out[name] = run
    return out


def same_samples(whole, other, what, with_fid):
    a, b = samples(whole), samples(other)
    claim(sorted(a) == sorted(b), f"{what}: the same runs as the unsharded file ({sorted(b)} vs {sorted(a)})")
    for run in a:
        for key, value in a[run].items():
            if key in ("fid", "stats"):
                continue
            claim(np.array_equal(value, b[run][key]), f"{what}: run {run}: {key} identical to the unsharded run ({value.shape})")
        if with_fid:
            sa, sb = a[run]["stats"], b[run].get("stats", {})
            claim(sorted(sa) == sorted(sb), f"{what}: run {run}: the same Inception statistics ({sorted(sa)})")
            for key in sa:
                scale = max(np.abs(sa[key]).max(), 1e-300)
                worst = np.abs(sa[key] - sb[key]).max() / scale
                claim(worst <= RELATIVE_STATS, f"{what}: run {run}: Inception statistics {key} equal the unsharded ones to "
                                               f"{RELATIVE_STATS:g} (relative to the largest entry; worst {worst:.1e})")
            fa, fb = a[run]["fid"], b[run].get("fid")
            claim(fb is not None and abs(fa - fb) <= RELATIVE_FID * abs(fa),
                  f"{what}: run {run}: FID {fb!r} equals the unsharded {fa!r} to {RELATIVE_FID:g} (relative)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--varbench", required=True)
    p.add_argument("--fixtures", required=True, help="the test fixtures folder (inception/ from make_inception_fixtures.py)")
    p.add_argument("--out", required=True, help="scratch folder (emptied first)")
    a = p.parse_args()
    varbench = os.path.abspath(a.varbench)
    ref = os.path.join(os.path.abspath(a.fixtures), "inception", "set_a.npz")
    inception = os.path.join(os.path.abspath(a.fixtures), "inception", "inception_random.safetensors")
    work = os.path.abspath(a.out)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "experiments"))
    experiment = "experiments/rehearsal.toml"
    with open(os.path.join(work, experiment), "w") as f:
        f.write(EXPERIMENT)
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("SLURM_") and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "VARBENCH", "VARBENCH_STAGE")}
    base_env["PATH"] = os.path.join(HERE, "bin") + os.pathsep + base_env.get("PATH", "")
    # Batch 1 and one thread: each image's Inception features are then the same whichever file it is scored
    # from (float32 features depend on the forward pass's batch and threads in their last bits).
    score_args = ["--batch-size", "1", "--threads", "1"]
    score = ["--ref", ref, "--inception", inception, "--device", "cpu"] + score_args

    print("== the unsharded run (the reference)", flush=True)
    sh([varbench, "run", experiment, "--out", "results/whole.h5", "--quiet"], work)
    sh([varbench, "score", "results/whole.h5"] + score, work)

    print("\n== refusals before anything is queued", flush=True)
    env = dict(base_env, FAKE_SLURM_STATE=os.path.join(work, "slurm-refusals"), REF=ref, INCEPTION=inception)
    fake = os.path.join(work, "cpu-only-varbench")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho 'varbench 0.2.0 (git x, Release, GNU)'\necho 'libtorch 1.13.0 (CPU only)'\n")
    os.chmod(fake, 0o755)
    r = sh([SBATCH_SCRIPT, experiment, str(SHARDS)], work, dict(env, VARBENCH=fake), expect=2)
    claim("was built without CUDA" in r.stdout, "a CPU-only varbench with SCORE_DEVICE=cuda is refused, naming the way out")
    r = sh([SBATCH_SCRIPT, experiment, str(SHARDS)], work, env, expect=2)
    claim("no varbench with CUDA found" in r.stdout, "without VARBENCH, no CUDA build in build-gpu/ or build-torch2/ is an error")
    with open(os.path.join(work, "experiments/broken.toml"), "w") as f:
        f.write(EXPERIMENT.replace('draft_steps = 4', 'draft_steps = 12'))
    r = sh([SBATCH_SCRIPT, "experiments/broken.toml", str(SHARDS)], work, dict(env, VARBENCH=varbench, SCORE_DEVICE="cpu"), expect=2)
    claim("draft_steps" in r.stdout and "nothing was submitted" in r.stdout, "a static error in the experiment stops the submission")
    claim(not glob.glob(os.path.join(env["FAKE_SLURM_STATE"], "job-*.json")), "no job was submitted by a refused submission")

    print("\n== Slurm: scripts/slurm/fid50k.sbatch through the sbatch stand-in", flush=True)
    # Task 1 is preempted in its first attempt (SIGTERM to all its processes, as Slurm does; PREEMPT_WHEN)
    # and requeued (the script asks for --requeue): it must resume and still give the same files.
    env = dict(base_env, FAKE_SLURM_STATE=os.path.join(work, "slurm"), VARBENCH=varbench, REF=ref, INCEPTION=inception,
               SCORE_DEVICE="cpu", SCORE_ARGS=" ".join(score_args), FAKE_SLURM_PREEMPT=f"1@{PREEMPT_WHEN}")
    sh([SBATCH_SCRIPT, experiment, str(SHARDS)], work, env)
    r = sh(["fake-slurm-wait", "900"], work, env, expect=None)
    for log in sorted(glob.glob(os.path.join(work, "results", "slurm", "*.out"))):
        print(f"--- {os.path.relpath(log, work)}\n{open(log).read().rstrip()}", flush=True)
    claim(r.returncode == 0, "every array task and the merge job completed")
    claim("task 1: COMPLETED exit 0 (preempted, requeued 1x)" in r.stdout, "task 1 was preempted, requeued and completed")
    task1 = open(glob.glob(os.path.join(work, "results", "slurm", "varbench-fid50k-*_1.out"))[0]).read()
    claim("stopped by Terminated after timed batch" in task1 and "resumes after its timed batch" in task1,
          "the preempted task's run stopped after a batch, saved, and its requeued attempt resumed it mid-run")
    shard_files = sorted(glob.glob(os.path.join(work, "results", "shards", "rehearsal", "*.h5")))
    claim(len(shard_files) == SHARDS and all(f"-of-{SHARDS}.h5" in s for s in shard_files),
          f"{SHARDS} shard files, named NAME.shard-I-of-{SHARDS}.h5 ({[os.path.basename(s) for s in shard_files]})")
    same_samples(os.path.join(work, "results/whole.h5"), os.path.join(work, "results/rehearsal.h5"), "Slurm merge", with_fid=True)
    figures = os.path.join(work, "results", "figures", "rehearsal")
    claim(os.path.isdir(figures) and len(os.listdir(figures)) > 0, f"the merge job's report wrote {figures}")

    print("\n== torchrun-style launch: WORLD_SIZE, RANK, LOCAL_RANK", flush=True)
    procs = []
    for rank in range(SHARDS):
        env = dict(base_env, WORLD_SIZE=str(SHARDS), RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(SHARDS),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
        cmd = [varbench, "run", experiment, "--out", "results/torchrun/t.h5", "--quiet"]
        print(f"$ RANK={rank} WORLD_SIZE={SHARDS} LOCAL_RANK={rank} {' '.join(cmd)} &", flush=True)
        procs.append(subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for rank, proc in enumerate(procs):
        out, _ = proc.communicate()
        claim(proc.returncode == 0, f"rank {rank} exited 0 ({out.strip()[-300:]})")
    parts = [f"results/torchrun/t.shard-{i}-of-{SHARDS}.h5" for i in range(SHARDS)]
    sh([varbench, "merge", "results/torchrun/merged.h5"] + parts, work)
    same_samples(os.path.join(work, "results/whole.h5"), os.path.join(work, "results/torchrun/merged.h5"), "torchrun merge",
                 with_fid=False)

    print("\n== srun-style launch: srun -n 4 varbench run", flush=True)
    sh(["srun", "-n", str(SHARDS), varbench, "run", experiment, "--out", "results/srun/s.h5", "--quiet"], work, base_env)
    parts = [f"results/srun/s.shard-{i}-of-{SHARDS}.h5" for i in range(SHARDS)]
    sh([varbench, "merge", "results/srun/merged.h5"] + parts, work)
    same_samples(os.path.join(work, "results/whole.h5"), os.path.join(work, "results/srun/merged.h5"), "srun merge", with_fid=False)
    print("\ncheck_cluster: all claims hold")


if __name__ == "__main__":
    main()
