"""Search spaces: the space language (`Space`, `Choice`, `Integer`, `Repeat`, `Conditional`) and built-in spaces."""

from nas.spaces.architecture import Architecture, FrozenDict, canonical_json
from nas.spaces.params import Choice, Conditional, Integer, Repeat
from nas.spaces.space import Slot, Space, path_str

__all__ = ["Architecture", "Choice", "Conditional", "FrozenDict", "Integer", "Repeat", "Slot", "Space",
           "canonical_json", "path_str"]
