"""Layer decomposition of a model space you wrote with `nas.nn` (a `ModuleSpace`), for lookup-table latency.

An architecture's layers are what its frozen subnet (`supernet.subnet(arch)`, plain torch layers) runs on
the space's example input at batch size 1, in execution order: the calls of its leaf modules and the
function calls of every `forward` (`x + y`, `torch.relu`, `x.mean(-1)`), traced with `torch.fx` (a model
torch.fx cannot trace gives its leaf-module calls only, recorded by forward hooks). Each call is a
`LayerConfig` with the shape of its first tensor argument (without the batch) as `input_shape`:

* a module: its class as `kind` (`Conv1d`, `BatchNorm1d`, `ReLU`; a class from outside `torch.nn` by
  its import path), its constructor arguments read back from its attributes of the same name
  (`in_channels`, `kernel_size`, `stride`, `bias`, ...) as options. A leaf is a module without
  children, or a `torch.nn` layer that has some (`MultiheadAttention`); containers and your own modules
  are entered;
* a function: `fn:<import path>` (`fn:_operator.add`, `fn:torch.relu`) or `method:<tensor method>`
  (`method:mean`), timed as a `Function` module. A call whose arguments are not tensors, lists and plain
  values (an index with a slice, a dtype) is left out, as is one without a tensor argument;
* a call that is not one float tensor records its arguments' shapes and plain values as the `call`
  option (attention's query, key and value; a list of tensors; a method's dim).

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
  candidate runs on the input that LayerChoice receives in `arch` (choices inside a candidate that `arch`
  does not set take their first option).
* `NNLayers.choice_latency(table, arch)`: {path: {candidate: ms}}, the same summed from a table built for
  this space (its `distinct_layers()` hold every candidate's layers).
"""

from __future__ import annotations

import copy
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

from nas.errors import ConfigError
from nas.hardware.layers import LayerAdapter, LayerConfig, unique
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
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
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
    """The layers of each candidate of one `LayerChoice` at the input it receives in an architecture."""

    path: str                                # module path in the supernet: supernet.net.get_submodule(path)
    label: str                               # the LayerChoice's label (one label may sit at several paths)
    chosen: Any                              # the candidate the architecture picks
    candidates: dict[Any, list[LayerConfig]]  # candidate key -> its layers, in execution order


def module_layers(module: nn.Module, *inputs: Any) -> list[LayerConfig]:
    """The layers (leaf-module and function calls) a plain torch `module` runs on `inputs`, in order (eval
    mode, no grad); a module that is itself a layer is one."""
    return [call.layer for call in _record(module, inputs)]


def _is_layer(module: nn.Module) -> bool:
    if next(module.children(), None) is None:
        return True
    return type(module).__module__.startswith("torch.nn.") and not isinstance(module, _CONTAINERS)


def _leaves(module: nn.Module, path: str = "") -> list[tuple[str, nn.Module]]:
    if _is_layer(module):
        return [(path, module)]
    return [leaf for name, child in module.named_children()
            for leaf in _leaves(child, f"{path}.{name}" if path else name)]


