#!/usr/bin/env python3
"""Trains the toy world's models from scratch, with fixed seeds, on the CPU:

  1. vqvae     a narrow multi-scale residual VQVAE (official VAR layout; 64 px images -> 16 x 16 top map)
  2. tokens    the training images encoded once to their 10-scale token maps
  3. large     a VAR transformer on the cached tokens (teacher forcing under the block-causal mask, 10%
     small     class dropout for classifier-free guidance), the drafter and the refiner of CoDe
  4. features  a small CNN classifier of the world's classes: its penultimate layer is the feature space of
               `--features world` (FD, KID, precision/recall), its logits the class accuracy
  5. reference the feature network's features, logits and labels of 2048 held-out world images (the reference
               set of the world metrics), and the held-out accuracy and VQVAE reconstruction error

Every stage writes its safetensors (the official key layout, so varbench's strict loaders read them) and a
JSON log of its training curve into --out; `--stages` reruns only some. `--smoke` shrinks everything to a
few steps (the test that keeps this script from rotting).

    .venv-torch2/bin/python scripts/toy_world/train.py --out models/toy-world    # ~50 min on 2 cores
    /usr/bin/python3 scripts/toy_world/train.py --out /tmp/tw --smoke            # seconds

The committed models were made by the first command (torch 2.x lane, `scripts/setup --torch pip`); Debian's
torch 1.13 runs the same script about 2x slower per step. Seeds fix the data order, initialisation and
dropout, but not the floating-point reduction order of another torch or CPU: a retraining elsewhere gives
models of the same quality, not the same bytes.
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
# The Python VAR/VQVAE of the parity tests: the official module and key structure, so that what is trained
# here loads into varbench exactly as an official checkpoint does.
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import safetensors_io  # noqa: E402
import var_reference as ref  # noqa: E402
import world  # noqa: E402

SIDES = ref.PATCH_SIDES[256]  # the official 10-scale schedule 1..16 (680 tokens)


# ----------------------------------------------------------------------------------------------------------
# Configuration
CONFIGS = {
    # name: settings (the full run, then the --smoke overrides). Sized for ~50 minutes on 2 cores with the
    # torch-2.x lane (seconds per step measured there: vqvae ~0.9, large ~1.8, small ~0.6, features ~0.2 after
    # making its image pool).
    "vqvae": dict(ch=32, ch_mult=(1, 2, 2), blocks=1, vocab=256, code_dim=16, steps=800, batch=16, lr=1e-3, beta=0.25),
    "large": dict(depth=6, width=128, heads=4, steps=1000, batch=16, lr=1.5e-3, class_dropout=0.1),
    "small": dict(depth=2, width=128, heads=4, steps=1000, batch=16, lr=1.5e-3, class_dropout=0.1),
    "features": dict(channels=(16, 32, 64, 128), steps=3500, batch=64, lr=2e-3, pool=12288),
    "data": dict(train_images=8192, seed=0, eval_seed=1, reference_images=2048),
}
SMOKE = {
    "vqvae": dict(steps=3, batch=4),
    "large": dict(steps=2, batch=2),
    "small": dict(steps=2, batch=2),
    "features": dict(steps=3, batch=8, pool=16),
    "data": dict(train_images=8),
}


def to_model_range(images_uint8):
    """uint8 NHWC -> float NCHW in [-1, 1], the VQVAE's input range."""
    return torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class Log:
    """A stage's training curve: (step, values) every few steps, printed and kept for the JSON log."""

    def __init__(self, stage, every):
        self.stage, self.every, self.rows, self.t0 = stage, every, [], time.time()

    def __call__(self, step, last, **values):
        if step % self.every and not last:
            return
        row = {"step": step, "seconds": round(time.time() - self.t0, 1)}
        row.update({k: round(float(v), 5) for k, v in values.items()})
        self.rows.append(row)
        print(f"[{self.stage}] " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def cosine_lr(optimizer, base_lr, step, steps, warmup):
    lr = base_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    for g in optimizer.param_groups:
        g["lr"] = lr


# ----------------------------------------------------------------------------------------------------------
# Stage 1: the VQVAE
def quantize_for_training(vae, f, beta):
    """The multi-scale residual quantisation as VAR trains it: each scale quantises the area-downsampled
    residual, its codes (bicubic-upsampled, through the scale's Phi) accumulate into f_hat; the loss pulls
    f_hat towards f (codebook and Phi) and f towards f_hat (commitment, weighted by beta); the decoder sees
    f_hat with a straight-through gradient to the encoder. Returns (f_hat, vq loss, tokens per scale)."""
    B, C, H, W = f.shape
    f_const = f.detach()
    rest = f_const.clone()
    f_hat = torch.zeros_like(f)
    codebook = vae.quantize.embedding.weight
    vq_loss = f.new_zeros(())
    tokens = []
    last = len(SIDES) - 1
    for s, side in enumerate(SIDES):
        z = F.interpolate(rest, size=(side, side), mode="area") if s != last else rest
        z = z.permute(0, 2, 3, 1).reshape(-1, C)
        with torch.no_grad():
            d = z.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * z @ codebook.T
            idx = d.argmin(1)
        h = codebook[idx].view(B, side, side, C).permute(0, 3, 1, 2)
        if s != last:
            h = F.interpolate(h, size=(H, W), mode="bicubic")
        h = vae.quantize.quant_resi.at_scale(s)(h)
        f_hat = f_hat + h
        rest = rest - h.detach()
        vq_loss = vq_loss + beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_const)
        tokens.append(idx.view(B, side * side))
    return (f_hat.detach() - f_const) + f, vq_loss / len(SIDES), tokens


