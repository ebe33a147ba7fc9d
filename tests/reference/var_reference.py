"""A PyTorch reference of VAR with the official module and key structure (FoundationVision/VAR
`models/`), written for varbench's parity tests. It reproduces the official computation op for op
(so CPU results are comparable bit for bit with the same libtorch) without the training-only parts
(dropout, drop-path, class dropout, fused kernels). Run with the Python torch of the lane under test (Debian's /usr/bin/python3 with torch 1.13, or the
torch-2.x lane's .venv-torch2): fixtures are only comparable with the same torch version.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Upstream VAR imports F.scaled_dot_product_attention when torch has it (2.x) and uses it on every device;
# varbench supports 1.13 (no SDPA) and >= 2.2 (the `scale=` signature upstream calls).
HAS_SDPA = hasattr(F, "scaled_dot_product_attention")

PATCH_SIDES = {256: (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), 512: (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)}
PHI_OF_SCALE = (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)


# ----------------------------------------------------------------------------------------------
# Transformer
class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
        self.max_scale_mul = torch.log(torch.tensor(100)).item()
        self.mat_qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("zero_k_bias", torch.zeros(width))
        self.proj = nn.Linear(width, width)
        self.cache = None  # (k, v) grown by concatenation, as the official code does

    def forward(self, x, mask, caching):
        B, L, C = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(B, L, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        gain = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
        q = F.normalize(q, dim=-1).mul(gain)
        k = F.normalize(k, dim=-1)
        if caching:
            if self.cache is not None:
                k = torch.cat((self.cache[0], k), dim=2)
                v = torch.cat((self.cache[1], v), dim=2)
            self.cache = (k, v)
        if HAS_SDPA:  # upstream's `slow_attn` is torch's SDPA wherever torch has it, CPU included
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=1)
        else:  # ... and this formula on torch 1.13
            scores = q.mul(1) @ k.transpose(-2, -1)  # softmax scale 1
            if mask is not None:
                scores.add_(mask)
            out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class FFN(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width, heads, shared_adaln, eps=1e-6):
        super().__init__()
        self.width, self.shared_adaln = width, shared_adaln
        self.attn = SelfAttention(width, heads)
        self.ffn = FFN(width, 4 * width)
        self.norm = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        if shared_adaln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, width) / width ** 0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x, cond, mask, caching):
        if self.shared_adaln:
            g1, g2, s1, s2, b1, b2 = (self.ada_gss + cond).unbind(2)
        else:
            g1, g2, s1, s2, b1, b2 = self.ada_lin(cond).view(-1, 1, 6, self.width).unbind(2)
        x = x + self.attn(self.norm(x).mul(s1.add(1)).add_(b1), mask, caching).mul_(g1)
        x = x + self.ffn(self.norm(x).mul(s2.add(1)).add_(b2)).mul(g2)
        return x


class HeadNorm(nn.Module):
    def __init__(self, width, eps=1e-6):
        super().__init__()
        self.width = width
        self.norm = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x, cond):
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.width).unbind(2)
        return self.norm(x).mul(scale.add(1)).add_(shift)


class VAR(nn.Module):
    def __init__(self, depth, width=None, heads=None, num_classes=1000, vocab=4096, code_dim=32, px=256,
                 shared_adaln=False):
        super().__init__()
        width = width or 64 * depth
        heads = heads or depth
        self.depth, self.width, self.num_classes, self.vocab, self.code_dim = depth, width, num_classes, vocab, code_dim
        self.sides = PATCH_SIDES[px]
        self.L = sum(s * s for s in self.sides)
        self.shared_adaln = shared_adaln
        self.word_embed = nn.Linear(code_dim, width)
        self.class_emb = nn.Embedding(num_classes + 1, width)
        self.pos_start = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_1LC = nn.Parameter(torch.zeros(1, self.L, width))
        self.lvl_embed = nn.Embedding(len(self.sides), width)
        if shared_adaln:
            self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        self.blocks = nn.ModuleList([Block(width, heads, shared_adaln) for _ in range(depth)])
        level = torch.cat([torch.full((s * s,), i) for i, s in enumerate(self.sides)]).view(1, self.L, 1)
        self.register_buffer("lvl_1L", level[:, :, 0].contiguous())
        bias = torch.where(level >= level.transpose(1, 2), 0.0, -torch.inf).reshape(1, 1, self.L, self.L)
        self.register_buffer("attn_bias_for_masking", bias.contiguous())
        self.head_nm = HeadNorm(width)
        self.head = nn.Linear(width, vocab)

    def block_cond(self, cond):
        return self.shared_ada_lin(cond).view(-1, 1, 6, self.width) if self.shared_adaln else cond

    def logits(self, h, cond):
        return self.head(self.head_nm(h.float(), cond).float()).float()

    def set_caching(self, on):
        for b in self.blocks:
            b.attn.cache = None

    def teacher_forced_logits(self, labels, inputs_wo_first):
        """The official training forward without class dropout: [B, L, V]."""
        B = labels.shape[0]
        cond = self.class_emb(labels)
        sos = cond.unsqueeze(1).expand(B, 1, -1) + self.pos_start.expand(B, 1, -1)
        x = torch.cat((sos, self.word_embed(inputs_wo_first.float())), dim=1)
        L = x.shape[1]
        x += self.lvl_embed(self.lvl_1L[:, :L].expand(B, -1)) + self.pos_1LC[:, :L]
        mask = self.attn_bias_for_masking[:, :, :L, :L]
        bc = self.block_cond(cond)
        for b in self.blocks:
            x = b(x, bc, mask, caching=False)
        return self.logits(x.float(), cond)


# ----------------------------------------------------------------------------------------------
# VQVAE
def group_norm(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = group_norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.norm = group_norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        qkv = self.qkv(self.norm(x))
        B, _, H, W = qkv.shape
        q, k, v = qkv.reshape(B, 3, self.c, H, W).unbind(1)
        q = q.reshape(B, self.c, H * W).permute(0, 2, 1).contiguous()
        k = k.reshape(B, self.c, H * W).contiguous()
        w = torch.bmm(q, k).mul_(int(self.c) ** (-0.5)).softmax(dim=2)
        v = v.reshape(B, self.c, H * W).contiguous()
        h = torch.bmm(v, w.permute(0, 2, 1).contiguous()).view(B, self.c, H, W)
        return x + self.proj_out(h)


class Resample(nn.Module):
    def __init__(self, c, down):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(c, c, 3, 2 if down else 1, 0 if down else 1)

    def forward(self, x):
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, code_dim, blocks=2):
        super().__init__()
        n = len(ch_mult)
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(ch_mult):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(blocks):
                level.block.append(ResnetBlock(cin, ch * m))
                cin = ch * m
                if i == n - 1:
                    level.attn.append(AttnBlock(cin))
            if i != n - 1:
                level.downsample = Resample(cin, down=True)
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = ResnetBlock(cin, cin), AttnBlock(cin), ResnetBlock(cin, cin)
        self.norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, code_dim, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, code_dim, blocks=2):
        super().__init__()
        n = len(ch_mult)
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(code_dim, cin, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = ResnetBlock(cin, cin), AttnBlock(cin), ResnetBlock(cin, cin)
        levels = [None] * n
        for i in reversed(range(n)):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(blocks + 1):
                level.block.append(ResnetBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
                if i == n - 1:
                    level.attn.append(AttnBlock(cin))
            if i != 0:
                level.upsample = Resample(cin, down=False)
            levels[i] = level
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Phi(nn.Conv2d):
    def __init__(self, c, ratio=0.5):
        super().__init__(c, c, 3, 1, 1)
        self.ratio = ratio

    def forward(self, h):
        return h.mul(1 - self.ratio) + super().forward(h).mul_(self.ratio)


class QuantResi(nn.Module):
    def __init__(self, c, n=4):
        super().__init__()
        self.qresi_ls = nn.ModuleList([Phi(c) for _ in range(n)])

    def at_scale(self, scale):
        return self.qresi_ls[PHI_OF_SCALE[scale]]


class Quantizer(nn.Module):
    def __init__(self, vocab, code_dim, scales=10):
        super().__init__()
        self.embedding = nn.Embedding(vocab, code_dim)
        self.quant_resi = QuantResi(code_dim)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(scales, vocab))


class VQVAE(nn.Module):
    def __init__(self, ch=160, ch_mult=(1, 1, 2, 2, 4), vocab=4096, code_dim=32, blocks=2):
        super().__init__()
        self.code_dim = code_dim
        self.encoder = Encoder(ch, ch_mult, code_dim, blocks)
        self.decoder = Decoder(ch, ch_mult, code_dim, blocks)
        self.quantize = Quantizer(vocab, code_dim)
        self.quant_conv = nn.Conv2d(code_dim, code_dim, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(code_dim, code_dim, 3, 1, 1)

    def lookup(self, tokens, side):
        B = tokens.shape[0]
        return self.quantize.embedding(tokens).transpose_(1, 2).reshape(B, self.code_dim, side, side)

    def add_scale(self, scale, sides, f_hat, codes):
        """f_hat += Phi(upsampled codes); returns the next scale's input (area) or None."""
        S = len(sides)
        if scale != S - 1:
            h = self.quantize.quant_resi.at_scale(scale)(F.interpolate(codes, size=(sides[-1], sides[-1]), mode="bicubic"))
            f_hat.add_(h)
            return F.interpolate(f_hat, size=(sides[scale + 1], sides[scale + 1]), mode="area")
        f_hat.add_(self.quantize.quant_resi.at_scale(scale)(codes))
        return None

    def decode(self, f_hat):
        return self.decoder(self.post_quant_conv(f_hat)).clamp_(-1, 1)

    def encode_tokens(self, image, sides):
        f = self.quant_conv(self.encoder(image))
        B, C, H, W = f.shape
        rest, f_hat, out = f.clone(), torch.zeros_like(f), []
        E = self.quantize.embedding.weight.data
        S = len(sides)
        for s, side in enumerate(sides):
            z = (F.interpolate(rest, size=(side, side), mode="area") if s != S - 1 else rest).permute(0, 2, 3, 1).reshape(-1, C)
            d = torch.sum(z.square(), dim=1, keepdim=True) + torch.sum(E.square(), dim=1, keepdim=False)
            d.addmm_(z, E.T, alpha=-2, beta=1)
            idx = torch.argmin(d, dim=1)
            h = self.quantize.embedding(idx.view(B, side, side)).permute(0, 3, 1, 2)
            h = (F.interpolate(h, size=(H, W), mode="bicubic") if s != S - 1 else h).contiguous()
            h = self.quantize.quant_resi.at_scale(s)(h)
            f_hat.add_(h)
            rest.sub_(h)
            out.append(idx.reshape(B, side * side))
        return out

    def var_inputs(self, tokens, sides):
        """Teacher-forcing inputs (next-scale inputs of scales 1..S-1): [B, L-1, Cvae]."""
        B = tokens[0].shape[0]
        f_hat = torch.zeros(B, self.code_dim, sides[-1], sides[-1])
        nxt = []
        for s in range(len(sides) - 1):
            n = self.add_scale(s, sides, f_hat, self.lookup(tokens[s], sides[s]))
            nxt.append(n.view(B, self.code_dim, -1).transpose(1, 2))
        return torch.cat(nxt, dim=1)


