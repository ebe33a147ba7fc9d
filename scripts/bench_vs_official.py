#!/usr/bin/python3
"""Times the official VAR (and CoDe) samplers and varbench side by side on identical work.

    /usr/bin/python3 scripts/bench_vs_official.py --var-src ~/src/VAR [--code-src ~/src/CoDe] [--build build]

--var-src is a checkout of FoundationVision/VAR, --code-src one of czg1225/CoDe; their code is imported
from those folders at run time (nothing of it is in this repository). For every configuration the script
builds the models with the official code (random weights from its own init_weights, fixed torch seed),
saves their state dicts as .pth and converts them with scripts/convert_checkpoint.py, exactly as a user's
released checkpoints go into varbench. Then, on the same weights, the same labels, the same sampling
settings and the same seed:

  * the official sampler (autoregressive_infer_cfg; CoDe: autoregressive_infer_cfg_draft then _refine)
    runs in a child process of this Python (its torch is the lane's: Debian's python3-torch 1.13 for the
    Debian build), once to warm up and then --repeats times; its VQVAE decode (fhat_to_img) is timed on its
    own, so "transformer" is the sampler's time without the decode;
  * varbench runs the same work with `varbench run` on a generated experiment file, in reference RNG mode
    (the official sampler's torch generator: tokens must come out identical, and the script checks that
    they do) and in per-image RNG mode (varbench's default for sweeps; the same work with other draws).

The sides alternate over --rounds rounds (official, varbench, official, ...), each side warming up
afresh, and the table shows the medians of all rounds: timings on a shared VM drift by 10-25% over
minutes, and alternating puts both sides in the same minutes. Both sides get the same threads. The OpenMP wait policy is part of the measurement: libgomp's default
(threads spin after each parallel region, competing with OpenBLAS's own threads for the cores) slows a
libtorch program on a 2-core machine severalfold, and varbench sets OMP_WAIT_POLICY=PASSIVE for itself
(harness/platform/cpu_runtime.h). So the official
code is timed as it runs out of the box and, with --official-wait-policy both (the default), also under
OMP_WAIT_POLICY=PASSIVE, which any user of it can set.

The official VAR module imports huggingface_hub for a Hub mixin only its VARHF subclass uses; when that
package is missing, a stand-in class is registered so the models import.

Configurations (--configs, comma-separated): var:D:B (VAR-dD at batch B) and code:Dd:Dr:N:B (CoDe with a
dDd drafter and a dDr refiner, N draft steps, batch B; needs --code-src). The VQVAE is vqvae-ch160 (the
official one) for depth >= 16 and the narrow ch32 one otherwise, as varbench's named configs pair them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
VAR_SAMPLING = {"cfg": 1.5, "top_k": 900, "top_p": 0.96, "temperature": [1.0] * 10}  # VAR's FID settings
CODE_SAMPLING = {"cfg": 1.5, "top_k": 600, "top_p": 0.96, "temperature": [1.1] * 7 + [1.0] * 3}  # CoDe's
DEFAULT_CONFIGS = "var:4:1,var:4:16,code:4:2:6:16,var:16:1"


def vae_ch_for(depth):
    return 160 if depth >= 16 else 32


# ---------------------------------------------------------------------------------------------------
# Child side: runs inside a process whose sys.path starts with an official checkout.
def import_official(src):
    """Puts `src` first on sys.path and imports its `models` package (a stand-in Hub mixin if needed)."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        stub = types.ModuleType("huggingface_hub")

        class PyTorchModelHubMixin:  # only VARHF (unused here) derives from it
            def __init_subclass__(cls, **kwargs):
                super().__init_subclass__()

        stub.PyTorchModelHubMixin = PyTorchModelHubMixin
        sys.modules["huggingface_hub"] = stub
    sys.path.insert(0, os.path.abspath(src))
    import models  # noqa: E402
    return models