def train_vqvae(cfg, data, log_every):
    torch.manual_seed(1)
    vae = ref.VQVAE(ch=cfg["ch"], ch_mult=cfg["ch_mult"], vocab=cfg["vocab"], code_dim=cfg["code_dim"], blocks=cfg["blocks"])
    with torch.no_grad():  # a small codebook init; dead codes are re-seeded from encoder outputs below
        vae.quantize.embedding.weight.uniform_(-1.0 / cfg["vocab"], 1.0 / cfg["vocab"])
    opt = torch.optim.Adam(vae.parameters(), lr=cfg["lr"], betas=(0.9, 0.95))
    gen = np.random.Generator(np.random.PCG64(101))
    usage = torch.zeros(cfg["vocab"])
    log = Log("vqvae", log_every)
    for step in range(cfg["steps"]):
        cosine_lr(opt, cfg["lr"], step, cfg["steps"], warmup=100)
        pick = gen.integers(0, data["train_images"], cfg["batch"])
        x = to_model_range(world.images_at(data["seed"], pick)[0])
        f = vae.quant_conv(vae.encoder(x))
        f_hat, vq_loss, tokens = quantize_for_training(vae, f, cfg["beta"])
        recon = vae.decoder(vae.post_quant_conv(f_hat))
        rec_loss = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = rec_loss + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            usage.mul_(0.99).add_(torch.bincount(torch.cat(tokens, 1).flatten(), minlength=cfg["vocab"]).float())
            # Re-seed codes unused for a while with random encoder outputs at the finest scale: without it a
            # small codebook trained from scratch collapses to a few dozen codes.
            if step % 50 == 49 and step < cfg["steps"] * 0.8:
                dead = (usage < 1e-3).nonzero().flatten()
                if len(dead):
                    z = f.detach().permute(0, 2, 3, 1).reshape(-1, f.shape[1])
                    vae.quantize.embedding.weight[dead] = z[torch.randint(0, len(z), (len(dead),))]
                    usage[dead] = 1.0
        log(step, step == cfg["steps"] - 1, loss=loss.item(), rec_l1=F.l1_loss(recon, x).item(),
            vq=vq_loss.item(), codes_used=int((usage > 1e-3).sum()))
    vae.eval()
    return vae, log.rows


# ----------------------------------------------------------------------------------------------------------
# Stage 2: tokens of the training set
@torch.no_grad()
def encode_training_set(vae, data, chunk=64):
    tokens = [[] for _ in SIDES]
    for start in range(0, data["train_images"], chunk):
        count = min(chunk, data["train_images"] - start)
        x = to_model_range(world.images(data["seed"], start, count)[0])
        for s, t in enumerate(vae.encode_tokens(x, SIDES)):
            tokens[s].append(t.to(torch.int16))
    labels = torch.tensor([world.label_of(i) for i in range(data["train_images"])], dtype=torch.int64)
    return [torch.cat(t) for t in tokens], labels