# ----------------------------------------------------------------------------------------------
# Sampling, as the official sample_with_top_k_top_p_ (+ CoDe's temperature after the filters)
def sample_tokens(logits, top_k, top_p, rng, temperature=1.0):
    B, l, V = logits.shape
    if top_k > 0:
        kth = logits.topk(top_k, largest=True, sorted=False, dim=-1)[0].amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < kth, -torch.inf)
    if top_p > 0:
        sorted_logits, order = logits.sort(dim=-1, descending=False)
        drop = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        drop[..., -1:] = False
        logits.masked_fill_(drop.scatter(order.ndim - 1, order, drop), -torch.inf)
    logits = logits / temperature
    return torch.multinomial(logits.softmax(dim=-1).view(-1, V), num_samples=1, replacement=True, generator=rng).view(B, l)


def gumbel_weights(logits, tau, rng):
    g = -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_(generator=rng).log()
    return ((logits + g) / tau).softmax(-1)


def per_scale(v, s):
    return v[s] if isinstance(v, (list, tuple)) else v


@torch.no_grad()
def generate(var, vae, labels, seed, cfg, top_k, top_p, temperature=1.0, more_smooth=False, forced_tokens=None):
    """The official cached loop (autoregressive_infer_cfg / CoDe's draft loop). With `forced_tokens`
    the sampled tokens are replaced by the given ones (teacher forcing through the cached path).
    Returns (tokens per scale, guided logits per scale (filtered), f_hat)."""
    rng = torch.Generator().manual_seed(seed)
    B = labels.shape[0]
    sides = var.sides
    S = len(sides)
    cond = var.class_emb(torch.cat((labels, torch.full_like(labels, var.num_classes)), dim=0))
    lvl_pos = var.lvl_embed(var.lvl_1L) + var.pos_1LC
    x = cond.unsqueeze(1).expand(2 * B, 1, -1) + var.pos_start.expand(2 * B, 1, -1) + lvl_pos[:, :1]
    f_hat = cond.new_zeros(B, var.code_dim, sides[-1], sides[-1])
    var.set_caching(True)
    tokens, guided_logits, cur = [], [], 0
    for s, side in enumerate(sides):
        cur += side * side
        bc = var.block_cond(cond)
        h = x
        for b in var.blocks:
            h = b(h, bc, None, caching=True)
        logits = var.logits(h, cond)
        t = cfg * (s / (S - 1))
        logits = (1 + t) * logits[:B] - t * logits[B:]
        guided_logits.append(logits.clone())
        idx = sample_tokens(logits, per_scale(top_k, s), top_p, rng, per_scale(temperature, s))
        if forced_tokens is not None:
            idx = forced_tokens[s]
        if more_smooth:
            ratio = s / (S - 1)
            tau = max(0.27 * (1 - ratio * 0.95), 0.005)
            codes = gumbel_weights(logits.mul(1 + ratio), tau, rng) @ vae.quantize.embedding.weight.unsqueeze(0)
            codes = codes.transpose_(1, 2).reshape(B, var.code_dim, side, side)
        else:
            codes = vae.lookup(idx, side)
        tokens.append(idx)
        nxt = vae.add_scale(s, sides, f_hat, codes)
        if s != S - 1:
            nxt = nxt.view(B, var.code_dim, -1).transpose(1, 2)
            x = var.word_embed(nxt) + lvl_pos[:, cur:cur + sides[s + 1] ** 2]
            x = x.repeat(2, 1, 1)
    var.set_caching(False)
    return tokens, guided_logits, f_hat


