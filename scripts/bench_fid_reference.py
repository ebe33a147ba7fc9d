#!/usr/bin/python3
"""Side-by-side timings of varbench's metrics against the reference tools' routes, on the same data and
the same number of threads (default 2, the setting of the issue's reference timings).

1. Frechet distance at d = 2048 on full-rank statistics (reference: 10,000 samples, sample: 5,000):
   * scipy.linalg.sqrtm of S1 S2 (pytorch-fid, the ADM evaluator),
   * eigenvalues of the non-symmetric S1 S2 (torch-fidelity's route; torch-fidelity itself is not a
     Debian package, so its formula is written out here with numpy),
   * varbench (tests/benchmarks/bench_metrics, Google Benchmark), with the reference's factor cached
     and without; the statistics are handed over as .npz, and the values are compared.
2. Inception feature throughput from a folder of 256x256 PNG files, decoding included:
   * pytorch-fid's pipeline (PIL decode, ToTensor, DataLoader with min(8, cpus) workers, batch 50,
     F.interpolate to 299, 2x-1, the FID Inception in PyTorch) on python3-torch,
   * `varbench features DIR OUT.npz --profile pytorch-fid`, timed as a whole process (weights loading
     and the first, slower batch included).
   Both with random weights in pytorch-fid's layout: the cost does not depend on their values.

    /usr/bin/python3 scripts/bench_fid_reference.py --build build [--threads 2] [--images 100]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="varbench build directory (with varbench and tests/benchmarks/bench_metrics)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=100, help="PNG files for the throughput comparison")
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions of each Frechet route")
    ap.add_argument("--skip-fid", action="store_true")
    ap.add_argument("--skip-features", action="store_true")
    return ap.parse_args()


ARGS = parse_args()
# The BLAS pools read these at load time: set them before numpy/torch are imported.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import inception_reference as iref  # noqa: E402
import safetensors_io  # noqa: E402

torch.set_num_threads(ARGS.threads)


def timed(fn, repeats):
    samples, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - t)
    return value, samples


def describe(samples):
    s = sorted(samples)
    return f"median {s[len(s) // 2]:.3f} s, min {s[0]:.3f} s, max {s[-1]:.3f} s (n={len(s)})"


def fid_sqrtm(mu1, s1, mu2, s2):
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def fid_eigvals(mu1, s1, mu2, s2):
    ev = np.linalg.eigvals(s1 @ s2).astype(np.complex128)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).real.sum())


def random_stats(rng, n, d, shift):
    mix = np.eye(d) + rng.normal(0, 0.5 / np.sqrt(d), size=(d, d))
    x = np.abs(rng.normal(0, 1, size=(n, d)) @ mix + shift)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def bench_fid(workdir):
    rng = np.random.default_rng(0)
    mu_r, s_r = random_stats(rng, 10000, 2048, 0.0)
    mu_s, s_s = random_stats(rng, 5000, 2048, 0.1)
    np.savez(os.path.join(workdir, "reference.npz"), mu=mu_r, sigma=s_r)
    np.savez(os.path.join(workdir, "sample.npz"), mu=mu_s, sigma=s_s)
    print(f"Frechet distance, d = 2048, full rank (min eigenvalues {np.linalg.eigvalsh(s_r)[0]:.3g}, "
          f"{np.linalg.eigvalsh(s_s)[0]:.3g}), {ARGS.threads} threads")
    v_sqrtm, t_sqrtm = timed(lambda: fid_sqrtm(mu_s, s_s, mu_r, s_r), ARGS.repeats)
    print(f"  scipy.linalg.sqrtm route (pytorch-fid, ADM):   FID {v_sqrtm:.12f}  {describe(t_sqrtm)}")
    v_eig, t_eig = timed(lambda: fid_eigvals(mu_s, s_s, mu_r, s_r), ARGS.repeats)
    print(f"  eigvals route (torch-fidelity's formula):      FID {v_eig:.12f}  {describe(t_eig)}")

    bench = os.path.join(ARGS.build, "tests", "benchmarks", "bench_metrics")
    out = subprocess.run([bench, "--benchmark_filter=Frechet", "--benchmark_format=json", f"--benchmark_repetitions={max(ARGS.repeats, 3)}"],
                         env=dict(os.environ, VARBENCH_FID_STATS=workdir), check=True, capture_output=True, text=True)
    rows = [b for b in json.loads(out.stdout)["benchmarks"] if b.get("run_type") == "iteration"]
    # Medians and minima both: on a shared machine the minimum is the better estimate of the cost alone.
    ref_med, ref_min = sorted(t_sqrtm)[len(t_sqrtm) // 2], min(t_sqrtm)
    eig_med, eig_min = sorted(t_eig)[len(t_eig) // 2], min(t_eig)
    by_name = {}
    for b in rows:
        by_name.setdefault(b["run_name"] + " " + b.get("label", ""), []).append(b)
    for name, runs in by_name.items():
        times = sorted(r["real_time"] / 1000.0 for r in runs)  # ms -> s
        med, low = times[len(times) // 2], times[0]
        fid = runs[0]["fid"]
        print(f"  varbench {name}: FID {fid:.12f}  median {med:.3f} s, min {low:.3f} s (n={len(times)})\n"
              f"      speed-up vs sqrtm route {ref_med / med:.1f}x (medians) / {ref_min / low:.1f}x (minima); "
              f"vs eigvals route {eig_med / med:.1f}x / {eig_min / low:.1f}x; "
              f"relative difference {abs(fid - v_sqrtm) / abs(v_sqrtm):.1e} to sqrtm, {abs(fid - v_eig) / abs(v_eig):.1e} to eigvals")


class PngFolder(torch.utils.data.Dataset):
    """pytorch-fid's ImagePathDataset with its ToTensor transform."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        img = np.asarray(Image.open(self.files[i]).convert("RGB"))
        return torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous().to(torch.float32).div(255)


