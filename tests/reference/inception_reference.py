"""PyTorch reference of the FID Inception-v3 and its two preprocessing profiles, for varbench's parity
fixtures and for the side-by-side benchmark (scripts/bench_fid_reference.py).

The network is torchvision 0.14's Inception3 with the blocks that differ in the TensorFlow graph
swapped in, which is how pytorch-fid builds its FID Inception:
  * Mixed_5b/5c/5d, Mixed_6b..6e and Mixed_7b average their pool branch over valid pixels only
    (TensorFlow's average pool ignores the zero padding);
  * Mixed_7c's pool branch is a max pool.
Parameter names are those of pytorch-fid's pt_inception-2015-12-05-6726825d.pth.

Preprocessing profiles (input: uint8 images, N x H x W x 3):
  * "pytorch-fid": x/255, bilinear resize to 299 with half-pixel centres (F.interpolate,
    align_corners=False), then 2x-1.
  * "adm": float 0..255, TensorFlow 1.x ResizeBilinear to 299 (source coordinate = dst * in/out, no
    half-pixel offset, computed in float32 as the TF kernel does), then (x-128)/128. This is the graph
    of the ADM evaluator and what torch-fidelity reproduces.
"""
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import inception as tv_inception

INPUT_SIDE = 299
SPATIAL_CHANNELS = 7  # ADM's sFID keeps the first 7 channels of mixed_6/conv (Mixed_6d.branch1x1)


def _avg_pool_valid(x):
    # 3x3 stride-1 average over the pixels inside the image only.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FidInceptionA(tv_inception.InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_valid(x))
        return torch.cat([b1, b5, b3, bp], 1)


class FidInceptionC(tv_inception.InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_valid(x))
        return torch.cat([b1, b7, bd, bp], 1)


class _FidInceptionE(tv_inception.InceptionE):
    def pool(self, x):
        raise NotImplementedError

    def forward(self, x):
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        t = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(t), self.branch3x3dbl_3b(t)], 1)
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b3, bd, bp], 1)


class FidInceptionE1(_FidInceptionE):
    def pool(self, x):
        return _avg_pool_valid(x)


class FidInceptionE2(_FidInceptionE):
    def pool(self, x):
        # The TF graph's last block max-pools here (an oddity of that graph, kept for fidelity).
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def build_fid_inception():
    """torchvision's Inception3 (1008 classes, no aux head) patched into the FID Inception."""
    net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FidInceptionA(192, pool_features=32)
    net.Mixed_5c = FidInceptionA(256, pool_features=64)
    net.Mixed_5d = FidInceptionA(288, pool_features=64)
    net.Mixed_6b = FidInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FidInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FidInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FidInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FidInceptionE1(1280)
    net.Mixed_7c = FidInceptionE2(2048)
    return net.eval()


def randomize_(net, seed):
    """Random weights that keep activations O(1) through the 94 conv layers, and non-trivial
    BatchNorm statistics (so that a loader that drops or swaps them fails the parity test)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.6 + 0.8 * torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return net


def resize_bilinear_tf1(x, side):
    """TensorFlow 1.x ResizeBilinear (align_corners=False, no half-pixel centres) of a float NCHW batch:
    source coordinate s = d * (in/out) in float32, neighbours floor(s) and min(floor(s)+1, in-1),
    interpolated along the width first, then along the height."""
    n, c, h, w = x.shape

    def axis(in_size):
        scale = torch.tensor(in_size / side, dtype=torch.float32)
        src = torch.arange(side, dtype=torch.float32) * scale
        lo = src.floor().long()
        hi = (lo + 1).clamp(max=in_size - 1)
        return lo, hi, (src - lo.float())

    ylo, yhi, fy = axis(h)
    xlo, xhi, fx = axis(w)
    left, right = x[:, :, :, xlo], x[:, :, :, xhi]
    rows = left + (right - left) * fx.view(1, 1, 1, side)
    top, bottom = rows[:, :, ylo, :], rows[:, :, yhi, :]
    return top + (bottom - top) * fy.view(1, 1, side, 1)


def preprocess(images_nhwc_uint8, profile):
    # Contiguous NCHW, as ToTensor + DataLoader hand it to pytorch-fid (a channels-last view would take
    # another upsampling kernel that rounds differently in the last bit).
    x = images_nhwc_uint8.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    if profile == "pytorch-fid":
        x = x / 255.0
        x = F.interpolate(x, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False)
        return 2 * x - 1
    if profile == "adm":
        x = resize_bilinear_tf1(x, INPUT_SIDE)
        return (x - 128) / 128
    raise ValueError(f"unknown profile {profile!r}")


@torch.no_grad()
def features(net, x):
    """pool3 [N,2048], logits without the fc bias [N,1008], sFID spatial features [N,2023] of a
    preprocessed batch."""
    captured = {}
    hook = net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: captured.__setitem__("s", o))
    try:
        x = net.Conv2d_1a_3x3(x)
        x = net.Conv2d_2a_3x3(x)
        x = net.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = net.Conv2d_3b_1x1(x)
        x = net.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
                      net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c):
            x = block(x)
    finally:
        hook.remove()
    pool3 = F.adaptive_avg_pool2d(x, 1).flatten(1)
    logits = pool3 @ net.fc.weight.T
    s = captured["s"][:, :SPATIAL_CHANNELS]  # N x 7 x 17 x 17
    spatial = s.permute(0, 2, 3, 1).reshape(s.shape[0], -1)  # flattened H, W, C as the TF graph (NHWC)
    return pool3, logits, spatial