# ----------------------------------------------------------------------------------------------
def randomize_(module, seed, head_std=None):
    """Deterministic random weights with every path active (non-zero biases, AdaLN gammas of order 1e-1,
    one attention head's learned scale above the ln(100) clamp)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("scale_mul_1H11"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + math.log(4.0))
                p.view(-1)[0] = math.log(100.0) + 0.5  # exercises the clamp
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.05 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif name == "head.weight":
                p.copy_(torch.randn(p.shape, generator=g) * (head_std or 1.0 / math.sqrt(p.shape[1])))
            elif name == "quantize.embedding.weight":
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / math.sqrt(fan_in))
            else:
                std = 1.0 / math.sqrt(p.shape[-1]) if p.dim() >= 2 else 0.02
                p.copy_(torch.randn(p.shape, generator=g) * std * 0.5)


# ----------------------------------------------------------------------------------------------
# Collaborative decoding, as czg1225/CoDe's autoregressive_infer_cfg_draft / _refine compute it.
@torch.no_grad()
def code_generate(drafter, refiner, vae, labels, draft_steps, seed, cfg, top_k, top_p, temperature):
    """Returns (tokens per scale, f_hat). top_k and temperature are per-scale lists, as CoDe passes them."""
    B = labels.shape[0]
    sides = drafter.sides
    S = len(sides)
    N = draft_steps
    # Drafter: scales 0..N-1, collecting the next-scale inputs (before word_embed).
    rng = torch.Generator().manual_seed(seed)
    cond = drafter.class_emb(torch.cat((labels, torch.full_like(labels, drafter.num_classes)), dim=0))
    lvl_pos = drafter.lvl_embed(drafter.lvl_1L) + drafter.pos_1LC
    x = cond.unsqueeze(1).expand(2 * B, 1, -1) + drafter.pos_start.expand(2 * B, 1, -1) + lvl_pos[:, :1]
    f_hat = cond.new_zeros(B, drafter.code_dim, sides[-1], sides[-1])
    drafter.set_caching(True)
    tokens, hub, cur = [], [], 0
    for s in range(N):
        cur += sides[s] ** 2
        bc = drafter.block_cond(cond)
        h = x
        for b in drafter.blocks:
            h = b(h, bc, None, caching=True)
        logits = drafter.logits(h, cond)
        t = cfg * (s / (S - 1))
        logits = (1 + t) * logits[:B] - t * logits[B:]
        idx = sample_tokens(logits, top_k[s], top_p, rng, temperature[s])
        tokens.append(idx)
        nxt = vae.add_scale(s, sides, f_hat, vae.lookup(idx, sides[s]))
        nxt = nxt.view(B, drafter.code_dim, -1).transpose(1, 2)
        hub.append(nxt)
        x = drafter.word_embed(nxt) + lvl_pos[:, cur:cur + sides[s + 1] ** 2]
        x = x.repeat(2, 1, 1)
    drafter.set_caching(False)
    hub = torch.cat(hub, dim=1)

    # Refiner: re-seeded generator, one masked pass over scales 0..N, then cached.
    rng = torch.Generator().manual_seed(seed)
    cond = refiner.class_emb(torch.cat((labels, torch.full_like(labels, refiner.num_classes)), dim=0))
    lvl_pos = refiner.lvl_embed(refiner.lvl_1L) + refiner.pos_1LC
    first = cond.unsqueeze(1).expand(2 * B, 1, -1) + refiner.pos_start.expand(2 * B, 1, -1) + lvl_pos[:, :1]
    end = sum(s * s for s in sides[:N + 1])
    x = refiner.word_embed(hub) + lvl_pos[:, 1:end]
    x = torch.cat([first, x.repeat(2, 1, 1)], dim=1)
    mask = refiner.attn_bias_for_masking[:, :, :end, :end]
    refiner.set_caching(True)
    cur = 0
    for s in range(S):
        cur += sides[s] ** 2
        if s < N:
            continue
        bc = refiner.block_cond(cond)
        h = x
        for b in refiner.blocks:
            h = b(h, bc, mask if s == N else None, caching=True)
        logits = refiner.logits(h, cond)
        t = cfg * (s / (S - 1))
        if s == N:
            n = sides[s] ** 2
            logits[:B, cur - n:cur] = (1 + t) * logits[:B, cur - n:cur] - t * logits[B:, cur - n:cur]
            at = 0
            for a in range(N + 1):  # every prefix scale is drawn and discarded; scale N is kept
                idx = sample_tokens(logits[:B, at:at + sides[a] ** 2], top_k[a], top_p, rng, temperature[a])
                at += sides[a] ** 2
        else:
            logits = (1 + t) * logits[:B] - t * logits[B:]
            idx = sample_tokens(logits, top_k[s], top_p, rng, temperature[s])
        tokens.append(idx)
        nxt = vae.add_scale(s, sides, f_hat, vae.lookup(idx, sides[s]))
        if s != S - 1:
            nxt = nxt.view(B, refiner.code_dim, -1).transpose(1, 2)
            x = refiner.word_embed(nxt) + lvl_pos[:, cur:cur + sides[s + 1] ** 2]
            x = x.repeat(2, 1, 1)
    refiner.set_caching(False)
    return tokens, f_hat
