"""Layer decomposition of a model space you wrote with `nas.nn` (a `ModuleSpace`), for lookup-table latency.

An architecture's layers are what its frozen subnet (`supernet.subnet(arch)`, plain torch layers) runs on
the space's example input at batch size 1, in execution order: the calls of its leaf modules and the
function calls of every `forward` (`x + y`, `torch.relu`, `x.mean(-1)`), traced with `torch.fx` (a model
torch.fx cannot trace gives its leaf-module calls only, recorded by forward hooks). The subnet runs at batch
sizes 1 and 2, and comparing the two tells, for every tensor a layer receives, which dimension carries the
batch (dim 1 of a sequence-first `[L, B, C]` tensor) or that none does (a parameter, an index tensor); a tensor
whose shapes do not tell (two dimensions change, or a different rank) is a ConfigError naming the layer. Each
call is a `LayerConfig` with the shape of its first tensor argument without the batch as `input_shape`:

* a module: its class as `kind` (`Conv1d`, `BatchNorm1d`, `ReLU`; a class from outside `torch.nn` by
  its import path), its constructor arguments read back from its attributes of the same name
  (`in_channels`, `kernel_size`, `stride`, `bias`, ...) as options. A leaf is a module without
  children, or a `torch.nn` layer that has some (`MultiheadAttention`); containers and your own modules
  are entered;
* a function: `fn:<import path>` (`fn:_operator.add`, `fn:torch.relu`) or `method:<tensor method>`
  (`method:mean`), timed as a `Function` module. A call whose arguments are not tensors, lists and plain
  values (an index with a slice, a dtype) is left out, as is one without a tensor argument;
* a call that is not one float tensor with the batch in dim 0 records its arguments' shapes (at batch size 1)
  and plain values as the `call` option (attention's query, key and value; a list of tensors; a method's
  dim): a tensor whose batch is not in dim 0 carries `"batch": <dim>`, one with no batch `"batch": null`, and
  a tensor passed again in the same call `{"same": <position>}` (self-attention's query, key and value are
  one tensor, so the layer is timed on the same path as in the network). A table times the layer at its
  batch size by scaling only the batch dimensions.

    adapter = NNLayers(space)                      # or nas.hardware.adapter_for(space)
    table = build_table(adapter, "lut.jsonl")      # `nas hardware build-lut path/to/net.py:Net` on the CLI
    lut_latency(table, adapter).latency_ms(arch)   # the sum of the table's values for arch's layers

`distinct_layers()` runs the `covering_archs(space)`: every combination of options with the blocks of each
`Repeat` alike. That covers every layer when a block's input shape does not depend on the choices of the
blocks before it; otherwise (a per-block stride, say) give the adapter the architectures to cover too:
`NNLayers(space, archs=...)`.

Latency of one part of a network from a table (for instance per candidate of a `LayerChoice`, the
latency term of a DARTS / ProxylessNAS search):

* `module_layers(module, *inputs)`: the `LayerConfig`s any plain module runs on `inputs`;
  `table.predict(module_layers(m, x))` is its latency from the table.
* `NNLayers.choice_layers(arch)`: a `ChoiceLayers` for every `LayerChoice` that runs in `arch`: its module
  path in the supernet (`supernet.net.get_submodule(path)`), label, chosen candidate, and the layers each
  candidate runs on the input that LayerChoice receives in `arch`, once per call when the model calls it more
  than once (choices inside a candidate that `arch` does not set take their first option).
* `NNLayers.choice_latency(table, arch)`: {path: {candidate: ms}}, the same summed from a table built for
  this space (its `distinct_layers()` hold every candidate's layers).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import itertools
import json
import logging
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.architecture import canonical_json
from nas.counts import LeafCount, is_layer as _is_layer, layer_modules, parameters_entry
from nas.errors import ConfigError
from nas.hardware.layers import LayerAdapter, LayerConfig, no_bytes, unique
from nas.hardware.lut import LatencyTable
from nas.nn.derive import bind, freeze
from nas.nn.model_space import ModuleSpace, Supernet
from nas.nn.mutable import Context, LayerChoice, Mutable
from nas.scripts import import_object
from nas.spaces.params import Conditional, Subset
from nas.spaces.space import Repeat as RepeatField, Space

__all__ = ["ChoiceLayers", "Function", "NNLayers", "TracingWarning", "covering_archs", "function_config",
           "layer_config", "module_layers"]

log = logging.getLogger(__name__)

COVER_LIMIT = 4096  # architectures `covering_archs` may enumerate before it asks for them explicitly
_SKIPPED_ARGS = {"self", "device", "dtype"}


class TracingWarning(UserWarning):
    """A model torch.fx cannot trace: its layers are its leaf modules only."""


@dataclass(frozen=True)
class _Call:
    """One recorded layer call: its module path (a function call: its node name), the module, its layer."""

    path: str
    module: nn.Module | None  # None: a function call
    layer: LayerConfig


@dataclass(frozen=True)
class ChoiceLayers:
    """The layers of each candidate of one `LayerChoice` at the input it receives in an architecture (at each of its
    inputs, in call order, when the model calls it more than once)."""

    path: str                                # module path in the supernet: supernet.net.get_submodule(path)
    label: str                               # the LayerChoice's label (one label may sit at several paths)
    chosen: Any                              # the candidate the architecture picks
    candidates: dict[Any, list[LayerConfig]]  # candidate key -> its layers, in execution order


def module_layers(module: nn.Module, *inputs: Any, batched: Sequence[Any] | None = None) -> list[LayerConfig]:
    """The layers (leaf-module and function calls) a plain torch `module` runs on `inputs`, in order (eval
    mode, no grad); a module that is itself a layer is one. `batched`: the same inputs at twice the batch size
    (default: each input tensor repeated along dim 0), from which each layer's batch dimensions are read."""
    return [call.layer for call in _record(module, inputs, batched)]


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return layer_modules(module)