# ----------------------------------------------------------------------------------------------------------
# Stage 3: the transformers
def init_var_(var, seed):
    """Initialisation in the spirit of the official `init_weights` (not a copy of it): small normal weights,
    zero biases, a head scaled down, AdaLN projections that start each block close to the identity."""
    g = torch.Generator().manual_seed(seed)
    std = math.sqrt(1.0 / var.width / 3)
    with torch.no_grad():
        for name, p in var.named_parameters():
            if name.endswith("scale_mul_1H11"):
                p.fill_(math.log(4.0))
            elif name.endswith("bias") or name in ("pos_start",):
                p.zero_()
            elif name == "pos_1LC" or name.startswith("lvl_embed") or name.startswith("class_emb"):
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name == "head.weight":
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            elif ".ada_lin.1.weight" in name or name == "head_nm.ada_lin.1.weight":
                p.copy_(torch.randn(p.shape, generator=g) * std * 0.5)
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)
        for block in var.blocks:  # the residual gammas (first 2 of the 6 AdaLN chunks) start near zero
            block.ada_lin[1].weight[: 2 * var.width].mul_(1e-3)


def train_var(name, cfg, vae, tokens, labels, num_classes, log_every, seed):
    torch.manual_seed(seed)
    var = ref.VAR(depth=cfg["depth"], width=cfg["width"], heads=cfg["heads"], num_classes=num_classes,
                  vocab=vae.quantize.embedding.num_embeddings, code_dim=vae.code_dim)
    init_var_(var, seed)
    decays = lambda n, p: p.dim() >= 2 and "pos_" not in n and "emb" not in n  # noqa: E731 (matrices only)
    decay = [p for n, p in var.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in var.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg["lr"], betas=(0.9, 0.95))
    gen = np.random.Generator(np.random.PCG64(seed))
    log = Log(name, log_every)
    n = len(labels)
    V = var.vocab
    for step in range(cfg["steps"]):
        cosine_lr(opt, cfg["lr"], step, cfg["steps"], warmup=100)
        pick = torch.from_numpy(gen.integers(0, n, cfg["batch"]))
        batch_tokens = [t[pick].long() for t in tokens]
        batch_labels = labels[pick].clone()
        drop = torch.from_numpy(gen.random(cfg["batch"]) < cfg["class_dropout"])
        batch_labels[drop] = num_classes  # the unconditional class
        with torch.no_grad():
            inputs = vae.var_inputs(batch_tokens, SIDES)
        logits = var.teacher_forced_logits(batch_labels, inputs)
        target = torch.cat(batch_tokens, dim=1)
        loss = F.cross_entropy(logits.view(-1, V), target.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(var.parameters(), 2.0)
        opt.step()
        with torch.no_grad():
            last = len(SIDES) - 1
            b = sum(s * s for s in SIDES[:last])
            acc_last = (logits[:, b:].argmax(-1) == target[:, b:]).float().mean()
        log(step, step == cfg["steps"] - 1, loss=loss.item(), top1_last_scale=acc_last.item())
    var.eval()
    return var, log.rows


# ----------------------------------------------------------------------------------------------------------
# Stage 4: the feature network
class WorldFeatures(nn.Module):
    """conv3x3+ReLU twice per level, 2x2 max-pool between levels, global average pool: the penultimate
    features; one linear layer: the class logits."""

    def __init__(self, channels, num_classes):
        super().__init__()
        layers, cin = [], 3
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(cin, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.ReLU()]
            if i != len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = c
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x):
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def train_features(cfg, data, log_every):
    torch.manual_seed(3)
    net = WorldFeatures(cfg["channels"], world.NUM_CLASSES)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    log = Log("features", log_every)
    # A pool of images past the VAR training set's indices, with uniform random labels, made once: making
    # images (~6 ms each) would otherwise cost more than the network's steps.
    gen = np.random.Generator(np.random.PCG64(3))
    pool_labels = gen.integers(0, world.NUM_CLASSES, cfg["pool"])
    pool_x, pool_y = world.images_at(data["seed"], range(10_000_000, 10_000_000 + cfg["pool"]), labels=list(pool_labels))
    pool_x, pool_y = to_model_range(pool_x), torch.from_numpy(pool_y)
    for step in range(cfg["steps"]):
        cosine_lr(opt, cfg["lr"], step, cfg["steps"], warmup=50)
        pick = torch.from_numpy(gen.integers(0, cfg["pool"], cfg["batch"]))
        x, y = pool_x[pick], pool_y[pick]
        if gen.random() < 0.5:  # the world is symmetric under mirroring: free variety for the classifier
            x = x.flip(3)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log(step, step == cfg["steps"] - 1, loss=loss.item(), accuracy=(logits.argmax(1) == y).float().mean().item())
    net.eval()
    return net, log.rows


