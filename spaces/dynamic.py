"""Elastic ("dynamic") layers for weight-sharing supernets (Once-for-All, Cai et al. 2020; BigNAS, Yu et al. 2020).

Each layer owns the weights of its largest configuration and slices them to the active one at forward
time; the active sizes are forward arguments (in-channels/in-features come from the input), so a layer
holds no mutable "active config" state.

* `DynamicConv1d` / `DynamicConv2d`: elastic in/out channels and kernel size. A smaller kernel is the centre
  of the next larger (already transformed) kernel passed through a learned kernel-transformation matrix,
  one per (larger, smaller) pair, shared by all channels and initialised to the identity (OFA).
* `DynamicBatchNorm`: batch norm over the first C channels; the running statistics are shared and sliced.
* `DynamicLinear`: elastic in/out features over any leading dims (MLPs, transformer projections).
* Channel sorting: `importance_order` ranks channels by the L1 norm of a weight; the `reorder_*` methods
  permute a layer's channels so that the important ones come first, where slicing keeps them.

Every layer has `export(...)`, which returns the equivalent plain torch layer (nn.ConvNd, nn.BatchNormNd,
nn.Linear) holding copies of the sliced weights (transformed kernels baked in), for standalone subnets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DynamicBatchNorm", "DynamicConv1d", "DynamicConv2d", "DynamicLinear", "importance_order"]


def importance_order(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Indices of `weight`'s channels along `dim`, most important first (L1 norm over all other dims)."""
    other = [d for d in range(weight.dim()) if d != dim % weight.dim()]
    return torch.argsort(weight.detach().abs().sum(dim=other), descending=True, stable=True)


def _centre(weight: torch.Tensor, size: int, dims: int) -> torch.Tensor:
    """The central `size`^dims window of a kernel (its last `dims` dimensions)."""
    start = (weight.shape[-1] - size) // 2
    for d in range(dims):
        weight = weight.narrow(weight.dim() - dims + d, start, size)
    return weight


