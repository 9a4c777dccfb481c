"""Search spaces: the space language (`Space`, `Choice`, `Integer`, `Subset`, `Repeat`, `Conditional`) and built-in
spaces.

Built-in model spaces import torch (and PyG), so they load on first use: `from nas.spaces import GNNSpace`.
"""

from __future__ import annotations

import importlib
from typing import Any

from nas.architecture import Architecture, FrozenDict, canonical_json
from nas.spaces.cell_graph import CellGraph
from nas.spaces.params import Choice, Conditional, Integer, Subset
from nas.spaces.space import Repeat, Slot, Space, path_str

_LAZY = {
    "ModelSpace": "nas.spaces.model_space",
    "NASBenchGraphSpace": "nas.spaces.nasbench_graph",
    "NasBench201Space": "nas.spaces.cell",
    "DartsSpace": "nas.spaces.cell",
    "FlexiBertSpace": "nas.spaces.transformer",
    "ElasticTransformerSpace": "nas.spaces.transformer",
    "GNNSpace": "nas.spaces.gnn",
    "OFASpace": "nas.spaces.ofa",
}


BUILTIN = {
    "nas-bench-graph": "nas.spaces.nasbench_graph.NASBenchGraphSpace",
    "nas-bench-201": "nas.spaces.cell.NasBench201Space",
    "darts": "nas.spaces.cell.DartsSpace",
    "ofa": "nas.spaces.ofa.OFASpace",
    "flexibert": "nas.spaces.transformer.FlexiBertSpace",
    "elastic-transformer": "nas.spaces.transformer.ElasticTransformerSpace",
    "gnn": "nas.spaces.gnn.GNNSpace",
}
"""The built-in spaces by name (`nas spaces` lists them); each class is importable from `nas.spaces` too."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas.spaces' has no attribute {name!r}")


__all__ = ["BUILTIN", "Architecture", "CellGraph", "Choice", "Conditional", "Integer", "Repeat", "Space", "Subset",
           *_LAZY]
_INTERNAL = (FrozenDict, Slot, canonical_json, path_str)
"""Helpers of the space language that stay importable from here (nas.strategies.rl imports `Slot`) but are not part
of the documented API, so `from nas.spaces import *` leaves them out."""
