"""Tiny topologies that stress the analysis, one per tricky pattern. Each: (model, input builder)."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(cin, cout, k=3, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups), nn.BatchNorm2d(cout), nn.ReLU())


class NestedConcat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = cbr(3, 6), cbr(3, 5), cbr(11, 4)
        self.head = nn.Conv2d(6 + 5 + 4 + 11, 7, 1)

    def forward(self, x):
        ab = torch.cat([self.a(x), self.b(x)], 1)
        abc = torch.cat([ab, self.c(ab)], dim=1)
        return self.head(torch.cat([abc, ab], 1)).mean((2, 3))


class SplitAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.post = cbr(3, 12), cbr(6, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = self.stem(x)
        a, b = torch.split(y, 6, dim=1)
        return self.fc(self.post(a + b).mean((2, 3)))


class FlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = cbr(3, 8), cbr(3, 6)
        self.fc1 = nn.Linear(8 * 4 * 4, 5)
        self.fc2 = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        a = torch.flatten(self.c1(x), 1)
        b = self.c2(x)
        b = b.view(b.size(0), -1)
        return self.fc1(a) + self.fc2(b)


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = cbr(3, 16)
        self.fc1, self.fc2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.out = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        y = self.c(x)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        return self.out(y * s)


class DepthwiseSeparable(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.dw = cbr(3, 12), cbr(12, 12, groups=12)
        self.dw2 = nn.Conv2d(12, 24, 3, padding=1, groups=12)  # channel multiplier 2
        self.pw = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        return self.pw(F.relu6(self.dw2(self.dw(self.c(x)))))


class GroupedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.g = cbr(3, 16), cbr(16, 24, groups=4)
        self.gn = nn.GroupNorm(4, 24)
        self.out = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        return self.out(F.silu(self.gn(self.g(self.c1(x)))))


class GroupedPositions(nn.Module):
    """Grouped convolutions as ResNeXt and RegNet use them (BatchNorm after, several channels per
    group on both sides), as a module and as ``F.conv2d(..., groups=4)``: a unit is the same position
    inside every conv group, the groups count stays and every group narrows."""

    def __init__(self):
        super().__init__()
        self.c1, self.g = cbr(3, 16), cbr(16, 24, groups=4)
        self.gw = nn.Parameter(0.2 * torch.randn(16, 6, 3, 3))
        self.gb = nn.Parameter(0.1 * torch.randn(16))
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = F.relu(F.conv2d(self.g(self.c1(x)), self.gw, self.gb, padding=1, groups=4))
        return self.out(y).mean((2, 3))


class WeightSharing(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.shared, self.out = cbr(3, 8), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.tied_a, self.tied_b = nn.Linear(4, 10), nn.Linear(10, 4)
        self.tied_c = nn.Linear(4, 10)
        self.tied_c.weight = self.tied_a.weight  # the same Parameter under two names

    def forward(self, x):
        y = F.relu(self.shared(F.relu(self.shared(self.c(x)))))
        z = self.out(y).mean((2, 3))
        return self.tied_b(F.relu(self.tied_a(z)) + F.relu(self.tied_c(z)))


class MultiIO(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = cbr(3, 8), nn.Linear(5, 12)
        self.fa, self.fb, self.fab = nn.Linear(8, 3), nn.Linear(12, 2), nn.Linear(12, 8)

    def forward(self, img, vec):
        y = self.a(img).mean((2, 3))
        h = F.gelu(self.b(vec))
        return self.fa(y + self.fab(h)), self.fb(h)


class NormsOverUnits(nn.Module):
    """A residual stream of width ``d`` normalised every way transformers and ConvNeXt do: nn.LayerNorm,
    nn.RMSNorm, a decomposed RMSNorm (pow → mean → rsqrt → weight, as Hugging Face writes it),
    ``F.layer_norm`` on a channels-last conv map (ConvNeXt's LayerNorm2d), a mean over channels used
    as a gate, and ``F.rms_norm`` without weight and with the default eps. Units of the stream
    remove channels under every norm; the compact model keeps the original divisors."""

    def __init__(self, d=12):
        super().__init__()
        self.embed = nn.Linear(5, d)
        self.ln, self.rms = nn.LayerNorm(d), nn.RMSNorm(d, eps=1e-6)
        self.up, self.down = nn.Linear(d, 16), nn.Linear(16, d)
        self.mix, self.mix2 = nn.Linear(d, d), nn.Linear(d, d)
        self.scale = nn.Parameter(1 + 0.1 * torch.randn(d))  # the decomposed RMSNorm's weight
        self.conv = nn.Conv2d(d, d, 1)
        self.ln2d_w, self.ln2d_b = nn.Parameter(torch.randn(d)), nn.Parameter(torch.randn(d))
        self.head = nn.Linear(d, 3)
        self.d = d

    def forward(self, x):
        h = self.embed(x)
        h = h + self.down(F.gelu(self.up(self.ln(h))))
        h = h + self.mix(self.rms(h))
        g = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        h = h + self.mix2(self.scale * g)
        m = self.conv(h.transpose(1, 2).unsqueeze(-1))
        m = F.layer_norm(m.permute(0, 2, 3, 1), (self.d,), self.ln2d_w, self.ln2d_b, 1e-6).permute(0, 3, 1, 2)
        h = h + m.squeeze(-1).transpose(1, 2)
        h = h * torch.sigmoid(h.mean(-1, keepdim=True))
        return self.head(F.rms_norm(h, (self.d,)))


class HandAttention(nn.Module):
    def __init__(self, d=24, heads=4):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.q2, self.k2, self.v2 = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.proj, self.proj2 = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh)
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj(y)
        att = torch.einsum("bhid,bhjd->bhij", q, k).softmax(-1)  # the same heads, written as einsum
        x = x + self.proj(torch.einsum("bhij,bhjd->bihd", att, v).reshape(B, N, C))
        q = self.q2(x).view(B, N, self.h, self.dh).transpose(1, 2)
        k = self.k2(x).view(B, N, self.h, self.dh).transpose(1, 2)
        v = self.v2(x).view(B, N, self.h, self.dh).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).contiguous().view(B, N, C)
        return self.proj2(y)


class Linear3DHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 16)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 16, bias=True)
        self.head = nn.Linear(16, 7)

    def forward(self, ids):
        h = self.emb(ids)
        return self.head(F.gelu(self.fc2(F.gelu(self.fc1(h)))))


class TransposeConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.down, self.up = cbr(3, 8), nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.upg = nn.ConvTranspose2d(6, 8, 3, padding=1, groups=2)
        self.bn, self.out = nn.BatchNorm2d(8), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = F.interpolate(self.down(x), scale_factor=0.5)
        return self.out(F.relu(self.bn(self.upg(F.relu(self.up(y))))))


class GLUGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.gate_up, self.down = nn.Linear(6, 10), nn.Linear(10, 32), nn.Linear(16, 10)
        self.w1, self.w3, self.w2 = nn.Linear(10, 12, bias=False), nn.Linear(10, 12, bias=False), nn.Linear(12, 4)

    def forward(self, x):
        h = F.relu(self.inp(x))
        a, b = self.gate_up(h).chunk(2, dim=-1)
        h = h + self.down(F.silu(a) * b)
        return self.w2(F.silu(self.w1(h)) * self.w3(h))


class FreeParams(nn.Module):
    """ConvNeXt-style layer scale, ViT-style class token and position embedding."""

    def __init__(self):
        super().__init__()
        self.c, self.c2 = cbr(3, 8), nn.Conv2d(8, 8, 1)
        self.scale = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.proj = nn.Linear(8, 12)
        self.cls = nn.Parameter(torch.randn(1, 1, 12))
        self.pos = nn.Parameter(torch.randn(1, 17, 12))
        self.mlp1, self.mlp2, self.head = nn.Linear(12, 20), nn.Linear(20, 12), nn.Linear(12, 3)

    def forward(self, x):
        y = self.c(x)
        y = y + self.scale * self.c2(y)
        t = self.proj(y.flatten(2).transpose(1, 2))
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        t = t + self.mlp2(F.gelu(self.mlp1(t)))
        return self.head(t[:, 0])


class ChannelShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = cbr(3, 8), cbr(8, 8), nn.Conv2d(8, 3, 1)

    def forward(self, x):
        y = self.a(x)
        B, C, H, W = y.shape
        y = y.view(B, 2, C // 2, H, W).transpose(1, 2).contiguous().view(B, C, H, W)
        return self.out(self.b(y) + y)


class Convs1d3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv1d(4, 8, 3), nn.BatchNorm1d(8)
        self.c2, self.in3 = nn.Conv1d(8, 6, 1), nn.InstanceNorm1d(6, affine=True)
        self.c3 = nn.Conv3d(1, 5, 3)
        self.bn3 = nn.BatchNorm3d(5)
        self.fc = nn.Linear(6 + 5, 2)

    def forward(self, x, v):
        a = self.in3(self.c2(F.relu(self.bn1(self.c1(x))))).amax(-1)
        b = F.max_pool3d(F.relu(self.bn3(self.c3(v))), 2).mean((2, 3, 4))
        return self.fc(torch.cat([a, b], -1))


class MiscOps(nn.Module):
    """where, masked_fill, pad, pow, PReLU, stack, roll, narrow, *_like on pruned channels."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = cbr(3, 8), cbr(3, 8), nn.Conv2d(8, 6, 3)
        self.act = nn.PReLU(8)
        self.d, self.e = nn.Linear(6, 10), nn.Linear(10, 4)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        y = torch.where(x[:, :1] > 0, a, b).masked_fill(x[:, :1] > 1.5, 0.0)
        y = self.act(F.pad(y, (1, 1, 1, 1)) ** 2) + torch.zeros_like(F.pad(y, (1, 1, 1, 1)))
        s = torch.stack([y, torch.roll(y, 1, dims=2) * 2], dim=0).sum(0)
        h = self.c(s).mean((2, 3))
        h = F.relu(self.d(h))
        h = h.unflatten(-1, (2, 5)).flatten(1)  # a split the rewriter must resize
        return self.e(torch.narrow(h, 0, 0, 2))


class Conv1DStack(nn.Module):
    """Hugging Face GPT-2's ``Conv1D``: ``addmm(bias, x.view(-1, nx), W)`` with W stored (in, out)."""

    def __init__(self):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(6, 10)), nn.Parameter(torch.randn(10))
        self.w2, self.b2 = nn.Parameter(torch.randn(10, 4)), nn.Parameter(torch.randn(4))

    def forward(self, x):
        h = torch.addmm(self.b1, x.view(-1, 6), self.w1).view(x.shape[0], x.shape[1], 10)
        h = F.gelu(h)
        return torch.addmm(self.b2, h.view(-1, 10), self.w2).view(x.shape[0], x.shape[1], 4)


