#!/usr/bin/env python3
"""The toy world's generator (scripts/toy_world/world.py): an image depends on (seed, index, label) only,
whatever the order or batch it is made in; labels are class-balanced by index; classes decode to their parts;
different seeds, indices and classes give different images."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "toy_world"))
import world  # noqa: E402


def main():
    batch, labels = world.images(seed=3, start=30, count=6)
    assert batch.shape == (6, world.IMAGE_PX, world.IMAGE_PX, 3) and batch.dtype == np.uint8, batch.shape
    assert list(labels) == [i % world.NUM_CLASSES for i in range(30, 36)], labels
    shuffled, shuffled_labels = world.images_at(3, [35, 31, 33])
    for j, i in enumerate([35, 31, 33]):
        assert np.array_equal(shuffled[j], batch[i - 30]), f"image {i} depends on the order it is made in"
        assert shuffled_labels[j] == labels[i - 30]
    assert not np.array_equal(world.images(4, 30, 1)[0][0], batch[0]), "the seed does not change the image"
    assert not np.array_equal(batch[0], batch[1]), "two indices give the same image"
    forced, forced_labels = world.images_at(3, [30, 30], labels=[0, 1])
    assert list(forced_labels) == [0, 1] and not np.array_equal(forced[0], forced[1]), "the label does not change the image"
    assert world.NUM_CLASSES == 32 and world.class_name(0) == "circle/red/solid" and world.class_name(31).endswith("striped")
    try:
        world.class_parts(32)
        raise AssertionError("class 32 accepted")
    except ValueError as e:
        assert "out of range" in str(e)
    print("toy world generator: ok")


if __name__ == "__main__":
    main()