class _DynamicConvNd(nn.Module):
    """Convolution with elastic in/out channels and kernel size ('same' padding, odd kernels)."""

    dims = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] | int = 1,
                 stride: int = 1, depthwise: bool = False, bias: bool = False,
                 transform_kernels: bool = True) -> None:
        super().__init__()
        sizes = sorted({int(k) for k in ([kernel_sizes] if isinstance(kernel_sizes, int) else kernel_sizes)})
        if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f"kernel_sizes: expected odd positive ints, got {kernel_sizes!r}")
        if depthwise and in_channels != out_channels:
            raise ValueError(f"depthwise conv needs in_channels == out_channels, got {in_channels} and {out_channels}")
        self.max_in, self.max_out = in_channels, out_channels
        self.kernel_sizes = tuple(sizes)
        self.stride, self.depthwise = stride, depthwise
        k = sizes[-1]
        self.weight = nn.Parameter(torch.empty(out_channels, 1 if depthwise else in_channels, *([k] * self.dims)))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # "7to5": maps the centre 5^dims of the (transformed) 7-kernel to the 5-kernel.
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small ** self.dims))
            for big, small in zip(sizes[1:], sizes[:-1])}) if transform_kernels else None

    def weight_for(self, in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
        """The active kernel: sliced channels, then centre crops and transforms from the largest size down."""
        self._check(in_channels, out_channels, kernel_size)
        w = self.weight[:out_channels] if self.depthwise else self.weight[:out_channels, :in_channels]
        for big, small in zip(self.kernel_sizes[:0:-1], self.kernel_sizes[-2::-1]):
            if big <= kernel_size:
                break
            w = _centre(w, small, self.dims)
            if self.transforms is not None:
                o, i = w.shape[:2]
                w = F.linear(w.reshape(o, i, -1), self.transforms[f"{big}to{small}"]).reshape(o, i, *([small] * self.dims))
        return w

    def _check(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        if not 0 < in_channels <= self.max_in:
            raise ValueError(f"in_channels: {in_channels} is outside 1..{self.max_in}")
        if not 0 < out_channels <= self.max_out:
            raise ValueError(f"out_channels: {out_channels} is outside 1..{self.max_out}")
        if self.depthwise and in_channels != out_channels:
            raise ValueError(f"depthwise conv: out_channels {out_channels} must equal in_channels {in_channels}")
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel_size: {kernel_size} is not one of {list(self.kernel_sizes)}")

    def forward(self, x: torch.Tensor, out_channels: int | None = None, kernel_size: int | None = None) -> torch.Tensor:
        """Convolve `x` (its channel count is the active in_channels) with the active slice."""
        cin = x.shape[1]
        cout = cin if self.depthwise else (out_channels or self.max_out)
        k = kernel_size or self.kernel_sizes[-1]
        w = self.weight_for(cin, cout, k)
        b = self.bias[:cout] if self.bias is not None else None
        conv = F.conv1d if self.dims == 1 else F.conv2d
        return conv(x, w, b, self.stride, k // 2, 1, cin if self.depthwise else 1)

    def export(self, in_channels: int, out_channels: int | None = None, kernel_size: int | None = None) -> nn.Module:
        """A plain `nn.Conv1d`/`nn.Conv2d` computing this layer's active configuration."""
        cout = in_channels if self.depthwise else (out_channels or self.max_out)
        k = kernel_size or self.kernel_sizes[-1]
        cls = nn.Conv1d if self.dims == 1 else nn.Conv2d
        conv = cls(in_channels, cout, k, self.stride, k // 2, groups=in_channels if self.depthwise else 1,
                   bias=self.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(self.weight_for(in_channels, cout, k))
            if self.bias is not None:
                conv.bias.copy_(self.bias[:cout])
        return conv

    @torch.no_grad()
    def reorder_out(self, perm: torch.Tensor) -> None:
        """Permute the output channels (for a depthwise conv: its only channels)."""
        self.weight.copy_(self.weight[perm])
        if self.bias is not None:
            self.bias.copy_(self.bias[perm])

    @torch.no_grad()
    def reorder_in(self, perm: torch.Tensor) -> None:
        """Permute the input channels (to follow a reordered producer)."""
        if self.depthwise:
            raise ValueError("a depthwise conv's channels are reordered with reorder_out")
        self.weight.copy_(self.weight[:, perm])

    def extra_repr(self) -> str:
        dw = ", depthwise" if self.depthwise else ""
        return f"{self.max_in}, {self.max_out}, kernel_sizes={list(self.kernel_sizes)}, stride={self.stride}{dw}"


class DynamicConv1d(_DynamicConvNd):
    """1-D elastic convolution: `conv(x, out_channels, kernel_size)` with x of shape (N, C_in, L)."""

    dims = 1


class DynamicConv2d(_DynamicConvNd):
    """2-D elastic convolution: `conv(x, out_channels, kernel_size)` with x of shape (N, C_in, H, W)."""

    dims = 2


class DynamicBatchNorm(nn.Module):
    """Batch norm over the first C channels of its input, for any number of spatial dims.

    Wraps a plain `nn.BatchNorm1d` (`self.bn`) so that generic code (BN recalibration) finds it; the
    active slice of the running statistics is updated in place, cumulatively when momentum is None.
    """

    def __init__(self, num_features: int, dims: int = 1, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.dims = dims
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, c = self.bn, x.shape[1]
        if c > bn.num_features:
            raise ValueError(f"input has {c} channels, the layer at most {bn.num_features}")
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        use_batch = bn.training or not bn.track_running_stats
        mean = bn.running_mean[:c] if bn.running_mean is not None else None
        var = bn.running_var[:c] if bn.running_var is not None else None
        return F.batch_norm(x, mean, var, bn.weight[:c], bn.bias[:c], use_batch, factor, bn.eps)

    def export(self, num_features: int) -> nn.Module:
        """A plain `nn.BatchNorm{dims}d` over the first `num_features` channels (statistics copied)."""
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[self.dims]
        out = cls(num_features, eps=self.bn.eps, momentum=self.bn.momentum)
        state = {k: (v[:num_features] if v.dim() else v).clone() for k, v in self.bn.state_dict().items()}
        out.load_state_dict(state)
        return out

    @torch.no_grad()
    def reorder(self, perm: torch.Tensor) -> None:
        """Permute the channels (weight, bias and running statistics together)."""
        for t in (self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var):
            t.copy_(t[perm])


class DynamicLinear(nn.Module):
    """A linear layer whose active in/out features are the first ones of its largest weight.

    `layer(x, out_features)` uses x.shape[-1] input features and any leading dims, so it serves MLP heads
    and elastic transformer projections (hidden size, MLP ratio, head count x head dim) alike.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        ref = nn.Linear(in_features, out_features, bias=bias)  # torch's default initialisation
        self.max_in, self.max_out = in_features, out_features
        self.weight = ref.weight
        self.bias = ref.bias

    def weight_for(self, in_features: int, out_features: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The active (weight, bias) slice."""
        if not 0 < in_features <= self.max_in:
            raise ValueError(f"in_features: {in_features} is outside 1..{self.max_in}")
        if not 0 < out_features <= self.max_out:
            raise ValueError(f"out_features: {out_features} is outside 1..{self.max_out}")
        bias = self.bias[:out_features] if self.bias is not None else None
        return self.weight[:out_features, :in_features], bias

    def forward(self, x: torch.Tensor, out_features: int | None = None) -> torch.Tensor:
        w, b = self.weight_for(x.shape[-1], out_features or self.max_out)
        return F.linear(x, w, b)

    def export(self, in_features: int, out_features: int | None = None) -> nn.Linear:
        """A plain `nn.Linear` with copies of the active slice."""
        w, b = self.weight_for(in_features, out_features or self.max_out)
        out = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            out.weight.copy_(w)
            if b is not None:
                out.bias.copy_(b)
        return out

    @torch.no_grad()
    def reorder_out(self, perm: torch.Tensor) -> None:
        """Permute the output features."""
        self.weight.copy_(self.weight[perm])
        if self.bias is not None:
            self.bias.copy_(self.bias[perm])

    @torch.no_grad()
    def reorder_in(self, perm: torch.Tensor) -> None:
        """Permute the input features (to follow a reordered producer)."""
        self.weight.copy_(self.weight[:, perm])

    def extra_repr(self) -> str:
        return f"in_features<={self.max_in}, out_features<={self.max_out}, bias={self.bias is not None}"