class RelPosBiasAttention(nn.Module):
    """timm's relative-position attention (CoAtNet, ViT-SRelPos): a bias table gathered by an index
    buffer, shared by two blocks and given to SDPA as its mask (gathered per block along the heads
    that remain); the output reshaped to ``x.shape[:-1] + (-1,)``; a max pool that returns indices."""

    def __init__(self, dim=16, heads=4, tokens=6):
        super().__init__()
        self.heads = heads
        self.pre = nn.Linear(dim, dim)
        self.qkv1, self.qkv2 = nn.Linear(dim, 3 * dim), nn.Linear(dim, 3 * dim)
        self.proj1, self.proj2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.randn(2 * tokens - 1, heads))
        idx = torch.arange(tokens)
        self.register_buffer("index", (idx[:, None] - idx[None, :] + tokens - 1).flatten())
        self.head = nn.Linear(dim, 3)

    def attend(self, x, qkv, proj, bias):
        B, N, _ = x.shape
        q, k, v = qkv(x).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return proj(y.transpose(1, 2).reshape(x.shape[:-1] + (-1,)))

    def forward(self, x):
        N = x.shape[1]
        bias = self.table[self.index].view(N, N, -1).permute(2, 0, 1).unsqueeze(0)
        x = F.relu(self.pre(x))
        x = x + self.attend(x, self.qkv1, self.proj1, bias)
        x = x + self.attend(x, self.qkv2, self.proj2, bias)
        pooled, _ = F.adaptive_max_pool1d(x.transpose(1, 2), 2, return_indices=True)
        return self.head(pooled.mean(-1))