def child_make(args):
    """Builds the official models with fixed seeds and saves their state dicts (.pth)."""
    import torch
    models = import_official(args.src)
    # The official builders switch PyTorch's default initialisation off (they expect a checkpoint to be
    # loaded): VAR's init_weights covers the transformers, and the VQVAE gets PyTorch's default
    # initialisation back here, so that it holds numbers rather than uninitialised memory.
    nn = torch.nn
    defaults = {cls: cls.reset_parameters for cls in (nn.Linear, nn.Conv2d, nn.GroupNorm, nn.LayerNorm, nn.Embedding)}
    torch.manual_seed(args.init_seed)
    if args.kind == "var":
        vae, var = models.build_vae_var(device="cpu", patch_nums=PATCH_NUMS, V=4096, Cvae=32, ch=args.vae_ch,
                                        share_quant_resi=4, num_classes=1000, depth=args.depth, shared_aln=False)
        named = {"var": var, "vae": vae}
    else:
        vae, draft, refine = models.build_vae_var_ctf(device="cpu", patch_nums=PATCH_NUMS, V=4096, Cvae=32, ch=args.vae_ch,
                                                      share_quant_resi=4, num_classes=1000, depth_draft=args.depth,
                                                      depth_refine=args.refine_depth, shared_aln=False)
        named = {"drafter": draft, "refiner": refine, "vae": vae}
    with torch.no_grad():
        for m in vae.modules():
            for cls, reset in defaults.items():
                if isinstance(m, cls):  # the residual refiners Phi are Conv2d subclasses
                    reset(m)
                    break
    for name, module in named.items():
        # The VQVAE's state dict as released: its own keys only (the VAR modules hold it through proxies).
        torch.save({k: v.contiguous() for k, v in module.state_dict().items()}, os.path.join(args.out, f"{name}.pth"))


def child_time(args):
    """Times the official sampler; writes timings and the tokens of the last repetition (JSON)."""
    import torch
    models = import_official(args.src)
    import models.var as var_module
    torch.set_num_threads(args.threads)
    s = json.loads(args.sampling)
    if args.kind == "var":
        vae, var = models.build_vae_var(device="cpu", patch_nums=PATCH_NUMS, V=4096, Cvae=32, ch=args.vae_ch,
                                        share_quant_resi=4, num_classes=1000, depth=args.depth, shared_aln=False)
        transformers = [var]
    else:
        vae, draft, refine = models.build_vae_var_ctf(device="cpu", patch_nums=PATCH_NUMS, V=4096, Cvae=32, ch=args.vae_ch,
                                                      share_quant_resi=4, num_classes=1000, depth_draft=args.depth,
                                                      depth_refine=args.refine_depth, shared_aln=False)
        transformers = [draft, refine]
    names = ["var"] if args.kind == "var" else ["drafter", "refiner"]
    # nn.Module's own strict load: the official VQVAE.load_state_dict passes `assign=`, which torch < 2.1 lacks
    # (its only other step adapts a codebook-usage buffer of another size, not the case for these files).
    for module, name in zip([*transformers, vae], names + ["vae"]):
        torch.nn.Module.load_state_dict(module, torch.load(os.path.join(args.out, f"{name}.pth")), strict=True)
    for m in [vae, *transformers]:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)

    # The decode inside the sampler, timed on its own; every sampled token map, recorded.
    decode_s, draws = [], []
    fhat_to_img = vae.fhat_to_img

    def timed_decode(f_hat):
        t = time.perf_counter()
        out = fhat_to_img(f_hat)
        decode_s.append(time.perf_counter() - t)
        return out

    vae.fhat_to_img = timed_decode
    sample = var_module.sample_with_top_k_top_p_

    def recording_sample(*a, **kw):
        idx = sample(*a, **kw)
        draws.append(idx[:, :, 0].clone())
        return idx

    var_module.sample_with_top_k_top_p_ = recording_sample
    labels = torch.arange(args.batch, dtype=torch.long)  # classes 0..B-1, as the experiment file varbench runs

    def generate():
        if args.kind == "var":
            return transformers[0].autoregressive_infer_cfg(B=args.batch, label_B=labels, g_seed=args.seed, cfg=s["cfg"],
                                                           top_k=s["top_k"], top_p=s["top_p"], more_smooth=False)
        n = args.draft_steps
        top_k, temp = [s["top_k"]] * 10, s["temperature"]
        f_hat, hub = transformers[0].autoregressive_infer_cfg_draft(B=args.batch, label_B=labels, g_seed=args.seed, cfg=s["cfg"],
                                                                    top_k=top_k, top_p=s["top_p"], more_smooth=False,
                                                                    exit_num=n, temp=temp)
        return transformers[1].autoregressive_infer_cfg_refine(B=args.batch, label_B=labels, g_seed=args.seed, cfg=s["cfg"],
                                                               top_k=top_k, top_p=s["top_p"], more_smooth=False, draft=hub,
                                                               f_hat=f_hat, entry_num=n, temp=temp)

    total_s, transformer_s = [], []
    with torch.inference_mode():
        for rep in range(args.repeats + 1):  # the first is the warm-up
            decode_s.clear()
            draws.clear()
            t = time.perf_counter()
            generate()
            total = time.perf_counter() - t
            if rep > 0:
                total_s.append(total)
                transformer_s.append(total - sum(decode_s))
    if args.kind == "var":
        tokens = draws
    else:  # the refiner re-draws the prefix scales 0..N-1 and discards them (CoDe's RNG replay)
        n = args.draft_steps
        tokens = draws[:n] + draws[2 * n:]
    with open(os.path.join(args.out, f"official-{args.policy_tag}.json"), "w") as f:
        json.dump({"total_s": total_s, "transformer_s": transformer_s, "torch": torch.__version__,
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                   "tokens": [t.tolist() for t in tokens]}, f)