@torch.no_grad()
def reference_features(net, seed, count, chunk=256):
    """Features, logits and labels of `count` held-out world images (seed `seed`, classes i % 32): the
    reference set of FD, precision/recall and KID in the world feature space."""
    feats, logits, labels = [], [], []
    for start in range(0, count, chunk):
        x_u8, y = world.images(seed, start, min(chunk, count - start))
        f = net.features(to_model_range(x_u8))
        feats.append(f)
        logits.append(net.fc(f))
        labels.append(torch.from_numpy(y))
    return torch.cat(feats), torch.cat(logits), torch.cat(labels)


@torch.no_grad()
def vqvae_held_out_error(vae, seed, count=256):
    """Mean absolute reconstruction error on held-out images, in 0..255 pixel units."""
    x = to_model_range(world.images(seed, 0, count)[0])
    f = vae.quant_conv(vae.encoder(x))
    f_hat = quantize_for_training(vae, f, 0.0)[0]
    recon = vae.decoder(vae.post_quant_conv(f_hat)).clamp(-1, 1)
    return ((recon - x).abs().mean() * 127.5).item()


# ----------------------------------------------------------------------------------------------------------
def state_of(module, drop=()):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k not in drop}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (safetensors, logs)")
    parser.add_argument("--stages", nargs="*", default=["vqvae", "tokens", "large", "small", "features", "reference"])
    parser.add_argument("--smoke", action="store_true", help="a few steps of every stage (for the test)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = {k: dict(v) for k, v in CONFIGS.items()}
    if args.smoke:
        for k, v in SMOKE.items():
            cfg[k].update(v)
    log_every = 1 if args.smoke else 50
    os.makedirs(args.out, exist_ok=True)
    path = lambda name: os.path.join(args.out, name)  # noqa: E731
    meta = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "config": cfg}
    curves = {}
    t0 = time.time()

    vae = None
    if "vqvae" in args.stages:
        vae, curves["vqvae"] = train_vqvae(cfg["vqvae"], cfg["data"], log_every)
        safetensors_io.save(path("vqvae.safetensors"), state_of(vae), metadata={"toy_world": "vqvae"})
    if vae is None:
        v = cfg["vqvae"]
        vae = ref.VQVAE(ch=v["ch"], ch_mult=v["ch_mult"], vocab=v["vocab"], code_dim=v["code_dim"], blocks=v["blocks"])
        vae.load_state_dict(safetensors_io.load(path("vqvae.safetensors")))
        vae.eval()

    if "tokens" in args.stages:
        tokens, labels = encode_training_set(vae, cfg["data"])
        torch.save({"tokens": tokens, "labels": labels}, path("train-tokens.pt"))
    if any(s in args.stages for s in ("large", "small")):
        cached = torch.load(path("train-tokens.pt"))
        for seed, name in ((11, "large"), (12, "small")):
            if name in args.stages:
                var, curves[name] = train_var(name, cfg[name], vae, cached["tokens"], cached["labels"],
                                              world.NUM_CLASSES, log_every, seed)
                safetensors_io.save(path(f"var-{name}.safetensors"), state_of(var), metadata={"toy_world": name})

    net = None
    if "features" in args.stages:
        net, curves["features"] = train_features(cfg["features"], cfg["data"], log_every)
        safetensors_io.save(path("world-features.safetensors"), state_of(net),
                            metadata={"toy_world": "features", "image_size": str(world.IMAGE_PX)})
    if "reference" in args.stages:
        if net is None:
            net = WorldFeatures(cfg["features"]["channels"], world.NUM_CLASSES)
            net.load_state_dict(safetensors_io.load(path("world-features.safetensors")))
            net.eval()
        count = 64 if args.smoke else cfg["data"]["reference_images"]
        feats, logits, labels = reference_features(net, cfg["data"]["eval_seed"], count)
        curves["features_held_out_accuracy"] = (logits.argmax(1) == labels).float().mean().item()
        curves["vqvae_held_out_mean_abs_error_px"] = vqvae_held_out_error(vae, cfg["data"]["eval_seed"], 16 if args.smoke else 256)
        np.savez(path("world-reference.npz"), features=feats.numpy().astype(np.float32), logits=logits.numpy().astype(np.float32),
                 labels=labels.numpy().astype(np.int64), seed=np.int64(cfg["data"]["eval_seed"]))
        print(f"[reference] {count} held-out images: feature-net accuracy {curves['features_held_out_accuracy']:.4f}, "
              f"VQVAE mean abs error {curves['vqvae_held_out_mean_abs_error_px']:.2f} px", flush=True)

    meta["seconds"] = round(time.time() - t0, 1)
    meta["curves"] = curves
    with open(path(f"training-log-{'-'.join(args.stages)}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"toy world: stages {', '.join(args.stages)} done in {meta['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
