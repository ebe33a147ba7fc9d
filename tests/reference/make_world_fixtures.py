#!/usr/bin/python3
"""Writes the fixtures of the toy world's metric tests into OUT_DIR/world (the test run regenerates them):

* world-features.safetensors: the feature network of scripts/toy_world/train.py (WorldFeatures, narrow
  widths) with seeded random weights, in its state_dict key layout, with the image_size metadata;
* images.npz: 24 world images (arr_0, uint8 NHWC) and their labels;
* expected.safetensors: what PyTorch computes from them: features and logits;
* reference.npz: features, logits and labels of 64 other world images (a small world reference set).

    /usr/bin/python3 tests/reference/make_world_fixtures.py OUT_DIR
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "toy_world"))
import safetensors_io  # noqa: E402
import train  # noqa: E402
import world  # noqa: E402

PARITY_THREADS = 2  # tests/test_support.h: kParityThreads


def main():
    out = os.path.join(sys.argv[1], "world")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(PARITY_THREADS)
    torch.manual_seed(5)
    net = train.WorldFeatures((8, 16, 24), world.NUM_CLASSES).eval()
    meta = {"torch": torch.__version__, "image_size": str(world.IMAGE_PX)}
    safetensors_io.save(os.path.join(out, "world-features.safetensors"), train.state_of(net), metadata=meta)
    images, labels = world.images(seed=7, start=0, count=24)
    np.savez(os.path.join(out, "images.npz"), arr_0=images, labels=labels)
    with torch.no_grad():
        x = train.to_model_range(images)
        features = net.features(x)
        logits = net.fc(features)
        ref_images, ref_labels = world.images(seed=8, start=0, count=64)
        ref_features = net.features(train.to_model_range(ref_images))
        ref_logits = net.fc(ref_features)
    safetensors_io.save(os.path.join(out, "expected.safetensors"), {"features": features, "logits": logits}, metadata=meta)
    np.savez(os.path.join(out, "reference.npz"), features=ref_features.numpy(), logits=ref_logits.numpy(),
             labels=ref_labels.astype(np.int64))
    print(f"world fixtures -> {out}")


if __name__ == "__main__":
    main()
