"""The conditional UNet that denoises a fine-grid residual (pure torch, no xarray).

The network sees, stacked as channels, the noisy residual at diffusion step ``t`` and the
conditioning fields on the fine grid (the upsampled coarse field, its validity mask and, for
scheme S2, the auxiliaries), and returns the v-prediction for the residual.

It is built to tile: every layer is local. Normalisation is a per-pixel layer norm over
channels (no GroupNorm or attention, whose statistics span the whole input), so a pixel's
output depends only on inputs within the receptive field (:attr:`ConditionalUNet.receptive_radius`),
and predicting a large field in overlapping tiles gives the same values as predicting it at once
away from tile edges. Downsampling by 2 at each level makes the output equivariant to shifts that
are multiples of :attr:`ConditionalUNet.stride`; the tiler keeps tile origins on that lattice.
"""

from __future__ import annotations

import math

from unique_xr._optional import import_optional

torch = import_optional("torch", purpose="diffusion downscaling")
nn = torch.nn
F = torch.nn.functional


def timestep_embedding(t, dim: int):
    """Sinusoidal embedding of diffusion steps ``t`` (shape ``(batch,)``) into ``dim`` features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class PixelNorm(nn.Module):
    """Layer norm over channels at each pixel: local, so tiling does not change it."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a time-conditioned shift, and a skip connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1 = PixelNorm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, 2 * c_out)
        self.norm2 = PixelNorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, t_emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class ConditionalUNet(nn.Module):
    """UNet with ``len(channel_mults)`` levels, two residual blocks per level.

    Parameters
    ----------
    cond_channels
        Number of conditioning channels stacked after the noisy residual.
    base_channels, channel_mults
        Width of the first level and the multiplier of each level.
    """

    def __init__(self, cond_channels: int, *, base_channels: int = 32, channel_mults: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.cond_channels = cond_channels
        self.levels = len(channel_mults)
        t_dim = 4 * base_channels
        self.t_dim = t_dim
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.stem = nn.Conv2d(1 + cond_channels, base_channels, 3, padding=1)
        widths = [base_channels * m for m in channel_mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = base_channels
        skips = []
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(c, w, t_dim), ResBlock(w, w, t_dim)]))
            skips.append(w)
            c = w
            if i < self.levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = nn.ModuleList([ResBlock(c, c, t_dim), ResBlock(c, c, t_dim)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(nn.ModuleList([ResBlock(c + skips[i], w, t_dim), ResBlock(w, w, t_dim)]))
            c = w
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out_norm = PixelNorm(c)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this; tiles start on multiples of it."""
        return 2 ** (self.levels - 1)

    @property
    def receptive_radius(self) -> int:
        """Pixels beyond which an input cannot change an output (an upper bound)."""
        radius = 1  # stem
        scale = 1
        for i in range(self.levels):
            radius += 4 * scale  # two blocks of two 3x3 convs on the way down
            if i < self.levels - 1:
                radius += scale  # strided conv
                scale *= 2
        radius += 4 * scale  # middle
        for i in reversed(range(self.levels)):
            radius += 4 * scale
            if i > 0:
                scale //= 2
                radius += scale  # conv after upsampling
        return radius + 1  # output conv

    def forward(self, x_noisy, cond, t):
        """v-prediction for ``x_noisy`` (``(B, 1, H, W)``) given ``cond`` (``(B, C, H, W)``) at steps ``t``."""
        t_emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        h = self.stem(torch.cat([x_noisy, cond], dim=1))
        skips = []
        for i, (b1, b2) in enumerate(self.down):
            h = b2(b1(h, t_emb), t_emb)
            skips.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
        for block in self.mid:
            h = block(h, t_emb)
        for j, (b1, b2) in enumerate(self.up):
            h = b2(b1(torch.cat([h, skips.pop()], dim=1), t_emb), t_emb)
            if j < self.levels - 1:
                h = self.upsample[j](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))


def count_parameters(net) -> int:
    """Number of parameters (frozen ones, as in the EMA copy, included)."""
    return sum(p.numel() for p in net.parameters())
