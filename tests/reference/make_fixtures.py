#!/usr/bin/python3
"""Writes the parity fixtures of varbench's model tests into OUT_DIR (the test run regenerates them;
they are too large to commit): small random models in the official key layout, and what the PyTorch
reference computes with them.

    /usr/bin/python3 tests/reference/make_fixtures.py OUT_DIR
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import safetensors_io  # noqa: E402
import var_reference as ref  # noqa: E402

PARITY_THREADS = 2  # tests/test_support.h: kParityThreads


def state(module):
    return {k: v.detach().contiguous() for k, v in module.state_dict().items()}


def random_tokens(sides, batch, seed, vocab=4096):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (batch, s * s), generator=g) for s in sides]


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    # The VQVAE's oneDNN convolutions round differently with the thread count; the C++ tests pin the same.
    torch.set_num_threads(PARITY_THREADS)
    torch.manual_seed(0)
    fx = {}

    var = ref.VAR(depth=2).eval()
    ref.randomize_(var, seed=1)
    vae = ref.VQVAE(ch=32).eval()
    ref.randomize_(vae, seed=3)
    var512 = ref.VAR(depth=2, px=512, shared_adaln=True).eval()
    ref.randomize_(var512, seed=2)
    safetensors_io.save(os.path.join(out_dir, "var_d2.safetensors"), state(var))
    safetensors_io.save(os.path.join(out_dir, "vqvae_ch32.safetensors"), state(vae))
    safetensors_io.save(os.path.join(out_dir, "var_d2_shared512.safetensors"), state(var512))
    refiner = ref.VAR(depth=3).eval()  # a different model for CoDe's refiner
    ref.randomize_(refiner, seed=6)
    safetensors_io.save(os.path.join(out_dir, "var_d3.safetensors"), state(refiner))
    # The same weights as official-style .pth files, zip and legacy format, for the converter's test.
    torch.save(state(var), os.path.join(out_dir, "var_d2.pth"))
    torch.save(state(var), os.path.join(out_dir, "var_d2_legacy.pth"), _use_new_zipfile_serialization=False)
    sides = var.sides

    with torch.no_grad():
        # Teacher-forced logits of the training forward (block-causal mask), from fixed tokens.
        labels = torch.tensor([3, 981])
        tokens = random_tokens(sides, 2, seed=4)
        inputs = vae.var_inputs(tokens, sides)
        fx["tf.labels"] = labels
        fx["tf.inputs"] = inputs
        fx["tf.logits"] = var.teacher_forced_logits(labels, inputs)
        for s, t in enumerate(tokens):
            fx[f"tf.tokens.{s}"] = t

        # The same tokens through the cached, guided loop: guided logits at every scale, and the image.
        _, guided, f_hat = ref.generate(var, vae, labels, seed=0, cfg=1.5, top_k=0, top_p=0.0, forced_tokens=tokens)
        for s, g in enumerate(guided):
            fx[f"cached.logits.{s}"] = g
        fx["decode.fhat"] = f_hat
        fx["decode.image"] = vae.decode(f_hat)

        # 512 px schedule with a shared AdaLN (the VAR-d36-s layout), teacher-forced.
        g = torch.Generator().manual_seed(5)
        inputs512 = torch.randn(1, var512.L - 1, 32, generator=g)
        fx["tf512.labels"] = torch.tensor([7])
        fx["tf512.inputs"] = inputs512
        fx["tf512.logits"] = var512.teacher_forced_logits(fx["tf512.labels"], inputs512)

        # Reference-RNG sampling: VAR demo style, and CoDe FID style (top-k 600, temperature per scale).
        runs = {
            "sample_var": dict(labels=[5, 17, 5, 999], seed=7, cfg=4.0, top_k=900, top_p=0.95, temperature=1.0),
            "sample_code": dict(labels=[1, 2], seed=3, cfg=1.5, top_k=[600] * 10, top_p=0.96, temperature=[1.1] * 7 + [1.0] * 3),
            "sample_smooth": dict(labels=[9], seed=11, cfg=1.5, top_k=900, top_p=0.96, temperature=1.0, more_smooth=True),
        }
        for name, r in runs.items():
            lab = torch.tensor(r.pop("labels"))
            toks, _, f_hat = ref.generate(var, vae, lab, **r)
            fx[f"{name}.labels"] = lab
            for s, t in enumerate(toks):
                fx[f"{name}.tokens.{s}"] = t
            fx[f"{name}.image"] = vae.decode(f_hat)

        # CoDe (drafter d2, refiner d3) with the official sampler's settings, N = 4 and 7.
        code_settings = dict(cfg=1.5, top_k=[600] * 10, top_p=0.96, temperature=[1.1] * 7 + [1.0] * 3)
        for n in (4, 7):
            lab = torch.tensor([12, 500])
            toks, f_hat = ref.code_generate(var, refiner, vae, lab, n, seed=5, **code_settings)
            fx[f"code{n}.labels"] = lab
            for s, t in enumerate(toks):
                fx[f"code{n}.tokens.{s}"] = t
            fx[f"code{n}.fhat"] = f_hat

        # Residual quantisation of a fixed image (the decoded one, a realistic input range).
        enc = vae.encode_tokens(fx["decode.image"], sides)
        fx["encode.image"] = fx["decode.image"]
        for s, t in enumerate(enc):
            fx[f"encode.tokens.{s}"] = t

    safetensors_io.save(os.path.join(out_dir, "fixtures.safetensors"), fx, metadata={"torch": torch.__version__})
    print(f"{out_dir}: fixtures written ({len(fx)} tensors)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out"))