def _record(module: nn.Module, inputs: Sequence[Any]) -> list[_Call]:
    """The layer calls of `module(*inputs)` in eval mode: traced with torch.fx (leaf modules and the
    functions of each forward), or by forward hooks on the leaf modules where tracing fails."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            if _is_layer(module):
                return _hooked(module, inputs)  # tracing would open the layer up into its functions
            try:
                return _traced(module, inputs)
            except Exception as e:  # noqa: BLE001 - any tracing failure: fall back to the leaf modules
                log.debug("torch.fx cannot trace %s: %s", type(module).__name__, e)
                warnings.warn(f"{type(module).__name__}: torch.fx cannot trace it (data-dependent control flow?); "
                              "its latency table times its leaf modules only, not the functions in its forward",
                              TracingWarning, stacklevel=2)
                return _hooked(module, inputs)
    finally:
        module.train(was_training)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _is_layer(m)


class _Recorder(torch.fx.Interpreter):
    """Runs a traced module and records each layer call with the values it was called with."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.calls: list[_Call] = []

    def run_node(self, n: torch.fx.Node) -> Any:
        if n.op in ("call_module", "call_function", "call_method"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if n.op == "call_module":
                mod = self.module.get_submodule(str(n.target))
                self.calls.append(_Call(str(n.target), mod, layer_config(mod, tuple(args), str(n.target))))
            else:
                layer = function_config(n.target if n.op == "call_function" else str(n.target), tuple(args), kwargs)
                if layer is not None:
                    self.calls.append(_Call(n.name, None, layer))
        return super().run_node(n)


def _traced(module: nn.Module, inputs: Sequence[Any]) -> list[_Call]:
    gm = torch.fx.GraphModule(module, _Tracer().trace(module))
    recorder = _Recorder(gm)
    recorder.run(*inputs)
    return recorder.calls


def _hooked(module: nn.Module, inputs: Sequence[Any]) -> list[_Call]:
    calls: list[_Call] = []
    leaves = _leaves(module)
    names = {id(m): p for p, m in reversed(leaves)}  # a module used at two paths: its first

    def hook(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        calls.append(_Call(names[id(mod)], mod, layer_config(mod, args, names[id(mod)])))

    handles = [m.register_forward_hook(hook) for _, m in leaves]
    try:
        module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return calls


def function_config(target: Callable[..., Any] | str, args: tuple[Any, ...],
                    kwargs: Mapping[str, Any]) -> LayerConfig | None:
    """The `LayerConfig` of a function call `target(*args, **kwargs)` of a forward (`target` a tensor method's
    name for `args[0].target(...)`); None for one without a tensor argument, or that cannot be replayed
    (a function no import path finds, an argument that is no tensor, list or plain value)."""
    first = _first_tensor(args)
    if first is None or (target is operator.getitem and not isinstance(args[0], torch.Tensor)):
        return None
    if isinstance(target, str):
        kind = f"method:{target}"
    else:
        path = _function_path(target)
        if path is None:
            return None
        kind = f"fn:{path}"
    try:
        options = {"call": json.dumps(_spec(list(args), kind), separators=(",", ":"))}
        if kwargs:
            options["kwargs"] = json.dumps(_spec(dict(kwargs), kind), separators=(",", ":"), sort_keys=True)
    except ConfigError:
        return None
    return LayerConfig.make(kind, tuple(first.shape[1:]) if first.dim() else (), **options)


def _function_path(target: Callable[..., Any]) -> str | None:
    """An import path that finds `target` again (`torch.relu`, `_operator.add`), or None."""
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


def _options(module: nn.Module) -> dict[str, Any]:
    """The module's constructor arguments read back from its attributes of the same name."""
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


def _spec(x: Any, where: str) -> Any:
    """Shapes of a call's arguments: a tensor as {"shape": [...]} (and its dtype when not float32)."""
    if isinstance(x, torch.Tensor):
        spec: dict[str, Any] = {"shape": list(x.shape)}
        if x.dtype != torch.float32:
            spec["dtype"] = str(x.dtype).removeprefix("torch.")
        return spec
    if isinstance(x, (list, tuple)):
        return [_spec(v, where) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _spec(v, where) for k, v in x.items()}
    try:
        return _plain(x)
    except ValueError:
        raise ConfigError(f"{where}: a layer called with a {type(x).__name__} argument cannot be replayed "
                          "for a latency table (tensors, lists of tensors and plain values can)") from None


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def layer_config(module: nn.Module, args: tuple[Any, ...], path: str = "") -> LayerConfig:
    """The `LayerConfig` of one call `module(*args)` (`path` names the module in errors)."""
    first = _first_tensor(args)
    shape = tuple(first.shape[1:]) if first is not None and first.dim() else ()
    options = _options(module)
    if not (len(args) == 1 and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.float32):
        options["call"] = json.dumps(_spec(list(args), path or _kind(module)), separators=(",", ":"))
    return LayerConfig.make(_kind(module), shape, **options)


def _layer_class(kind: str) -> type:
    cls = getattr(nn, kind, None) if "." not in kind else import_object(kind, "layer.kind")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"layer kind {kind!r}: not a torch module class")
    return cls


def _materialise(spec: Any, batch_size: int, g: torch.Generator) -> Any:
    if isinstance(spec, dict) and "shape" in spec:
        shape = [batch_size, *spec["shape"][1:]] if spec["shape"] else []
        dtype = getattr(torch, spec.get("dtype", "float32"))
        if dtype.is_floating_point:
            return torch.randn(shape, generator=g, dtype=dtype)
        return torch.zeros(shape, dtype=dtype)
    if isinstance(spec, list):
        return [_materialise(v, batch_size, g) for v in spec]
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
        self._copies: dict[str, nn.Module] = {}   # layers whose class cannot be rebuilt from their options
        self._checked: set[str] = set()

    def describe(self) -> dict[str, Any]:
        x = self.space.example_input({}, 1)
        shapes = [list(t.shape) for t in (x if isinstance(x, tuple) else (x,)) if isinstance(t, torch.Tensor)]
        return {**super().describe(), "model": self.space.to_config()["model"], "input": shapes}

    def _supernet(self) -> Supernet:
        if self._net is None:
            self._net = self.space.supernet()
        return self._net

    def _inputs(self, arch: Mapping[str, Any]) -> tuple[Any, ...]:
        x = self.space.example_input(arch, 1)
        return x if isinstance(x, tuple) else (x,)

    def _calls(self, arch: Mapping[str, Any]) -> list[_Call]:
        arch = self.space.validate(arch)
        if arch.id not in self._cache:
            if len(self._cache) >= COVER_LIMIT:
                self._cache.clear()
            calls = _record(self._supernet().subnet(arch), self._inputs(arch))
            for call in calls:
                self._check_rebuild(call)
            self._cache[arch.id] = calls
        return self._cache[arch.id]

    def _check_rebuild(self, call: _Call) -> None:
        """Keep a copy of a layer that its kind and options do not rebuild (same `repr`), to time that instead."""
        key = call.layer.key
        if key in self._checked or call.module is None:
            return
        self._checked.add(key)
        try:
            same = repr(self._rebuild(call.layer)) == repr(call.module)
        except Exception:  # noqa: BLE001 - any failure to rebuild means: time a copy of the module instead
            same = False
        if not same:
            self._copies[key] = copy.deepcopy(call.module).eval()

    @staticmethod
    def _rebuild(layer: LayerConfig) -> nn.Module:
        options = dict(layer.options)
        if layer.kind.startswith(("fn:", "method:")):
            return Function(layer.kind, json.loads(options.get("kwargs", "{}")))
        return _layer_class(layer.kind)(**{k: v for k, v in options.items() if k != "call"})

    def layers(self, arch: Mapping[str, Any]) -> list[LayerConfig]:
        return [call.layer for call in self._calls(arch)]

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
        """Per `LayerChoice` that runs in `arch`: each candidate's layers at the input it receives there."""
        arch = self.space.validate(arch)
        net = self._supernet().net
        found: list[tuple[str, str, LayerChoice, Context, Any]] = []
        try:
            _choices(net, Context(arch.to_dict(), defaults=self.space.defaults), "", "", found)
        finally:
            bind(net, None)
        subnet = self._supernet().subnet(arch)
        seen: dict[str, tuple[Any, ...]] = {}
        handles = [subnet.get_submodule(frozen).register_forward_pre_hook(
            lambda m, args, frozen=frozen: seen.setdefault(frozen, args)) for _, frozen, *_ in found]
        try:
            with torch.no_grad():
                subnet.eval()(*self._inputs(arch))
        finally:
            for h in handles:
                h.remove()
        out = []
        for path, frozen, choice, ctx, chosen in found:
            candidates = {k: module_layers(freeze(choice.candidate(k), ctx), *seen[frozen]) for k in choice.keys}
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
