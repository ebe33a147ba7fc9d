#!/usr/bin/python3
"""Writes the fixtures of varbench's metric tests into OUT_DIR/inception (the test run regenerates them):

* a FID Inception with random weights in pytorch-fid's key layout (torchvision 0.14's Inception3 with
  the FID blocks patched in, num_batches_tracked counters included), saved in torch's legacy (pre-zip)
  format as pt_inception-2015-12-05-6726825d.pth is, and converted with scripts/convert_checkpoint.py;
* images, and what the PyTorch reference computes from them under both preprocessing profiles
  (preprocessed input, pool3, unbiased logits, sFID spatial features);
* random features, and the FID/sFID, Inception Score, precision/recall and KID of them computed with
  numpy/scipy implementations of the reference tools' formulas (metrics_reference.py);
* PNG folders, .npz files and a small result file layout for the CLI tests.

    /usr/bin/python3 tests/reference/make_inception_fixtures.py OUT_DIR
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import convert_checkpoint  # noqa: E402
import inception_metrics_reference as mref  # noqa: E402
import inception_reference as iref  # noqa: E402
import safetensors_io  # noqa: E402

PARITY_THREADS = 2  # tests/test_support.h: kParityThreads
PROFILES = ("adm", "pytorch-fid")


def smooth_images(rng, n, h, w):
    """Images with both structure (gradients, blobs) and noise, so that resizing matters."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        img = np.zeros((h, w, 3))
        for c in range(3):
            fy, fx, phase = rng.uniform(0.02, 0.3, 2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] = 127 + 90 * np.sin(fy * yy + fx * xx + phase)
        img += rng.normal(0, 25, size=img.shape)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def write_png_folder(path, images):
    from PIL import Image  # python3-pil comes with python3-torchvision

    os.makedirs(path, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(os.path.join(path, f"{i:05d}.png"))


def reference_features(net, images, profile):
    x = iref.preprocess(torch.from_numpy(images), profile)
    pool3, logits, spatial = iref.features(net, x)
    return x, pool3, logits, spatial


def main(out_dir):
    out = os.path.join(out_dir, "inception")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(PARITY_THREADS)
    rng = np.random.default_rng(20240611)
    fx = {}

    # ---- network: random weights, legacy .pth, converted safetensors -----------------------------
    net = iref.randomize_(iref.build_fid_inception(), seed=7)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    pth = os.path.join(out, "inception_random.pth")
    torch.save(state, pth, _use_new_zipfile_serialization=False)
    with open(pth, "rb") as f:
        assert f.read(2) == b"\x80\x02", "expected torch's legacy (pickle protocol 2) format"
    convert_checkpoint.main([pth, os.path.join(out, "inception_random.safetensors")])

    # ---- parity: images -> features under both profiles ------------------------------------------
    batch = smooth_images(rng, 3, 256, 256)
    small = smooth_images(rng, 1, 48, 64)  # upsampled, non-square
    fx["batch.images"] = torch.from_numpy(batch)
    fx["small.images"] = torch.from_numpy(small)
    for profile in PROFILES:
        for name, imgs in (("batch", batch), ("small", small)):
            x, pool3, logits, spatial = reference_features(net, imgs, profile)
            fx[f"{name}.{profile}.input"] = x
            fx[f"{name}.{profile}.pool3"] = pool3
            fx[f"{name}.{profile}.logits"] = logits
            fx[f"{name}.{profile}.spatial"] = spatial

    # ---- CLI inputs: two small sets as PNG folders and ADM-style .npz -------------------------------
    set_a = smooth_images(rng, 5, 64, 64)
    set_b = smooth_images(rng, 6, 64, 64)
    write_png_folder(os.path.join(out, "png_a"), set_a)
    np.savez(os.path.join(out, "set_a.npz"), arr_0=set_a)
    np.savez(os.path.join(out, "set_b.npz"), arr_0=set_b)
    fx["cli.set_a"] = torch.from_numpy(set_a)
    fx["cli.set_b"] = torch.from_numpy(set_b)
    feats = {}
    for name, imgs in (("a", set_a), ("b", set_b)):
        _, pool3, logits, spatial = reference_features(net, imgs, "adm")
        feats[name] = (pool3.double().numpy(), logits.double().numpy(), spatial.double().numpy())
    na, nb = len(set_a), len(set_b)
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    fx["cli.fid_ab"] = f64(mref.fid_symmetric(*mref.gaussian(feats["b"][0]), *mref.gaussian(feats["a"][0]), nb, na))
    fx["cli.sfid_ab"] = f64(mref.fid_symmetric(*mref.gaussian(feats["b"][2]), *mref.gaussian(feats["a"][2]), nb, na))
    fx["cli.is_b"] = f64(mref.inception_score_adm(feats["b"][1])[0])
    fx["cli.pr_ab"] = f64(mref.precision_recall(feats["a"][0], feats["b"][0]))
    # An ADM-style reference batch: images (set A) and stored statistics (here those of set B's features).
    (mu, sigma), (mu_s, sigma_s) = mref.gaussian(feats["b"][0]), mref.gaussian(feats["b"][2])
    np.savez(os.path.join(out, "adm_like.npz"), arr_0=set_a, mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    # pytorch-fid --save-stats output: compressed, mu and sigma only.
    np.savez_compressed(os.path.join(out, "pytorch_fid_stats.npz"), mu=mu, sigma=sigma)
    # Bad inputs for the CLI error tests.
    np.savez(os.path.join(out, "bad_no_arr0.npz"), images=set_a)
    np.savez(os.path.join(out, "bad_float.npz"), arr_0=set_a.astype(np.float32))
    np.savez(os.path.join(out, "bad_gray.npz"), arr_0=set_a[..., 0])
    np.savez(os.path.join(out, "bad_one.npz"), arr_0=set_a[:1])

    # ---- metrics on random features vs numpy/scipy -------------------------------------------------
    fx.update(mref.make_metric_fixtures(np.random.default_rng(99)))

    safetensors_io.save(os.path.join(out, "fixtures.safetensors"),
                        {k: (v if isinstance(v, torch.Tensor) else torch.tensor(v)).contiguous() for k, v in fx.items()},
                        metadata={"torch": torch.__version__})
    print(f"{out}: {len(fx)} fixture tensors")


if __name__ == "__main__":
    main(sys.argv[1])
