"""Your own torch model as a search space: `from nas import nn as nnn`.

Write an ordinary `torch.nn.Module` subclassing `nnn.ModelSpace`, with choice points inside: value choices
(`nnn.Choice("width", [16, 32])`, usable in any argument of the mutable layers, and expressions of them such
as `width * 2`), `nnn.LayerChoice`, `nnn.InputChoice` and `nnn.Repeat`. Then `Net.space()` is the derived
`nas.spaces.Space`, `Net.build(arch)` a plain torch module of one architecture and `Net.supernet()` the
weight-sharing supernet (see docs/model_space.md).
"""

from nas.nn.frozen import ChosenInputs
from nas.nn.layers import BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, LayerNorm, Linear, MultiheadAttention
from nas.nn.model_space import ModelSpace, ModuleSpace, Supernet
from nas.nn.mutable import InputChoice, LayerChoice, Mutable, Repeat
from nas.nn.values import Choice, Expr, Value

__all__ = ["BatchNorm1d", "BatchNorm2d", "Choice", "ChosenInputs", "Conv1d", "Conv2d", "Expr", "InputChoice",
           "LayerChoice", "LayerNorm", "Linear", "ModelSpace", "ModuleSpace", "MultiheadAttention", "Mutable",
           "Repeat", "Supernet", "Value"]
