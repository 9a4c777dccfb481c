"""Checks of the `{split: (inputs, labels)}` data every one-shot driver takes, so a mistake is one error naming the
split before any training (not a torch error deep in a loss, or a silently ignored split after an hour), and the
digest a driver records so that resuming with other data is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nas.errors import ConfigError

SPLITS = ("train", "valid", "test")
DIGEST_KEY = "data_sha1"
"""The journal metadata field the drivers record `splits_digest(data)` under."""


def check_splits(data: Any, required: Sequence[str] = ("train", "valid"), *,
                 input_shape: Sequence[int] | None = None, labels: bool | None = True, min_size: int = 1,
                 size_field: str = "data", sized: Sequence[str] | None = None, num_classes: int | None = None,
                 classes_field: str = "num_classes", dtype: torch.dtype = torch.float32) -> None:
    """`data` maps split names among `SPLITS` to `(x, y)` (to `x` when `labels` is False; either, split by split,
    when it is None): every `required` split is there, none is misspelt or empty, float inputs are `dtype` (the
    networks' parameters' dtype; float32 unless torch's default dtype was changed) and have
    `input_shape` per sample when given, and labels are one class index (int64) per input, in `range(num_classes)`
    when given (`classes_field` names that setting; else a label out of range is torch's bare IndexError mid-run).
    `min_size` samples in each `sized` split (default: the required ones; `size_field` names the setting that needs
    them)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"data: expected a dict of splits {{'train': (x, y), 'valid': (x, y)}}, got "
                          f"{type(data).__name__}")
    unknown = [s for s in data if s not in SPLITS]
    if unknown:
        raise ConfigError(f"data: unknown split {unknown[0]!r} (splits are {', '.join(SPLITS)})")
    for split in required:
        if split not in data:
            raise ConfigError(f"data: missing the {split!r} split (give {{'train': (x, y), 'valid': (x, y)}})")
    inputs: dict[str, Any] = {}
    for split, value in data.items():
        paired = isinstance(value, (tuple, list))
        if (labels or (labels is None and paired)) and not (paired and len(value) == 2):
            raise ConfigError(f"data[{split!r}]: expected (inputs, labels), got {type(value).__name__}")
        x, y = value if paired and labels is not False else (value, None)
        inputs[split] = x
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise ConfigError(f"data[{split!r}]: inputs must be a tensor with a batch dimension")
        if len(x) == 0:
            raise ConfigError(f"data[{split!r}]: the split is empty")
        if x.dtype.is_floating_point and x.dtype != dtype:  # numpy's float64, through torch.from_numpy
            use = "x.float()" if dtype == torch.float32 else f"x.to({dtype})"
            raise ConfigError(f"data[{split!r}]: inputs are {x.dtype}, the networks {dtype} (use {use})")
        if x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):  # training would diverge at once
            raise ConfigError(f"data[{split!r}]: the inputs hold NaN or infinite values (clean or impute them)")
        if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
            raise ConfigError(f"data[{split!r}]: inputs shaped {tuple(x.shape[1:])}, the space expects "
                              f"{tuple(input_shape)}")
        if y is not None:
            if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x):
                got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise ConfigError(f"data[{split!r}]: labels must be one class index per input ({len(x)}), got {got}")
            if y.dtype != torch.int64:  # the cross-entropy loss takes int64 class indices only
                raise ConfigError(f"data[{split!r}]: labels must be integer class indices (int64), got dtype "
                                  f"{y.dtype} (use y.long())")
            if num_classes is not None:
                low, high = int(y.min()), int(y.max())
                if low < 0 or high >= num_classes:
                    raise ConfigError(f"data[{split!r}]: label {low if low < 0 else high} is not a class of "
                                      f"{classes_field} = {num_classes}")
    for split in required if sized is None else sized:
        n = len(inputs[split])
        if n < min_size:
            raise ConfigError(f"{size_field}: {min_size} exceeds the {n} samples of {split!r}")


def splits_digest(data: Mapping[str, Any]) -> dict[str, str]:
    """Per split, a short sha1 of its tensors (dtype, shape and bytes of x, and of y when the split is (x, y)):
    which data a run used, so a resumed run can refuse other data of the same size, naming the split."""
    out = {}
    for split in sorted(data, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), str(s))):
        value = data[split]
        h = hashlib.sha1()
        for t in value if isinstance(value, (tuple, list)) else (value,):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.flatten().view(torch.uint8).numpy().tobytes())
        out[split] = h.hexdigest()[:16]
    return out