class HaloAttention(nn.Module):
    """timm's HaloNet and LambdaNet: query heads pruned against keys and values that an op with no
    rule pins (``unfold``), the removed heads' output zeroed by a BatchNorm (``post_attn``), and the
    output reshaped with the channel count read from the (shrinking) input, ``x.shape[1]``."""

    def __init__(self, c=8, heads=2):
        super().__init__()
        self.heads, self.d = heads, c // heads
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.q, self.kv = nn.Conv2d(c, c, 1), nn.Conv2d(c, 2 * c, 1)
        self.post = nn.BatchNorm2d(c)
        self.out = nn.Conv2d(c, 5, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        B, C, H, W = x.shape
        q = self.q(x).reshape(B * self.heads, self.d, H * W).transpose(1, 2)
        kv = self.kv(x).unfold(3, 1, 1).squeeze(-1)
        k, v = kv.reshape(B * self.heads, 2 * self.d, H * W).transpose(1, 2).split([self.d, self.d], -1)
        o = ((q @ k.transpose(-1, -2)).softmax(-1) @ v).transpose(1, 2)
        o = F.relu(self.post(o.reshape(B, C, H, W)))
        return self.out(o).mean((2, 3))


class ParamMatmul(nn.Module):
    """Falcon's ``FalconLinear``: ``x @ self.weight.T + self.bias`` on parameters seen directly
    (``getattr(w, "T")`` under fx, ``aten.numpy_T`` under export), and ``h @ w.mT``."""

    def __init__(self):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(12, 6) / 3), nn.Parameter(torch.randn(12))
        self.w2 = nn.Parameter(torch.randn(4, 12) / 3)

    def forward(self, x):
        h = F.gelu(x @ self.w1.T + self.b1)
        return h @ self.w2.mT


