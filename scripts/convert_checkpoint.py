#!/usr/bin/python3
"""Convert an official PyTorch checkpoint (.pth) into safetensors with the same keys and dtypes.

Handles the VAR transformers (var_d16..d36.pth), the VQVAE (vae_ch160v4096z32.pth), CoDe's
drafter_N/refiner_N.pth, and pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth,
torch's legacy pre-zip format). Checkpoints are untrusted input: they are read with
torch.load(weights_only=True), which refuses pickled code; nothing else is unpickled. varbench's C++
loader reads only the safetensors output. python3-torch 1.13 reads the legacy format with
weights_only=True (tests/reference/make_inception_fixtures.py writes a legacy-format Inception in
pytorch-fid's layout and converts it with this script on every test run).

Run with Debian's python3-torch: /usr/bin/python3 scripts/convert_checkpoint.py IN.pth OUT.safetensors
"""
import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the restricted unpickler names what it refused
        raise SystemExit(f"{path}: cannot load with weights_only=True: {e}")
    # Some training checkpoints wrap the weights; the official release files are plain state dicts.
    for wrapper in ("state_dict", "model", "trainer"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict) and not isinstance(obj[wrapper], torch.Tensor):
            inner = obj[wrapper]
            if all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: not a state dict (a {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise SystemExit(f"{path}: entries that are not tensors: {', '.join(map(str, bad[:10]))}")
    return {str(k): v for k, v in obj.items()}


def describe(sd):
    if "word_embed.weight" in sd:
        depth = len({int(m.group(1)) for k in sd for m in [re.match(r"blocks\.(\d+)\.", k)] if m})
        width = sd["word_embed.weight"].shape[0]
        return f"VAR transformer: depth {depth}, width {width}, {sum(v.numel() for k, v in sd.items() if k not in ('lvl_1L', 'attn_bias_for_masking') and 'zero_k_bias' not in k):,} parameters"
    if "quantize.embedding.weight" in sd:
        return f"VQVAE: codebook {tuple(sd['quantize.embedding.weight'].shape)}"
    if any(k.startswith("Mixed_7c") for k in sd):
        counters = sum(k.endswith(".num_batches_tracked") for k in sd)
        fc = tuple(sd["fc.weight"].shape) if "fc.weight" in sd else None
        return (f"Inception-v3 (FID): fc {fc}, {counters} BatchNorm num_batches_tracked counters "
                "(kept in the file; varbench's loader ignores them)")
    return "unknown model"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="official .pth checkpoint (zip or legacy format)")
    ap.add_argument("output", help="output .safetensors")
    args = ap.parse_args(argv)
    sd = load_state_dict(args.input)
    safetensors_io.save(args.output, sd, metadata={"source": os.path.basename(args.input), "format": "pt"})
    print(f"{args.output}: {len(sd)} tensors, {describe(sd)}")


if __name__ == "__main__":
    main()