# ---------------------------------------------------------------------------------------------------
# Parent side.
def parse_config(text):
    f = text.split(":")
    try:
        if f[0] == "var" and len(f) == 3:
            return {"kind": "var", "depth": int(f[1]), "batch": int(f[2]), "name": f"VAR-d{f[1]}, batch {f[2]}"}
        if f[0] == "code" and len(f) == 5:
            return {"kind": "code", "depth": int(f[1]), "refine_depth": int(f[2]), "draft_steps": int(f[3]),
                    "batch": int(f[4]), "name": f"CoDe d{f[1]}->d{f[2]} N={f[3]}, batch {f[4]}"}
    except ValueError:
        pass
    raise SystemExit(f"--configs: '{text}' is neither var:DEPTH:BATCH nor code:DRAFT_DEPTH:REFINE_DEPTH:N:BATCH")


def run_child(mode, src, cfg, work, args, env_policy=None, policy_tag="default", sampling=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--src", src, "--kind", cfg["kind"],
           "--depth", str(cfg["depth"]), "--vae-ch", str(vae_ch_for(cfg["depth"])), "--out", work,
           "--init-seed", str(args.init_seed), "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--batch", str(cfg["batch"]), "--seed", str(args.seed), "--policy-tag", policy_tag,
           "--sampling", json.dumps(sampling or {})]
    if cfg["kind"] == "code":
        cmd += ["--refine-depth", str(cfg["refine_depth"]), "--draft-steps", str(cfg["draft_steps"])]
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if env_policy:
        env["OMP_WAIT_POLICY"] = env_policy
    subprocess.run(cmd, check=True, env=env)


def convert(pth, out):
    sys.path.insert(0, HERE)
    import convert_checkpoint
    convert_checkpoint.main([pth, out])


def toml_value(v):
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)