def _doubled(inputs: Sequence[Any]) -> tuple[Any, ...]:
    """`inputs` at twice the batch, the batch being dim 0 of every input tensor (the example-input convention)."""
    return tuple(torch.cat([x, x]) if isinstance(x, torch.Tensor) and x.dim() else x for x in inputs)


def _record(module: nn.Module, inputs: Sequence[Any], batched: Sequence[Any] | None = None) -> list[_Call]:
    """The layer calls of `module(*inputs)` in eval mode: traced with torch.fx (leaf modules and the
    functions of each forward), or by forward hooks on the leaf modules where tracing fails. The module runs
    on `batched` (the inputs at twice the batch) first, so each call's batch dimensions are known."""
    batched = _doubled(inputs) if batched is None else tuple(batched)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            if _is_layer(module):
                return _hooked(module, inputs, batched)  # tracing would open the layer up into its functions
            try:
                gm = torch.fx.GraphModule(module, _Tracer().trace(module))
            except Exception as e:  # noqa: BLE001 - any tracing failure: fall back to the leaf modules
                log.debug("torch.fx cannot trace %s: %s", type(module).__name__, e)
                warnings.warn(f"{type(module).__name__}: torch.fx cannot trace it (data-dependent control flow?); "
                              "its latency table times its leaf modules only, not the functions in its forward",
                              TracingWarning, stacklevel=2)
                return _hooked(module, inputs, batched)
            return _traced(gm, inputs, batched, type(module).__name__)
    finally:
        module.train(was_training)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _is_layer(m)