class SpatialGating(nn.Module):
    """gMLP's spatial gating unit: channels ``u`` times a projection of ``v`` over tokens (structured
    along the other axis: pinned, ``u`` stays prunable); ConvNeXt-V2's global response norm
    ``h + addcmul(beta, gamma, h * g)``."""

    def __init__(self, d=6, tokens=5):
        super().__init__()
        self.fc1, self.proj, self.fc2 = nn.Linear(d, 16), nn.Linear(tokens, tokens), nn.Linear(8, d)
        self.gamma, self.beta = nn.Parameter(torch.randn(8)), nn.Parameter(torch.randn(8))
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        u, v = F.gelu(self.fc1(x)).chunk(2, -1)
        h = u * self.proj(v.transpose(-1, -2)).transpose(-1, -2)
        h = h + torch.addcmul(self.beta, self.gamma, h * torch.sigmoid(h.sum(1, keepdim=True)))
        return self.head(self.fc2(h))


class OrderedDictOutput(nn.Module):
    """torchvision's segmentation models and detector backbones: the output is an ``OrderedDict``
    (keys such as ``out`` or ``"0"``, not always identifiers), and the compact model's must be one too."""

    def __init__(self):
        super().__init__()
        self.body, self.head, self.aux = cbr(3, 8), nn.Conv2d(8, 3, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.body(x)
        return OrderedDict([("out", self.head(y)), ("0", self.aux(y))])


class TokenRepeat(nn.Module):
    """MoE routing in miniature: every token repeated once per chosen expert (``repeat_interleave``
    along tokens), weighted, and summed back; the hidden neurons stay prunable."""

    def __init__(self):
        super().__init__()
        self.up, self.down = nn.Linear(6, 8), nn.Linear(8, 6)

    def forward(self, x):
        h = torch.relu(self.up(x)).repeat_interleave(2, dim=0)
        w = torch.softmax(x.sum(-1), 0).repeat_interleave(2).unsqueeze(-1)
        return (self.down(h) * w).view(x.shape[0], 2, 6).sum(1)


class StackedExperts(nn.Module):
    """A mixture of experts whose weights are stacked parameters picked per token by the router
    (transformers' ``batched_mm`` experts): every expert's neuron ``i`` (gate and up rows, down column)
    is one unit; the hidden size stays whole (the residual)."""

    def __init__(self):
        super().__init__()
        self.router = nn.Linear(6, 3)
        self.gate_up = nn.Parameter(torch.randn(3, 8, 6) * 0.4)
        self.down = nn.Parameter(torch.randn(3, 6, 4) * 0.4)

    def forward(self, x):
        weight, idx = torch.softmax(self.router(x), -1).max(-1)
        h = torch.bmm(self.gate_up[idx], x.unsqueeze(-1)).squeeze(-1)
        gate, up = h.chunk(2, dim=-1)
        h = F.silu(gate) * up
        return x + torch.bmm(self.down[idx], h.unsqueeze(-1)).squeeze(-1) * weight.unsqueeze(-1)


# ---- traps: these spaces must stay unprunable -------------------------------------------------
class TrapSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(torch.softmax(self.a(x), dim=1))


class TrapMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = F.relu(self.a(x))
        return self.b(y - y.mean(dim=1, keepdim=True))


class TrapLayerNormNoAffine(nn.Module):
    """Without a weight, LayerNorm turns a removed (zero) channel into −mean/σ: it must stay."""

    def __init__(self):
        super().__init__()
        self.a, self.ln, self.b = nn.Linear(5, 8), nn.LayerNorm(8, elementwise_affine=False), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(self.ln(self.a(x)))


class TrapLayerNormShifted(nn.Module):
    """A channel that is not zero at the norm's input changes its mean and variance: it must stay."""

    def __init__(self):
        super().__init__()
        self.a, self.ln, self.b = nn.Linear(5, 8), nn.LayerNorm(8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(self.ln(self.a(x) + 1.0))


def img(b=2, c=3, s=16):
    return lambda: torch.randn(b, c, s, s)


class CosineAttention(nn.Module):
    """Swin V2's cosine attention: q and k normalised per head (a reduction inside a unit and a
    division by a strictly positive ``clamp_min``), a clamped and exponentiated per-head logit
    scale, a relative position bias gathered from a table by an index buffer, and a qkv bias
    cloned with its k block zeroed in place."""

    def __init__(self, dim=24, heads=4, tokens=5):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.rand(heads, 1, 1) + 1))
        self.cpb = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, heads, bias=False))
        self.register_buffer("coords", torch.randn(2 * tokens - 1, 2))
        idx = torch.arange(tokens)
        self.register_buffer("index", (idx[:, None] - idx[None, :] + tokens - 1).flatten())
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        bias = self.qkv.bias.clone()
        bias[C:2 * C].zero_()
        qkv = F.linear(x, self.qkv.weight, bias).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        table = self.cpb(self.coords)
        rel = table[self.index].view(N, N, -1).permute(2, 0, 1)
        attn = (attn + 16 * torch.sigmoid(rel).unsqueeze(0)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class InPlace(nn.Module):
    """In-place ops whose result is not assigned: they are uses of the tensor they write into."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 6, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = self.c1(x)
        y.relu_()
        y = self.c2(y)
        F.relu(y, inplace=True)
        y.mul_(2.0)
        z = self.c3(y)
        self.act(z)
        z.sigmoid_()
        return self.fc(z.mean((2, 3)))


class BufferUpdates(nn.Module):
    """State updated in forward: a call counter and an EMA of the activations under no_grad."""

    def __init__(self):
        super().__init__()
        self.c, self.d = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("ema", torch.ones(8))

    def forward(self, x):
        y = F.relu(self.c(x))
        self.count += 1
        with torch.no_grad():
            self.ema.mul_(0.9).add_(0.1 * y.mean((0, 2, 3)))
        return self.d(y).mean((2, 3))


class TrapAddInPlace(nn.Module):
    """``y.add_(1.0)`` turns the zeros of a removed channel into ones: not zero-invariant."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y.add_(1.0)
        return self.b(y).mean((2, 3))


class TrapAddInPlaceView(nn.Module):
    """The same through a view: ``y[:, :4].add_(1.0)`` changes ``y``."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y[:, :4].add_(1.0)
        return self.b(y).mean((2, 3))


class TrapUnbind(nn.Module):
    """CSATv2's scalar attention: ``q, k, v = Linear(d, 3)(x).unbind(-1)``; removing one of the three
    would remove a whole tensor of the graph."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(5, 2)

    def forward(self, x):
        q, k, v = self.a(x).unbind(-1)
        return self.b((q * k).softmax(-1) * v)


TRICKY = {
    "nested_concat": (NestedConcat, img()),
    "split_add": (SplitAdd, img()),
    "flatten_linear": (FlattenLinear, img(s=4)),
    "squeeze_excite": (SqueezeExcite, img()),
    "depthwise_separable": (DepthwiseSeparable, img()),
    "grouped_conv": (GroupedConv, img()),
    "grouped_positions": (GroupedPositions, img()),
    "weight_sharing": (WeightSharing, img()),
    "multi_io": (MultiIO, lambda: (torch.randn(2, 3, 8, 8), torch.randn(2, 5))),
    "hand_attention": (HandAttention, lambda: torch.randn(2, 5, 24)),
    "linear_3d_head": (Linear3DHead, lambda: torch.randint(0, 20, (2, 6))),
    "transpose_conv": (TransposeConv, img()),
    "glu_gate": (GLUGate, lambda: torch.randn(2, 3, 6)),
    "free_params": (FreeParams, img(s=4)),
    "channel_shuffle": (ChannelShuffle, img()),
    "misc_ops": (MiscOps, img()),
    "conv1d_stack": (Conv1DStack, lambda: torch.randn(2, 3, 6)),
    "convs_1d_3d": (Convs1d3d, lambda: (torch.randn(2, 4, 10), torch.randn(2, 1, 6, 6, 6))),
    "cosine_attention": (CosineAttention, lambda: torch.randn(2, 5, 24)),
    "norms_over_units": (NormsOverUnits, lambda: torch.randn(2, 4, 5)),
    "in_place": (InPlace, img()),
    "buffer_updates": (BufferUpdates, img()),
    "rel_pos_bias_attention": (RelPosBiasAttention, lambda: torch.randn(2, 6, 16)),
    "halo_attention": (HaloAttention, img(s=6)),
    "param_matmul": (ParamMatmul, lambda: torch.randn(2, 3, 6)),
    "ordered_dict_output": (OrderedDictOutput, img()),
    "spatial_gating": (SpatialGating, lambda: torch.randn(2, 5, 6)),
    "token_repeat": (TokenRepeat, lambda: torch.randn(4, 6)),
    "stacked_experts": (StackedExperts, lambda: torch.randn(5, 6)),
}

TRAPS = {  # model, input, the group that must stay unprunable, a word its reason must contain
    "softmax_over_channels": (TrapSoftmax, img(), "a", "softmax"),
    "mean_over_channels": (TrapMean, img(), "a", "non-zero"),
    "layernorm_without_weight": (TrapLayerNormNoAffine, lambda: torch.randn(2, 5), "a", "without a weight"),
    "layernorm_of_a_shifted_channel": (TrapLayerNormShifted, lambda: torch.randn(2, 5), "a", "statistics"),
    "add_in_place": (TrapAddInPlace, img(), "a", "non-zero"),
    "add_in_place_on_a_view": (TrapAddInPlaceView, img(), "a", "non-zero"),
    "unbind_over_channels": (TrapUnbind, lambda: torch.randn(2, 5, 4), "a", "unbound"),
}