def varbench_times(cfg, work, args, rng, sampling):
    """Runs the configuration with `varbench run`: (transformer s, with-decode s) per repetition, tokens per scale."""
    import h5py
    import numpy as np
    B = cfg["batch"]
    lines = ["[experiment]", f'name = "vs-official-{rng}"', 'device = "cpu"', 'dtype = "fp32"',
             f'classes = "0-{B - 1}"', "images_per_class = 1", f"batch_size = {B}", "warmup = 1",
             f"repetitions = {args.repeats}", f"seed = {args.seed}", f'rng = "{rng}"', "store_images = false",
             "", "[sampling]"] + [f"{k} = {toml_value(v)}" for k, v in sampling.items()] + [""]
    if cfg["kind"] == "var":
        lines += ["[models.var]", f'checkpoint = "{work}/var.safetensors"', "",
                  "[[engines]]", 'name = "var"', 'type = "single"', 'model = "var"']
    else:
        lines += ["[models.drafter]", f'checkpoint = "{work}/drafter.safetensors"', "",
                  "[models.refiner]", f'checkpoint = "{work}/refiner.safetensors"', "",
                  "[[engines]]", 'name = "code"', 'type = "collaborative"', 'drafter = "drafter"', 'refiner = "refiner"',
                  f"draft_steps = {cfg['draft_steps']}"]
    lines += ["", "[vqvae]", f'checkpoint = "{work}/vae.safetensors"', ""]
    exp = os.path.join(work, f"varbench-{rng}.toml")
    with open(exp, "w") as f:
        f.write("\n".join(lines))
    out = os.path.join(work, f"varbench-{rng}.h5")
    subprocess.run([os.path.join(args.build, "varbench"), "run", exp, "--out", out, "--fresh", "--quiet",
                    "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL)
    with h5py.File(out, "r") as f:
        run = f["runs"][next(iter(f["runs"]))]
        if run.attrs["status"] != "completed":
            raise SystemExit(f"{out}: the varbench run did not complete: {run.attrs.get('error', '')}")
        transformer = [float(t) / 1e3 for t in run["timing/batch_ms"][()]]
        with_decode = [float(t) / 1e3 for t in run["timing/batch_with_decode_ms"][()]]
        tokens = [np.asarray(run[f"tokens/scale_{s}"][()]) for s in range(len(PATCH_NUMS))]
    return transformer, with_decode, tokens


def token_agreement(official, ours):
    import numpy as np
    differ = sum(int((np.asarray(o).reshape(t.shape) != t).sum()) for o, t in zip(official, ours))
    total = sum(t.size for t in ours)
    return differ, total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--var-src", help="checkout of FoundationVision/VAR")
    ap.add_argument("--code-src", help="checkout of czg1225/CoDe (for code:... configurations)")
    ap.add_argument("--build", default=os.path.normpath(os.path.join(HERE, "..", "build")), help="varbench build folder (default: build)")
    ap.add_argument("--configs", default=None, help=f"comma-separated (default: {DEFAULT_CONFIGS}; the CoDe one only with --code-src)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of official, varbench, official, ... (default 3)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="timed generations per side and round, after one warm-up (default 2); the table shows medians")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides (default: every core)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (reference RNG: the official generator's seed)")
    ap.add_argument("--init-seed", type=int, default=0, help="torch seed the official models are built with")
    ap.add_argument("--official-wait-policy", choices=["default", "PASSIVE", "both"], default="both",
                    help="OMP_WAIT_POLICY of the official runs: libgomp's default, PASSIVE, or both (two columns)")
    ap.add_argument("--work", help="folder for weights and result files (default: a temporary one, removed)")
    ap.add_argument("--json", help="also write the table's numbers to this file")
    # Internal: the child processes.
    ap.add_argument("--child", choices=["make", "time"], help=argparse.SUPPRESS)
    for name in ("--src", "--kind", "--out", "--sampling", "--policy-tag"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    for name in ("--depth", "--refine-depth", "--draft-steps", "--vae-ch", "--batch"):
        ap.add_argument(name, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "make":
        return child_make(args)
    if args.child == "time":
        return child_time(args)

    if not args.var_src:
        ap.error("--var-src DIR is required (a checkout of FoundationVision/VAR)")
    for flag, src in (("--var-src", args.var_src), ("--code-src", args.code_src)):
        if src and not os.path.isfile(os.path.join(src, "models", "var.py")):
            raise SystemExit(f"{flag} {src}: no models/var.py there (expected a checkout of the official repository)")
    if not os.access(os.path.join(args.build, "varbench"), os.X_OK):
        raise SystemExit(f"{args.build}/varbench: not built (scripts/setup builds it)")
    configs = [parse_config(c) for c in (args.configs or DEFAULT_CONFIGS).split(",")]
    if not args.configs and not args.code_src:
        configs = [c for c in configs if c["kind"] == "var"]
    if any(c["kind"] == "code" for c in configs) and not args.code_src:
        raise SystemExit("a code:... configuration needs --code-src (a checkout of czg1225/CoDe)")
    policies = {"default": [("default", None)], "PASSIVE": [("PASSIVE", "PASSIVE")],
                "both": [("default", None), ("PASSIVE", "PASSIVE")]}[args.official_wait_policy]

    work_root = args.work or tempfile.mkdtemp(prefix="varbench-vs-official-")
    rows = []
    for i, cfg in enumerate(configs):
        work = os.path.abspath(os.path.join(work_root, f"config-{i}"))
        os.makedirs(work, exist_ok=True)
        src = args.var_src if cfg["kind"] == "var" else args.code_src
        sampling = VAR_SAMPLING if cfg["kind"] == "var" else CODE_SAMPLING
        print(f"bench_vs_official: {cfg['name']}: building the official models", file=sys.stderr)
        run_child("make", src, cfg, work, args)
        for name in (["var"] if cfg["kind"] == "var" else ["drafter", "refiner"]) + ["vae"]:
            convert(os.path.join(work, f"{name}.pth"), os.path.join(work, f"{name}.safetensors"))
        row = {"config": cfg["name"], "batch": cfg["batch"], "official": {}, "reference": {}, "per-image": {}}
        # Rounds alternate the sides, so that a shared machine's slow minutes fall on both alike.
        for round_index in range(args.rounds):
            for tag, env_policy in policies:
                print(f"bench_vs_official: {cfg['name']}: round {round_index + 1}/{args.rounds}: official sampler, "
                      f"OMP_WAIT_POLICY {tag}", file=sys.stderr)
                run_child("time", src, cfg, work, args, env_policy, tag, sampling)
                with open(os.path.join(work, f"official-{tag}.json")) as f:
                    result = json.load(f)
                samples = row["official"].setdefault(tag, {"transformer_s": [], "total_s": [], "torch": result["torch"]})
                samples["transformer_s"] += result["transformer_s"]
                samples["total_s"] += result["total_s"]
                if round_index == 0 and tag == policies[0][0]:
                    official_tokens = result["tokens"]
            for rng in ("reference", "per-image"):
                print(f"bench_vs_official: {cfg['name']}: round {round_index + 1}/{args.rounds}: varbench, {rng} RNG",
                      file=sys.stderr)
                t, td, tokens = varbench_times(cfg, work, args, rng, sampling)
                row[rng].setdefault("transformer_s", []).extend(t)
                row[rng].setdefault("with_decode_s", []).extend(td)
                if rng == "reference" and round_index == 0:
                    differ, total = token_agreement(official_tokens, tokens)
                    row["tokens_differing"], row["tokens_total"] = differ, total
        rows.append(row)

    torch_version = rows[0]["official"][policies[0][0]]["torch"] if rows else "?"
    print(f"\nofficial code on torch {torch_version} ({sys.executable}), varbench {args.build}/varbench; "
          f"{args.threads} threads; medians of {args.rounds} rounds x {args.repeats} generations, sides alternating, "
          "each after one warm-up; fp32, CPU\n")
    head = ["config"]
    for tag, _ in policies:
        head.append(f"official transformer s (OMP {tag})")
    head += ["varbench transformer s (reference RNG)", "varbench transformer s (per-image RNG)"]
    head += [f"ratio vs OMP {tag}" for tag, _ in policies]
    head += [f"official img/s with decode (OMP {tag})" for tag, _ in policies]
    head += ["varbench img/s with decode (per-image)", "tokens identical (reference RNG)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        med = {tag: statistics.median(r["official"][tag]["transformer_s"]) for tag, _ in policies}
        med_total = {tag: statistics.median(r["official"][tag]["total_s"]) for tag, _ in policies}
        ours = statistics.median(r["per-image"]["transformer_s"])
        cells = [r["config"]] + [f"{med[t]:.2f}" for t, _ in policies]
        cells += [f"{statistics.median(r['reference']['transformer_s']):.2f}", f"{ours:.2f}"]
        cells += [f"{med[t] / ours:.2f}x" for t, _ in policies]
        cells += [f"{r['batch'] / med_total[t]:.3f}" for t, _ in policies]
        cells += [f"{r['batch'] / statistics.median(r['per-image']['with_decode_s']):.3f}"]
        cells += ["yes" if r["tokens_differing"] == 0 else f"no: {r['tokens_differing']} of {r['tokens_total']} differ"]
        print("| " + " | ".join(cells) + " |")
    print("\nratio: the official transformer time over varbench's (per-image RNG, its sweep default); the reference-RNG "
          "column runs varbench's bit-exact path on the official generator's draws")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rounds": args.rounds, "repeats": args.repeats, "rows": rows}, f, indent=2)
    if not args.work:
        import shutil
        shutil.rmtree(work_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