def _tensors(x: Any) -> list[torch.Tensor]:
    """The tensors in `x` (tensors, lists, tuples and dicts nesting them), in the order `_spec` visits them."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def _shapes(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in _tensors([list(args), dict(kwargs)])]


def _batch_dims(small: Sequence[tuple[int, ...]], large: Sequence[tuple[int, ...]] | None,
                where: str) -> list[int | None]:
    """Per tensor of one call, the dimension that carries the batch (its size doubles from the run at batch
    size 1 to the one at 2) or None (no dimension changes); a ConfigError where the shapes do not tell."""
    if large is None or len(large) != len(small):
        raise ConfigError(f"layer {where}: the network runs other layers at batch size 2 than at batch size 1, so "
                          "the batch dimension of its inputs cannot be determined for a lookup table")
    out: list[int | None] = []
    for i, (a, b) in enumerate(zip(small, large)):
        changed = [d for d in range(len(a)) if len(a) == len(b) and a[d] != b[d]]
        if len(a) == len(b) and not changed:
            out.append(None)
        elif len(changed) == 1 and b[changed[0]] == 2 * a[changed[0]]:
            out.append(changed[0])
        else:
            raise ConfigError(f"layer {where}: tensor argument {i} has shape {list(a)} at batch size 1 and {list(b)} "
                              "at batch size 2, so the dimension that carries the batch cannot be determined (a lookup "
                              "table times the layer at other batch sizes by scaling that dimension only)")
    return out


class _Recorder(torch.fx.Interpreter):
    """Runs a traced module and records each layer call with the values it was called with. Without
    `reference` it notes each call's tensor shapes only (the run at batch size 2); with it, it records the
    calls, each tensor's batch dimension read from the reference shapes."""

    def __init__(self, gm: torch.fx.GraphModule, reference: dict[str, list[tuple[int, ...]]] | None = None) -> None:
        super().__init__(gm)
        self.reference = reference
        self.shapes: dict[str, list[tuple[int, ...]]] = {}
        self.calls: list[_Call] = []

    def run_node(self, n: torch.fx.Node) -> Any:
        if n.op in ("call_module", "call_function", "call_method"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if self.reference is None:
                self.shapes[n.name] = _shapes(args, kwargs)
            elif n.op == "call_module":
                mod = self.module.get_submodule(str(n.target))
                marks = _batch_dims(_shapes(args, kwargs), self.reference.get(n.name), str(n.target))
                self.calls.append(_Call(str(n.target), mod, layer_config(mod, tuple(args), str(n.target), marks)))
            else:
                target = n.target if n.op == "call_function" else str(n.target)
                if _function_kind(target, tuple(args)) is not None:
                    marks = _batch_dims(_shapes(args, kwargs), self.reference.get(n.name), n.name)
                    layer = function_config(target, tuple(args), kwargs, marks)
                    if layer is not None:
                        self.calls.append(_Call(n.name, None, layer))
        return super().run_node(n)


def _at_batch_2(run: Callable[[], Any], name: str) -> None:
    try:
        run()
    except Exception as e:  # noqa: BLE001 - the user's model: say why its layers' batch dimensions are unknown
        raise ConfigError(f"{name}: the network fails at batch size 2 ({type(e).__name__}: {e}), so the batch "
                          "dimension of its layers' inputs cannot be determined for a lookup table") from e


def _traced(gm: torch.fx.GraphModule, inputs: Sequence[Any], batched: Sequence[Any], name: str) -> list[_Call]:
    reference = _Recorder(gm)
    _at_batch_2(lambda: reference.run(*batched), name)
    recorder = _Recorder(gm, reference.shapes)
    recorder.run(*inputs)
    return recorder.calls


def _hooked(module: nn.Module, inputs: Sequence[Any], batched: Sequence[Any]) -> list[_Call]:
    leaves = _leaves(module)
    names = {id(m): p for p, m in leaves}
    reference: list[tuple[str, list[tuple[int, ...]]]] = []
    calls: list[_Call] = []

    def note(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        reference.append((names[id(mod)], _shapes(args, {})))

    def hook(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        path = names[id(mod)]
        i = len(calls)
        large = reference[i][1] if i < len(reference) and reference[i][0] == path else None
        calls.append(_Call(path, mod, layer_config(mod, args, path, _batch_dims(_shapes(args, {}), large, path))))

    for run, fn in ((batched, note), (inputs, hook)):
        handles = [m.register_forward_hook(fn) for _, m in leaves]
        try:
            if fn is note:
                _at_batch_2(lambda: module(*run), type(module).__name__)
            else:
                module(*run)
        finally:
            for h in handles:
                h.remove()
    if len(calls) != len(reference):
        raise ConfigError(f"{type(module).__name__}: the network runs other layers at batch size 2 than at batch "
                          "size 1, so the batch dimension of their inputs cannot be determined for a lookup table")
    return calls


def _function_kind(target: Callable[..., Any] | str, args: tuple[Any, ...]) -> str | None:
    """`fn:<import path>` or `method:<name>` for a function call a table can replay, else None."""
    first = _first_tensor(args)
    if first is None or (target is operator.getitem and not isinstance(args[0], torch.Tensor)):
        return None
    if isinstance(target, str):
        return f"method:{target}"
    path = _function_path(target)
    return None if path is None else f"fn:{path}"


def function_config(target: Callable[..., Any] | str, args: tuple[Any, ...],
                    kwargs: Mapping[str, Any], batch: Sequence[int | None] | None = None) -> LayerConfig | None:
    """The `LayerConfig` of a function call `target(*args, **kwargs)` of a forward (`target` a tensor method's
    name for `args[0].target(...)`); None for one without a tensor argument, or that cannot be replayed
    (a function no import path finds, an argument that is no tensor, list or plain value). `batch`: per tensor
    argument (in order, then those of `kwargs`), the dimension carrying the batch or None; default dim 0."""
    kind = _function_kind(target, args)
    if kind is None:
        return None
    state = _SpecState(batch)
    try:
        options = {"call": json.dumps(_spec(list(args), kind, state), separators=(",", ":"))}
        if kwargs:
            options["kwargs"] = json.dumps(_spec(dict(kwargs), kind, state), separators=(",", ":"), sort_keys=True)
    except ConfigError:
        return None
    return LayerConfig.make(kind, _sample_shape(args, batch), **options)


_PATHS: dict[Any, str | None] = {}


def _function_path(target: Callable[..., Any]) -> str | None:
    """An import path that finds `target` again (`torch.relu`, `_operator.add`), or None (memoised)."""
    try:
        return _PATHS[target]
    except (KeyError, TypeError):
        pass
    path = _find_path(target)
    try:
        _PATHS[target] = path
    except TypeError:  # unhashable: not memoised
        pass
    return path


def _find_path(target: Callable[..., Any]) -> str | None:
    module, name = getattr(target, "__module__", None) or "", getattr(target, "__name__", "")
    qualname = getattr(target, "__qualname__", name)
    for path in (f"{module}.{qualname}", f"{module}.{name}", f"torch.{name}"):
        try:
            if import_object(path, "function") is target:
                return path
        except ConfigError:
            continue
    return None


class Function(nn.Module):
    """One function call of a forward as a module: `Function("fn:torch.relu")(x)` is `torch.relu(x)`,
    `Function("method:mean", {"dim": -1})(x)` is `x.mean(dim=-1)` (what a table times for it)."""

    def __init__(self, kind: str, kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.kind, self.kwargs = kind, dict(kwargs or {})
        what, _, name = kind.partition(":")
        if what not in ("fn", "method") or not name:
            raise ConfigError(f"layer kind {kind!r}: expected fn:<import path> or method:<tensor method>")
        self.fn = import_object(name, "layer.kind") if what == "fn" else None
        self.method = name if what == "method" else None

    def forward(self, *args: Any) -> Any:
        if self.method is not None:
            return getattr(args[0], self.method)(*args[1:], **self.kwargs)
        return self.fn(*args, **self.kwargs)

    def extra_repr(self) -> str:
        return f"{self.kind}, kwargs={self.kwargs}"


def _kind(module: nn.Module) -> str:
    cls = type(module)
    if getattr(nn, cls.__name__, None) is cls:
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value: Any) -> Any:
    """`value` as a hashable JSON value (lists become tuples); ValueError when it has no such form."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, torch.Size)):
        return tuple(_plain(v) for v in value)
    raise ValueError(type(value).__name__)


# The constructor arguments of `torch.nn` RNNs (they declare `__init__(*args, **kwargs)`), which `RNNBase` stores as
# attributes; `proj_size` is LSTM's only (GRU and RNN refuse it), `nonlinearity` RNN's.
_RNN_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
STATE = "_state"  # the option that separates layers their constructor arguments do not rebuild (`_fallback_state`)


def _options(module: nn.Module) -> dict[str, Any]:
    """The module's constructor arguments read back from its attributes of the same name (an RNN's: `_RNN_ARGS`)."""
    if type(module) in (nn.RNN, nn.GRU, nn.LSTM):
        names = _RNN_ARGS + (("proj_size",) if isinstance(module, nn.LSTM) else ()) + \
            (("nonlinearity",) if isinstance(module, nn.RNN) else ())
        return {name: _plain(getattr(module, name)) for name in names}
    out: dict[str, Any] = {}
    for name, p in inspect.signature(type(module).__init__).parameters.items():
        if name in _SKIPPED_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(module, name):
            continue
        value = getattr(module, name)
        if name == "bias" and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None
        try:
            out[name] = _plain(value)
        except ValueError:
            continue  # not a plain value (a callable, a module): the rebuild check keeps a copy of the module
    return out


def _state(module: nn.Module) -> tuple[str, ...]:
    """The shape of every parameter and buffer (`w1:128x16`), in registration order: what tells two modules of one
    class apart where their constructor arguments cannot all be read back. Plain attributes are left out: one a
    forward changes (a call counter, a cache) would give the layer a new key at each call."""
    return tuple(f"{name}:{'x'.join(str(s) for s in t.shape)}"
                 for name, t in itertools.chain(module.named_parameters(), module.named_buffers()))


_REBUILDS: dict[tuple[Any, ...], bool] = {}  # (class, options, repr, state) -> whether the options rebuild it


def _rebuilds(module: nn.Module, options: Mapping[str, Any]) -> bool:
    """Whether `type(module)(**options)` is the same layer: same `repr` and parameter and buffer shapes (its
    initialisation draws leave torch's random generator as it was); memoised."""
    key = (type(module), tuple(sorted(options.items())), repr(module), _state(module))
    if key not in _REBUILDS:
        try:
            with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                twin = type(module)(**options)
            _REBUILDS[key] = repr(twin) == key[2] and _state(twin) == key[3]
        except Exception:  # noqa: BLE001 - any failure (a required argument not read back) means: not rebuilt
            _REBUILDS[key] = False
    return _REBUILDS[key]


def _fallback_state(module: nn.Module, options: Mapping[str, Any]) -> dict[str, Any]:
    """`{STATE: _state(module)}` for a module its read-back options do not rebuild (arguments stored under other
    names, `*args`), so that two such layers whose weights differ in shape get two lookup-table keys; nothing for a
    module they rebuild, whose key stays its class, options and input shape alone."""
    if _rebuilds(module, options):
        return {}
    state = _state(module)
    return {STATE: state} if state else {}


class _SpecState:
    """Walks one call's tensors in order: their batch dimensions (`marks`; None: dim 0 for all) and the
    positions of those already seen (a tensor passed twice is `{"same": position}`)."""

    def __init__(self, marks: Sequence[int | None] | None = None) -> None:
        self.marks, self.position, self.seen = marks, 0, {}  # type: ignore[var-annotated]

    def tensor(self, x: torch.Tensor) -> dict[str, Any]:
        position, self.position = self.position, self.position + 1
        if id(x) in self.seen:
            return {"same": self.seen[id(x)]}
        self.seen[id(x)] = position
        spec: dict[str, Any] = {"shape": list(x.shape)}
        if x.dtype != torch.float32:
            spec["dtype"] = str(x.dtype).removeprefix("torch.")
        mark = self.marks[position] if self.marks is not None else 0
        if mark != 0 and x.dim():
            spec["batch"] = mark  # absent: dim 0; None: no batch dimension
        return spec


def _spec(x: Any, where: str, state: _SpecState | None = None) -> Any:
    """Shapes of a call's arguments: a tensor as {"shape": [...]} (and its dtype when not float32, its batch
    dimension when not 0, or {"same": position} for a tensor passed again)."""
    state = _SpecState() if state is None else state
    if isinstance(x, torch.Tensor):
        return state.tensor(x)
    if isinstance(x, (list, tuple)):
        return [_spec(v, where, state) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _spec(v, where, state) for k, v in x.items()}
    try:
        return _plain(x)
    except ValueError:
        raise ConfigError(f"{where}: a layer called with a {type(x).__name__} argument cannot be replayed "
                          "for a latency table (tensors, lists of tensors and plain values can)") from None


def _sample_shape(args: tuple[Any, ...], batch: Sequence[int | None] | None) -> tuple[int, ...]:
    """`input_shape`: the first tensor argument's shape without its batch dimension (a tensor without one: its
    whole shape; a batch folded into a dimension, [L*B, C] at batch 1: the shape as it is). Without `batch`,
    the shape without dim 0."""
    first = _first_tensor(args)
    if first is None or not first.dim():
        return ()
    if batch is None:
        return tuple(first.shape[1:])
    position = next(i for i, t in enumerate(_tensors(list(args))) if t is first)
    mark = batch[position]
    shape = tuple(first.shape)
    if mark is None or shape[mark] != 1:
        return shape
    return shape[:mark] + shape[mark + 1:]


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def layer_config(module: nn.Module, args: tuple[Any, ...], path: str = "",
                 batch: Sequence[int | None] | None = None) -> LayerConfig:
    """The `LayerConfig` of one call `module(*args)` (`path` names the module in errors; `batch`: per tensor
    argument, the dimension carrying the batch or None; default dim 0)."""
    options = _options(module)
    options.update(_fallback_state(module, options))
    plain = len(args) == 1 and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.float32 and \
        (batch is None or (args[0].dim() > 0 and args[0].shape[0] == 1 and batch[0] == 0))
    if not plain:
        options["call"] = json.dumps(_spec(list(args), path or _kind(module), _SpecState(batch)),
                                     separators=(",", ":"))
    return LayerConfig.make(_kind(module), _sample_shape(args, batch), **options)


def _layer_class(kind: str) -> type:
    cls = getattr(nn, kind, None) if "." not in kind else import_object(kind, "layer.kind")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"layer kind {kind!r}: not a torch module class")
    return cls


def _materialise(spec: Any, batch_size: int, g: torch.Generator, made: list[torch.Tensor] | None = None) -> Any:
    """Tensors for a recorded call (`_spec`) at `batch_size`: only batch dimensions scale (recorded at batch 1,
    dim 0 unless marked), a tensor passed again is the same tensor."""
    made = [] if made is None else made
    if isinstance(spec, dict) and "same" in spec and len(spec) == 1:
        made.append(made[spec["same"]])
        return made[-1]
    if isinstance(spec, dict) and "shape" in spec:
        shape = list(spec["shape"])
        dim = spec.get("batch", 0)
        if shape and dim is not None:
            shape[dim] *= batch_size
        dtype = getattr(torch, spec.get("dtype", "float32"))
        made.append(torch.randn(shape, generator=g, dtype=dtype) if dtype.is_floating_point
                    else torch.zeros(shape, dtype=dtype))
        return made[-1]
    if isinstance(spec, list):
        return [_materialise(v, batch_size, g, made) for v in spec]
    return spec


def covering_archs(space: Space, limit: int = COVER_LIMIT) -> list[dict[str, Any]]:
    """Every architecture of `space` whose `Repeat` blocks are all alike (ConfigError past `limit` of them)."""
    return _alike(space, limit)


def _alike(space: Space, limit: int) -> list[dict[str, Any]]:
    fields = space.fields
    controllers = {n.on for n in fields.values() if isinstance(n, Conditional)} | \
        {n.count for n in fields.values() if isinstance(n, RepeatField) and isinstance(n.count, str)}
    partials: list[dict[str, Any]] = [{}]
    for name in sorted(fields, key=lambda n: n not in controllers):
        node, out = fields[name], []
        for partial in partials:
            inner = node
            if isinstance(node, Conditional):
                if not node.active(partial[node.on]):
                    out.append(partial)
                    continue
                inner = node.node
            out += [{**partial, name: value} for value in _values(inner, partial, limit)]
            if len(out) > limit:
                raise ConfigError(f"space: more than {limit} architectures with alike Repeat blocks; give the "
                                  "layer adapter the architectures to cover: NNLayers(space, archs=[...])")
        partials = out
    return partials


def _values(node: Any, partial: Mapping[str, Any], limit: int) -> list[Any]:
    if isinstance(node, RepeatField):
        count = node.count if isinstance(node.count, int) else int(partial[node.count])
        return [[dict(block) for _ in range(count)] for block in _alike(node.block, limit)]
    if isinstance(node, Space):
        return _alike(node, limit)
    if isinstance(node, Subset):
        return [node.value(c) for c in itertools.combinations(range(node.n), node.k)]
    return [node.value(i) for i in range(node.cardinality)]


class NNLayers(LayerAdapter):
    """`LayerAdapter` for a `ModuleSpace`: the leaf-module and function calls of each architecture's frozen
    subnet."""

    name = "nn"

    def __init__(self, space: ModuleSpace, archs: Sequence[Mapping[str, Any]] | None = None) -> None:
        if not isinstance(space, ModuleSpace):
            raise ConfigError(f"space: NNLayers decomposes a nas.nn ModuleSpace, got {type(space).__name__}")
        super().__init__(space)
        self.space: ModuleSpace = space
        self.archs = None if archs is None else [space.validate(a) for a in archs]
        self._net: Supernet | None = None
        self._cache: dict[str, list[_Call]] = {}
        self._held: dict[str, LeafCount | None] = {}  # per architecture: parameters no called layer holds
        self._copies: dict[str, nn.Module] = {}   # layers whose class cannot be rebuilt from their options
        self._checked: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # key -> first module's path, repr, state

    def describe(self) -> dict[str, Any]:
        """The decisions, the model's structure and its input shapes, not where its class was loaded from: a table
        built from `my_net.py:Net` serves `from my_net import Net`, and survives moving the project folder."""
        x = self.space.example_input({}, 1)
        shapes = [list(t.shape) for t in (x if isinstance(x, tuple) else (x,)) if isinstance(t, torch.Tensor)]
        spec = {k: v for k, v in self.space.to_spec().items() if k != "model"}
        model = {"class": self.space.model.__qualname__, "structure": _structure(self._supernet())}
        return {"adapter": self.name, "space": hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16],
                "model": model, "input": shapes}

    def _supernet(self) -> Supernet:
        if self._net is None:
            self._net = self.space.supernet()
        return self._net

    def _inputs(self, arch: Mapping[str, Any], batch_size: int = 1) -> tuple[Any, ...]:
        x = self.space.example_input(arch, batch_size)
        return x if isinstance(x, tuple) else (x,)

    def _calls(self, arch: Mapping[str, Any]) -> list[_Call]:
        """The layer calls of `arch`'s subnet at batch size 1 (batch dimensions read from a run at 2); memoised."""
        arch = self.space.validate(arch)
        if arch.id not in self._cache:
            if len(self._cache) >= COVER_LIMIT:
                self._cache.clear()
                self._held.clear()
            subnet = self._supernet().subnet(arch)
            calls = _record(subnet, self._inputs(arch, 1), self._inputs(arch, 2))
            for call in calls:
                self._check_rebuild(call)
            called = {id(p) for call in calls if call.module is not None for p in call.module.parameters()}
            self._held[arch.id] = parameters_entry([p for p in subnet.parameters() if id(p) not in called])
            self._cache[arch.id] = calls
        return self._cache[arch.id]

    def _check_rebuild(self, call: _Call) -> None:
        """Keep a copy of a layer that its kind and options do not rebuild (same `repr` and parameter and buffer
        shapes), to time that instead; a ConfigError naming both layers when two modules that differ so share one
        key (their counts and timings would be one of them)."""
        key = call.layer.key
        if call.module is None:
            return
        seen = (call.path, repr(call.module), _state(call.module))
        if key in self._checked:
            first = self._checked[key]
            if first[1:] != seen[1:]:
                raise ConfigError(f"layers {first[0]!r} and {call.path!r} are different modules ({first[1]} and "
                                  f"{seen[1]}) with one lookup-table key {key}: their counts and latencies cannot "
                                  "be told apart; keep each constructor argument as an attribute of the same name")
            return
        self._checked[key] = seen
        try:
            twin = None if STATE in dict(call.layer.options) else self._rebuild(call.layer)
            same = twin is not None and repr(twin) == seen[1] and _state(twin) == seen[2]
        except Exception:  # noqa: BLE001 - any failure to rebuild means: time a copy of the module instead
            same = False
        if not same:
            self._copies[key] = copy.deepcopy(call.module).eval()

    @staticmethod
    def _rebuild(layer: LayerConfig) -> nn.Module:
        options = dict(layer.options)
        if layer.kind.startswith(("fn:", "method:")):
            return Function(layer.kind, json.loads(options.get("kwargs", "{}")))
        return _layer_class(layer.kind)(**{k: v for k, v in options.items() if k not in ("call", STATE)})

    def layers(self, arch: Mapping[str, Any]) -> list[LayerConfig]:
        return [call.layer for call in self._calls(arch)]

    def arch_counts(self, arch: Mapping[str, Any], batch_size: int = 1) -> list[LeafCount]:
        """The layers' counts, each parameter of the subnet once: a module called twice holds its parameters at
        its first call, and parameters no called layer holds (a model's own `nn.Parameter`) form a final
        "parameters" entry, as `counts.count_leaves` does for the network; function calls move no bytes
        (`moves_bytes`)."""
        arch = self.space.validate(arch)
        calls = self._calls(arch)
        out: list[LeafCount] = []
        counted: set[int] = set()
        for call in calls:
            leaves = self.layer_counts(call.layer, batch_size)
            if call.module is not None:
                fresh = [p for p in call.module.parameters() if id(p) not in counted]
                counted.update(id(p) for p in fresh)
                n = sum(p.numel() for p in fresh)
                if leaves and n != sum(x.params for x in leaves):
                    leaves = [dataclasses.replace(x, params=n if i == 0 else 0) for i, x in enumerate(leaves)]
            out += leaves if self.moves_bytes(call.layer) else [no_bytes(x) for x in leaves]
        held = self._held.get(arch.id)
        return out + ([held] if held is not None else [])

    def moves_bytes(self, layer: LayerConfig) -> bool:
        """A function call (`fn:`, `method:`) is no module call of the network: `count_leaves` counts its FLOPs
        but no bytes, and so does `arch_counts`."""
        return not layer.kind.startswith(("fn:", "method:"))

    def distinct_layers(self) -> list[LayerConfig]:
        archs = self.archs if self.archs is not None else covering_archs(self.space)
        return unique(layer for arch in archs for layer in self.layers(arch))

    def build_layer(self, layer: LayerConfig) -> nn.Module:
        if layer.key in self._copies:
            return copy.deepcopy(self._copies[layer.key])
        return self._rebuild(layer)

    def layer_input(self, layer: LayerConfig, batch_size: int = 1, seed: int = 0) -> Any:
        options = dict(layer.options)
        if "call" not in options:
            return super().layer_input(layer, batch_size, seed)
        args = _materialise(json.loads(options["call"]), batch_size, torch.Generator().manual_seed(seed))
        return tuple(args)

    # -- parts of a network: the candidates of each LayerChoice
    def choice_layers(self, arch: Mapping[str, Any]) -> list[ChoiceLayers]:
        """Per `LayerChoice` that runs in `arch`: each candidate's layers at the input it receives there, over every
        call of it (a module called twice runs its candidate twice)."""
        arch = self.space.validate(arch)
        net = self._supernet().net
        found: list[tuple[str, str, LayerChoice, Context, Any]] = []
        try:
            _choices(net, Context(arch.to_dict(), defaults=self.space.defaults), "", "", found)
        finally:
            bind(net, None)
        subnet = self._supernet().subnet(arch)
        # batch size -> frozen path -> the inputs of each call (a LayerChoice called twice runs its candidate twice)
        seen: dict[int, dict[str, list[tuple[Any, ...]]]] = {1: {}, 2: {}}
        for batch in seen:
            handles = [subnet.get_submodule(frozen).register_forward_pre_hook(
                lambda m, args, frozen=frozen, batch=batch: seen[batch].setdefault(frozen, []).append(args))
                for frozen in {f for _, f, *_ in found}]
            try:
                with torch.no_grad():
                    subnet.eval()(*self._inputs(arch, batch))
            finally:
                for h in handles:
                    h.remove()
        out = []
        for path, frozen, choice, ctx, chosen in found:
            calls = list(zip(seen[1].get(frozen, []), seen[2].get(frozen, [])))
            candidates = {k: [layer for one, two in calls
                              for layer in module_layers(freeze(choice.candidate(k), ctx), *one, batched=two)]
                          for k in choice.keys}
            out.append(ChoiceLayers(path, choice.choice.label, chosen, candidates))
        return out

    def choice_latency(self, table: LatencyTable, arch: Mapping[str, Any]) -> dict[str, dict[Any, float]]:
        """Per `LayerChoice` path that runs in `arch`: each candidate's latency (ms) from `table`."""
        return {c.path: {k: table.predict(layers) for k, layers in c.candidates.items()}
                for c in self.choice_layers(arch)}


def _choices(module: nn.Module, ctx: Context, path: str, frozen: str,
             out: list[tuple[str, str, LayerChoice, Context, Any]]) -> None:
    """Find the LayerChoices that run under `ctx` (binding as the supernet does): (supernet path, path in the
    frozen subnet, module, context, chosen candidate)."""
    def join(a: str, b: str) -> str:
        return f"{a}.{b}" if a else b

    if not isinstance(module, Mutable):
        for name, child in module.named_children():
            _choices(child, ctx, join(path, name), join(frozen, name), out)
        return
    module.bind(ctx)
    if module._active is None:
        return
    if isinstance(module, LayerChoice):
        out.append((path, frozen, module, ctx, module._active["choice"]))
    names = {id(c): n for n, c in module.named_children()}
    for child, child_ctx in module.child_contexts(ctx):
        if child_ctx is not None:
            # a LayerChoice's candidate takes the LayerChoice's own place in the frozen subnet
            _choices(child, child_ctx, join(path, names[id(child)]),
                     frozen if isinstance(module, LayerChoice) else join(frozen, names[id(child)]), out)


def _structure(net: nn.Module) -> str:
    """A digest of a module's tree: each submodule's path and class, each parameter's and buffer's path and shape."""
    parts = [f"{name}:{type(m).__name__}" for name, m in net.named_modules()]
    parts += [f"{name}:{list(t.shape)}" for name, t in itertools.chain(net.named_parameters(), net.named_buffers())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