def bench_features(workdir):
    from PIL import Image

    png_dir = os.path.join(workdir, "png")
    os.makedirs(png_dir, exist_ok=True)
    rng = np.random.default_rng(1)
    ramp = (np.linspace(0, 255, 256)[None, :, None] + np.linspace(0, 255, 256)[:, None, None]) / 2
    for i in range(ARGS.images):
        img = np.clip(ramp + rng.normal(0, 20, size=(256, 256, 3)) + i, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(png_dir, f"{i:05d}.png"))
    files = sorted(os.path.join(png_dir, f) for f in os.listdir(png_dir))

    net = iref.randomize_(iref.build_fid_inception(), seed=0)
    weights = os.path.join(workdir, "inception.safetensors")
    safetensors_io.save(weights, {k: v.contiguous() for k, v in net.state_dict().items()})

    workers = min(8, len(os.sched_getaffinity(0)))
    loader = torch.utils.data.DataLoader(PngFolder(files), batch_size=50, shuffle=False, num_workers=workers)
    print(f"Inception features, {ARGS.images} PNG files of 256x256, batch 50, {ARGS.threads} threads")

    def pytorch_fid():
        feats = []
        with torch.no_grad():
            for batch in loader:
                x = F.interpolate(batch, size=(299, 299), mode="bilinear", align_corners=False)
                x = 2 * x - 1
                feats.append(iref.features(net, x)[0])
        return torch.cat(feats)

    _, t_py = timed(pytorch_fid, 3)
    py_rate = ARGS.images / min(t_py)
    print(f"  pytorch-fid pipeline (python3-torch {torch.__version__}, {workers} loader workers): "
          f"{py_rate:.2f} images/s, best run ({describe(t_py)}; the first run includes oneDNN's warm-up)")

    exe = os.path.join(ARGS.build, "varbench")
    samples = []
    for _ in range(3):
        out = os.path.join(workdir, "features.npz")
        if os.path.exists(out):
            os.remove(out)
        t = time.perf_counter()
        subprocess.run([exe, "features", png_dir, out, "--inception", weights, "--threads", str(ARGS.threads),
                        "--profile", "pytorch-fid", "--batch-size", "50"], check=True, capture_output=True,
                       env=dict(os.environ, VARBENCH_NO_PROGRESS="1"))
        samples.append(time.perf_counter() - t)
    vb_rate = ARGS.images / min(samples)
    print(f"  varbench features (whole process, weights loading included): {vb_rate:.2f} images/s ({describe(samples)})\n"
          f"      {vb_rate / py_rate:.2f}x pytorch-fid (best runs of each)")


def main():
    with tempfile.TemporaryDirectory(prefix="varbench_bench_fid_") as workdir:
        print(f"load average before: {os.getloadavg()}")
        if not ARGS.skip_fid:
            bench_fid(workdir)
        if not ARGS.skip_features:
            bench_features(workdir)
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
