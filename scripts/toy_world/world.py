"""The toy world: a procedural, class-conditional image generator, deterministic from (seed, index).

A class is a shape x colour x pattern combination (4 x 4 x 2 = 32 classes). Within a class an image varies
in the number of objects (1-3), their position, size and rotation, the exact hue and brightness of the
colour, the stripe direction and period, and the background (a random two-tone gradient with grain). That
is enough variety that a two-block transformer renders it measurably worse than a six-block one, and little
enough that both can be trained on two CPU cores in minutes.

Only numpy is needed. Every random draw is a uniform double from one PCG64 stream per image, seeded by
SeedSequence([seed, index]), so an image depends on nothing but (seed, index, label) and can be made in any
order, in any process.

    python3 scripts/toy_world/world.py --preview grid.png      # 8 images of each of 8 classes
"""
import argparse
import zlib
import struct

import numpy as np

IMAGE_PX = 64          # the VQVAE down-samples 4x: 64 px -> the 16 x 16 top token map
SUPERSAMPLE = 4        # edges are anti-aliased by rendering at 4x and averaging 4 x 4 blocks

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {             # base RGB in [0, 1]; each image jitters hue (by mixing) and brightness
    "red": (0.86, 0.16, 0.14),
    "green": (0.15, 0.70, 0.22),
    "blue": (0.16, 0.30, 0.88),
    "yellow": (0.93, 0.82, 0.12),
}
PATTERNS = ("solid", "striped")
NUM_CLASSES = len(SHAPES) * len(COLOURS) * len(PATTERNS)


def class_name(label):
    """'circle/red/solid' for label 0; labels run pattern fastest, then colour, then shape."""
    shape, rest = divmod(int(label), len(COLOURS) * len(PATTERNS))
    colour, pattern = divmod(rest, len(PATTERNS))
    return f"{SHAPES[shape]}/{list(COLOURS)[colour]}/{PATTERNS[pattern]}"


def class_parts(label):
    if not 0 <= int(label) < NUM_CLASSES:
        raise ValueError(f"toy world: class {label} out of range [0, {NUM_CLASSES})")
    shape, rest = divmod(int(label), len(COLOURS) * len(PATTERNS))
    colour, pattern = divmod(rest, len(PATTERNS))
    return shape, colour, pattern


class _Uniforms:
    """Uniform doubles in [0, 1) from the image's own stream (only `random()` is used: its stream is the
    same in every numpy since 1.17, whereas other Generator methods may change between versions)."""

    def __init__(self, seed, index):
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index)])))

    def __call__(self, lo=0.0, hi=1.0):
        return lo + (hi - lo) * float(self._rng.random())

    def field(self, shape):
        return self._rng.random(shape)


def _grid():
    n = IMAGE_PX * SUPERSAMPLE
    c = (np.arange(n, dtype=np.float64) + 0.5) / SUPERSAMPLE  # pixel-unit coordinates of sample centres
    return np.meshgrid(c, c, indexing="xy")


_X, _Y = _grid()


def _inside(shape, cx, cy, size, angle):
    """Boolean mask of the supersampled grid inside one object; `size` is its circumradius in pixels."""
    ca, sa = np.cos(angle), np.sin(angle)
    u = (_X - cx) * ca + (_Y - cy) * sa      # object frame
    v = -(_X - cx) * sa + (_Y - cy) * ca
    if shape == "circle":
        return u * u + v * v <= size * size
    if shape == "square":
        h = size / np.sqrt(2.0)
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if shape == "triangle":  # equilateral, circumradius `size`: inside all three edge half-planes
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = np.pi / 2 + 2 * np.pi * k / 3 + np.pi  # outward normal of edge k
            inside &= u * np.cos(a) + v * np.sin(a) <= size / 2
        return inside
    if shape == "cross":
        arm = size * 0.36
        return ((np.abs(u) <= size) & (np.abs(v) <= arm)) | ((np.abs(v) <= size) & (np.abs(u) <= arm))
    raise ValueError(shape)


