r"""The convolutional network of the annual GPP/NEE model (pure torch, no xarray or pandas).

Input: a batch of feature maps as two channels, shape ``(batch, 2, steps, columns)``: channel 0
the standardised values with missing cells set to 0, channel 1 the mask (1 where observed). The
mask channel is what lets the network tell "zero" from "missing".

Each *multidimensional block* looks at the map three ways at once and mixes the results:

* along time (a ``k x 1`` kernel): phenology and lags within one variable;
* across all columns at one time step (a ``1 x columns`` kernel, broadcast back): how the
  variables and the forest type relate at that moment;
* a local ``3 x 3`` window: both together, for neighbouring variables.

Two blocks with residual connections and batch normalisation are followed by average pooling
along time to four seasons and a small dense head with two outputs (standardised annual GPP and
NEE).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AnnualNet", "MultiDimBlock"]


class MultiDimBlock(nn.Module):
    """One residual block of time, across-variable and local convolutions."""

    def __init__(self, channels: int, width: int, time_kernel: int = 3, norm: str = "batch") -> None:
        super().__init__()
        self.time = nn.Conv2d(channels, channels, (time_kernel, 1), padding=(time_kernel // 2, 0))
        self.across = nn.Conv2d(channels, channels, (1, width))
        self.local = nn.Conv2d(channels, channels, 3, padding=1)
        self.mix = nn.Conv2d(3 * channels, channels, 1)
        self.norm = _norm(norm, channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        across = self.across(x).expand(-1, -1, -1, x.shape[-1])
        h = torch.cat([self.time(x), across, self.local(x)], dim=1)
        return x + self.act(self.norm(self.mix(h)))


def _norm(kind: str, channels: int) -> nn.Module:
    # batch statistics keep each map's absolute level (a forest's mean LAI is information); a
    # per-map group norm would normalise it away
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(4, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'group' or 'none'; got {kind!r}.")


class AnnualNet(nn.Module):
    """Feature map -> (annual GPP, annual NEE), both standardised.

    Parameters
    ----------
    width
        Columns of the map (variables plus forest types).
    channels
        Feature channels of the blocks.
    blocks
        Number of :class:`MultiDimBlock`.
    seasons
        Rows left after pooling along time.
    hidden, dropout
        Dense head size and dropout before it.

    Examples
    --------
    >>> import torch
    >>> from unique_xr.models.cnn.net import AnnualNet
    >>> net = AnnualNet(width=11)
    >>> net(torch.zeros(3, 2, 12, 11)).shape
    torch.Size([3, 2])
    """

    def __init__(self, width: int, *, channels: int = 32, blocks: int = 2, seasons: int = 4, hidden: int = 64,
                 dropout: float = 0.2, time_kernel: int = 3, norm: str = "batch") -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, channels, 3, padding=1), nn.GELU())
        self.blocks = nn.Sequential(*[MultiDimBlock(channels, width, time_kernel, norm) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d((seasons, width))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * seasons * width, hidden), nn.GELU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))))