def render(seed, index, label):
    """One image of class `label`: uint8 [IMAGE_PX, IMAGE_PX, 3]."""
    shape_i, colour_i, pattern_i = class_parts(label)
    draw = _Uniforms(seed, index)

    # Background: a two-tone gradient in muted, desaturated tones along a random direction, plus grain.
    tone_a = np.array([draw(0.25, 0.75) for _ in range(3)])
    tone_b = np.array([draw(0.25, 0.75) for _ in range(3)])
    grey_a, grey_b = tone_a.mean(), tone_b.mean()
    tone_a = 0.35 * tone_a + 0.65 * grey_a  # desaturate so that the object colour stays the class cue
    tone_b = 0.35 * tone_b + 0.65 * grey_b
    direction = draw(0.0, 2 * np.pi)
    t = ((_X - IMAGE_PX / 2) * np.cos(direction) + (_Y - IMAGE_PX / 2) * np.sin(direction)) / IMAGE_PX + 0.5
    t = np.clip(t, 0.0, 1.0)[..., None]
    canvas = (1 - t) * tone_a + t * tone_b

    # Objects: 1-3 of the class, placed with a few tries to keep them apart.
    base = np.array(COLOURS[list(COLOURS)[colour_i]])
    count = 1 + int(draw() * 3)
    placed = []
    for _ in range(count):
        size = draw(7.0, 13.0) if count > 1 else draw(10.0, 17.0)
        for _attempt in range(8):
            cx, cy = draw(size, IMAGE_PX - size), draw(size, IMAGE_PX - size)
            if all((cx - px) ** 2 + (cy - py) ** 2 >= (size + ps) ** 2 * 0.8 for px, py, ps in placed):
                break
        placed.append((cx, cy, size))
        angle = draw(0.0, 2 * np.pi)
        brightness = draw(0.8, 1.1)
        tint = np.array([draw(-0.06, 0.06) for _ in range(3)])
        colour = np.clip(base * brightness + tint, 0.0, 1.0)
        mask = _inside(SHAPES[shape_i], cx, cy, size, angle)
        fill = np.broadcast_to(colour, canvas.shape).copy()
        if PATTERNS[pattern_i] == "striped":
            stripe_dir = draw(0.0, np.pi)
            period = draw(7.0, 10.0)  # bands of 3.5-5 px: wider than the VQVAE's 4 px token footprint
            phase = ((_X * np.cos(stripe_dir) + _Y * np.sin(stripe_dir)) / period) % 1.0
            dark = phase < 0.5
            fill[dark] = colour * 0.35
        canvas[mask] = fill[mask]

    grain = (draw.field((IMAGE_PX, IMAGE_PX, 1)) - 0.5) * 0.03
    n = SUPERSAMPLE
    image = canvas.reshape(IMAGE_PX, n, IMAGE_PX, n, 3).mean(axis=(1, 3)) + grain
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def label_of(index):
    """The class of image `index` in a class-balanced set: index modulo the number of classes."""
    return int(index) % NUM_CLASSES


def images_at(seed, indices, labels=None):
    """uint8 [len(indices), IMAGE_PX, IMAGE_PX, 3] and int64 labels [len(indices)] for the images at the given
    indices (labels: class-balanced by index unless given)."""
    indices = [int(i) for i in indices]
    if labels is None:
        labels = [label_of(i) for i in indices]
    out = np.empty((len(indices), IMAGE_PX, IMAGE_PX, 3), dtype=np.uint8)
    for k, i in enumerate(indices):
        out[k] = render(seed, i, labels[k])
    return out, np.asarray(labels, dtype=np.int64)


def images(seed, start, count, labels=None):
    """images_at for images start .. start + count - 1."""
    return images_at(seed, range(start, start + count), labels)


def write_png(path, rgb):
    """A minimal RGB PNG writer (no Pillow needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def tile(batch, columns):
    rows = -(-len(batch) // columns)
    grid = np.full((rows * IMAGE_PX, columns * IMAGE_PX, 3), 255, dtype=np.uint8)
    for k, im in enumerate(batch):
        r, c = divmod(k, columns)
        grid[r * IMAGE_PX:(r + 1) * IMAGE_PX, c * IMAGE_PX:(c + 1) * IMAGE_PX] = im
    return grid


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preview", metavar="PNG", required=True, help="write a grid of sample images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, nargs="*", default=[0, 1, 6, 11, 13, 18, 25, 30])
    parser.add_argument("--per-class", type=int, default=8)
    args = parser.parse_args()
    batch = []
    for label in args.classes:
        for k in range(args.per_class):
            batch.append(render(args.seed, label * 1000 + k, label))
    write_png(args.preview, tile(batch, args.per_class))
    print(f"{args.preview}: rows are " + ", ".join(class_name(c) for c in args.classes))


if __name__ == "__main__":
    main()
