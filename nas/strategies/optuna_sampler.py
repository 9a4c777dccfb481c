"""Optuna samplers as ask/tell strategies: one adapter from our spaces to Optuna's define-by-run calls.

Each `ask` opens an Optuna trial and walks the space, suggesting one parameter per active decision
(named by its path, e.g. `blocks[1].kernel`): controllers first, then only the blocks a `Repeat`
count asks for and the `Conditional` fields that are active, so Optuna sees exactly the decisions the
architecture has. `Integer`s become `suggest_int(low, high, step)` (for `gp`, a range of more than 2**20 values a
`suggest_float` snapped to the step), ordered `Choice`s an integer
index (so TPE, GP and CMA-ES can use the order), other choices `suggest_categorical`. `tell` finishes
that trial (failed or objective-less results as FAIL; each constraint's violation is set with
`trial.set_constraint`, which Optuna's constraint-aware samplers read); results for architectures the study never asked are added
with `study.add_trial`.

State is plain data: a checkpoint of the Optuna study (`nas.strategies.optuna_state`: its trials with their system
attributes, where NSGA-II keeps its generations and CMA-ES its optimizer, the sampler's random generators, GP's kernel
parameters), restored in time linear in the trials. A state written before checkpoints (the seed and the log of asks
and tells) is replayed through a fresh, identically seeded study: exact too, but it re-runs the sampler once per
ask.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import logging
import math
import numbers
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.spaces import Architecture, Choice, Integer, Space
from nas.spaces.params import Conditional
from nas.spaces.space import _ABSENT, get_path, path_str
from nas.strategies.base import Strategy, TrialResult, Unseen, check_count, unknown_near
from nas.strategies.optuna_state import checkpoint, restore

log = logging.getLogger(__name__)

# leaf, path -> index of the chosen option
Pick = Callable[[Any, str], int]


@dataclass(frozen=True)
class Bound:
    """The range a numeric sampler option must lie in: finite, at least `low` (above it when `open_low`), at most
    `high`. Optuna's constructors keep most such values unchecked, and a bad one fails (or misbehaves) mid-search."""

    low: float
    high: float = math.inf
    open_low: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        return math.isfinite(value) and above and value <= self.high

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


@contextmanager
def quiet_optuna(level: int = logging.ERROR) -> Iterator[None]:
    """Optuna's logger at `level` for the block, then back to what the user had ("Trial 3 finished ..." and
    "A new study created ..." are noise inside a search; the user's own Optuna verbosity is left alone)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(level)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _has_bool_mix(options: tuple[Any, ...]) -> bool:
    return any(isinstance(o, bool) for o in options) and not all(isinstance(o, bool) for o in options)


def as_float(leaf: Choice | Integer, max_discrete: int | None) -> bool:
    """True for an `Integer` of more than `max_discrete` values, which the sampler sees as a float range (the
    value snapped to the nearest step): Optuna's GP lists every value of an integer range (8 GB for 10**9)."""
    return isinstance(leaf, Integer) and max_discrete is not None and leaf.cardinality > max_discrete


def snap(leaf: Integer, value: float) -> int:
    """The index of the range's value nearest to a float."""
    return int(min(max(round((float(value) - leaf.low) / leaf.step), 0), leaf.cardinality - 1))


def distribution(leaf: Choice | Integer, max_discrete: int | None = None) -> Any:
    """The Optuna distribution of one decision (ordered choices as an integer index; see `as_float`)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if as_float(leaf, max_discrete):
        return FloatDistribution(float(leaf.low), float(leaf.high))
    if isinstance(leaf, Integer):
        return IntDistribution(leaf.low, leaf.high, step=leaf.step)
    if leaf.ordered:
        return IntDistribution(0, leaf.cardinality - 1)
    opts = leaf.options
    return CategoricalDistribution(list(range(len(opts))) if _has_bool_mix(opts) else list(opts))


def to_param(leaf: Choice | Integer, index: int) -> Any:
    """Our option index -> the value Optuna stores for that decision."""
    if isinstance(leaf, Integer):
        return leaf.value(index)
    if leaf.ordered or _has_bool_mix(leaf.options):
        return index
    return leaf.value(index)


def from_param(leaf: Choice | Integer, value: Any, path: str) -> int:
    if isinstance(leaf, Integer):
        return leaf.index(value, path)
    if leaf.ordered or _has_bool_mix(leaf.options):
        return int(value)
    return leaf.index(value, path)


def walk(space: Space, pick: Pick, prefix: tuple[str | int, ...] = ()) -> dict[str, Any]:
    """Build a config decision by decision in dependency order; `pick(leaf, path)` chooses each option."""
    out: dict[str, Any] = {}
    for name in space._ordered_names():
        node, path = space.fields[name], prefix + (name,)
        if isinstance(node, Conditional):
            if not node.active(out[node.on]):
                continue
            node = node.node
        if isinstance(node, (Choice, Integer)):
            out[name] = node.value(pick(node, path_str(path)))
        elif isinstance(node, Space):
            out[name] = walk(node, pick, path)
        else:  # Repeat
            n = space._count_of(node, out)
            out[name] = [walk(node.block, pick, path + (i,)) for i in range(n)]
    return {k: out[k] for k in space.fields if k in out}


def params_of(space: Space, arch: Architecture, max_discrete: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optuna params and distributions of an existing architecture (for `add_trial`)."""
    cfg = arch.to_dict()
    params: dict[str, Any] = {}
    dists: dict[str, Any] = {}
    for slot in space.slots():
        value = get_path(cfg, slot.path)
        if value is _ABSENT:
            continue
        params[slot.name] = to_param(slot.leaf, slot.leaf.index(value, slot.name))
        dists[slot.name] = distribution(slot.leaf, max_discrete)
        if as_float(slot.leaf, max_discrete):
            params[slot.name] = float(params[slot.name])
    return params, dists


class OptunaStrategy(Strategy):
    """Any Optuna sampler behind our ask/tell: subclasses name the sampler class and its defaults."""

    name: ClassVar[str] = ""
    sampler_class: ClassVar[str] = ""  # "module:Class"
    needs_modules: ClassVar[tuple[str, ...]] = ()  # optional packages the sampler imports lazily
    single_objective: ClassVar[bool] = False  # the sampler cannot optimise several objectives
    requires = frozenset({"sample", "independent-slots"})
    # After this many proposals in a row of architectures asked before, the sampler has converged on what it has
    # seen (GP's acquisition peaks at a seen optimum; TPE's density collapses onto it): each further repeat is
    # told FAIL and replaced by an unseen neighbour of it (local search around the optimum), so the search goes on
    # instead of `Deduplicate` ending it as exhausted far below its budget.
    repeat_patience: ClassVar[int] = 10
    max_discrete: ClassVar[int | None] = None  # an Integer with more values is a float range to the sampler (`as_float`)
    checkpoints: ClassVar[bool] = True  # False: the state is the ask/tell log to replay (as written before checkpoints)
    # the numeric sampler options' valid ranges (`check_sampler_options`); None, where the sampler takes it, passes
    option_bounds: ClassVar[Mapping[str, Bound]] = {}

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0,
                 sampler_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(space, problem, seed)
        self.seed = seed
        self.sampler_options = dict(sampler_options or {})
        if self.single_objective and len(problem.objectives) > 1:
            names = ", ".join(o.name for o in problem.objectives)
            raise ConfigError(f"strategy {self.name!r} optimises one objective; got {len(problem.objectives)} "
                              f"({names}): use nsga2, bayesian or nsga2-optuna, or one objective and constraints")
        self._new_study()  # fails now, not mid-search, on a bad option or a missing extra (cmaes)
        self.log: list[list[Any]] = []  # asks and tells, kept where the state is a log to replay (`checkpoints`)

    def _sampler(self) -> Any:
        import optuna

        module, cls = self.sampler_class.split(":")
        sampler_cls = getattr(importlib.import_module(module), cls)
        options = dict(self.sampler_options)
        check_sampler_options(self.name, sampler_cls, options, self.option_bounds)
        try:
            with warnings.catch_warnings():  # QMC and GP are flagged experimental by Optuna
                warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
                # Optuna's samplers take seeds below 2**32 (numpy's legacy RandomState): larger ones are folded in
                sampler = sampler_cls(seed=None if self.seed is None else self.seed % 2**32, **options)
        except (TypeError, ValueError) as e:  # an unknown option, or a bad value (qmc_type="nope")
            raise ConfigError(f"strategy {self.name!r}: bad sampler_options for {cls} "
                              f"({', '.join(f'{k}={v!r}' for k, v in options.items())}): {e}") from None
        return sampler

    def _new_study(self) -> None:
        for module in ("optuna", *self.needs_modules):
            try:
                importlib.import_module(module)
            except ImportError:
                raise ConfigError(f"strategy {self.name!r} needs the {module!r} package (pip install {module})") from None
        import optuna

        directions = ["maximize" if o.direction == "max" else "minimize" for o in self.problem.objectives]
        sampler = self._sampler()
        with quiet_optuna():
            self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.pending: dict[str, list[int]] = {}  # arch id -> open trial numbers, oldest first
        self._asked: set[str] = set()  # arch ids asked (a listed space's asks go to unasked ones; rebuilt on load)
        self._repeats = 0  # asks in a row that proposed an architecture asked before
        self._unseen = Unseen(self.space)  # a small space's listing, made when samples stop finding unasked ones

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out: list[Architecture] = []
        if getattr(self.study, "_stop_flag", False):  # the sampler called study.stop(): it has nothing left
            return out
        for _ in range(n):
            with quiet_optuna():
                arch = self._ask()
            if not self.checkpoints:
                self.log.append(["ask"])
            out.append(arch)
        return out

    def _ask(self) -> Architecture:
        trial = self.study.ask()

        def pick(leaf: Choice | Integer, path: str) -> int:
            d = distribution(leaf, self.max_discrete)
            if as_float(leaf, self.max_discrete):
                return snap(leaf, trial.suggest_float(path, d.low, d.high))  # type: ignore[arg-type]
            if isinstance(leaf, Integer):
                v = trial.suggest_int(path, leaf.low, leaf.high, step=leaf.step)
            elif hasattr(d, "choices"):
                v = trial.suggest_categorical(path, d.choices)
            else:
                v = trial.suggest_int(path, 0, leaf.cardinality - 1)
            return from_param(leaf, v, path)

        arch = Architecture(walk(self.space, pick))
        replacement = None
        if "listed" in self.space.capabilities and hasattr(self.space, "nearest"):
            # a table holds only its recorded architectures: the nearest not asked yet (a seen one is no news)
            snapped = self.space.nearest(arch.to_dict(), exclude=self._asked)
            replacement = snapped if snapped.id != arch.id else None
        elif arch.id not in self._asked:
            self._repeats = 0
        else:
            self._repeats += 1
            if self._repeats >= self.repeat_patience:  # converged on seen ones: explore an unseen one instead
                replacement = self._unasked_near(arch, trial.number)
        if replacement is not None:  # the sampler learns from the one evaluated: ask again with its params
            import optuna

            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.study.enqueue_trial(params_of(self.space, replacement, self.max_discrete)[0])
            trial = self.study.ask()
            arch = Architecture(walk(self.space, pick))
        self._asked.add(arch.id)
        self.pending.setdefault(arch.id, []).append(trial.number)
        return arch

    def _unasked_near(self, arch: Architecture, number: int) -> Architecture | None:
        """An architecture not asked before near the sampler's repeated proposal: a random unasked neighbour (one
        decision away) where the space lists neighbours, else a uniform unasked sample, else (100 draws found none)
        one of a small space's unasked ones, listed (`Unseen`); None when every one was asked, or a large space's
        draws all missed. Seeded by the trial number, so a replayed log draws the same one."""
        rng = np.random.default_rng(None if self.seed is None else [self.seed, number])
        return unknown_near(self.space, arch, rng, lambda a: a.id not in self._asked, unseen=self._unseen)

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        if not self.checkpoints:
            self.log.append(["tell", arch.to_dict(), result.to_dict()])
        local = self.study._thread_local
        stoppable, local.in_optimize_loop = local.in_optimize_loop, True  # study.stop() in after_trial (BruteForce's
        try:                                                              # "all tried") sets the flag `ask` reads
            with quiet_optuna():
                self._tell(arch, result)
        finally:
            local.in_optimize_loop = stoppable

    def _values(self, result: TrialResult) -> list[float] | None:
        if result.status == "failed" or any(o.name not in result.metrics for o in self.problem.objectives):
            return None
        vals = [float(result.metrics[o.name]) for o in self.problem.objectives]
        return None if any(v != v for v in vals) else vals

    def _violations(self, result: TrialResult) -> dict[str, float]:
        """Per constraint, how far beyond its bound (0 when met): Optuna's feasible-when-<=-0 convention."""
        return {str(c): min(c.violation(result.metrics), 1e30) if c.metric in result.metrics else 1e30
                for c in self.problem.constraints}

    def _tell(self, arch: Architecture, result: TrialResult) -> None:
        from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
        from optuna.trial import TrialState, create_trial

        values = self._values(result)
        numbers = self.pending.get(arch.id)
        if numbers:  # told by number: a trial asked before a restore has no live Trial object
            number = numbers.pop(0)
            if not numbers:
                del self.pending[arch.id]
            storage = self.study._storage
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
            for c, v in self._violations(result).items():  # what Trial.set_constraint writes
                storage.set_trial_system_attr(trial_id, f"{_CONSTRAINTS_KEY}:{c}", v)
            if values is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, values)
            return
        params, dists = params_of(self.space, arch, self.max_discrete)
        state = TrialState.FAIL if values is None else TrialState.COMPLETE
        self.study.add_trial(create_trial(params=params, distributions=dists, values=values, state=state,
                                          constraints=self._violations(result) or None))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "seed": self.seed}
        if not self.checkpoints:
            return {**state, "log": [list(e) for e in self.log]}
        return {**state, "study": checkpoint(self.study), "asked": sorted(self._asked),
                "pending": {k: list(v) for k, v in self.pending.items()}, "repeats": self._repeats}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the study from its checkpoint, or replay the ask/tell log through a fresh, identically seeded
        study (a replaying sampler's state, or one written before checkpoints)."""
        super().load_state_dict(state)
        self.seed = state["seed"]  # the sampler's RNG is rebuilt from the saved seed, whatever ours was
        self._new_study()
        self.log = []
        if "study" in state:
            restore(self.study, state["study"])
            self._asked = set(state["asked"])
            self.pending = {k: list(v) for k, v in state["pending"].items()}
            self._repeats = state["repeats"]
            return
        for event in state["log"]:
            if event[0] == "ask":
                self.ask(1)
            else:
                self.tell(Architecture(event[1]), TrialResult.from_dict(event[2]))


class OptunaTPE(OptunaStrategy):
    """Optuna's tree-structured Parzen estimator (Bergstra et al. 2011); multi-objective as MOTPE."""

    name = "tpe"
    sampler_class = "optuna.samplers:TPESampler"
    # n_startup_trials=-1 ran as 0 and n_ei_candidates=0 failed at the first model-based ask; Optuna allows
    # prior_weight=0 (no prior component) and refuses a negative one only mid-search
    option_bounds = {"n_startup_trials": Bound(0), "n_ei_candidates": Bound(1), "prior_weight": Bound(0)}


class OptunaGP(OptunaStrategy):
    """Optuna's Gaussian-process Bayesian optimisation (logEI; constrained and multi-objective aware)."""

    name = "gp"
    sampler_class = "optuna.samplers:GPSampler"
    option_bounds = {"n_startup_trials": Bound(0)}
    max_discrete = 2 ** 20  # its acquisition search lists every value of an integer range: 8 GB for Integer(0, 10**9)


class OptunaCmaEs(OptunaStrategy):
    """Optuna's CMA-ES (needs the `cmaes` package; categorical decisions are sampled independently).

    CMA-ES keeps one Gaussian of fixed dimension over the decisions common to all trials, so it needs
    `fixed-slots`. Where a `Repeat` count or a `Conditional` makes decisions come and go, that common set
    shrinks as trials arrive: once it shrinks after a generation was told, Optuna's sampler falls back to
    random sampling for the rest of the run (4 of 30 seeds on a depth 1-3 space), and with `with_margin`
    it crashes (a generation asked at one dimension is told to an optimizer of another)."""

    name = "cmaes"
    sampler_class = "optuna.samplers:CmaEsSampler"
    needs_modules = ("cmaes",)
    single_objective = True
    requires = frozenset({"sample", "independent-slots", "fixed-slots"})
    # cmaes asserts popsize > 0 and fails popsize=1 (no parents: popsize // 2 = 0); Optuna clamps sigma0 <= 0 to
    # 1e-10, a search that never moves
    option_bounds = {"n_startup_trials": Bound(0), "popsize": Bound(2), "sigma0": Bound(0, open_low=True)}


class OptunaNSGA2(OptunaStrategy):
    """Optuna's NSGA-II sampler (population 50 by default), for comparison with our `nsga2`."""

    name = "nsga2-optuna"
    sampler_class = "optuna.samplers:NSGAIISampler"
    # Optuna checks these too, in its own words: checked here so that the error names `sampler_options.<name>`
    option_bounds = {"population_size": Bound(2), "mutation_prob": Bound(0, 1), "crossover_prob": Bound(0, 1),
                     "swapping_prob": Bound(0, 1)}


class OptunaQMC(OptunaStrategy):
    """Optuna's quasi-Monte-Carlo (scrambled Sobol) sampler: space-filling, non-adaptive."""

    name = "qmc"
    sampler_class = "optuna.samplers:QMCSampler"

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0,
                 sampler_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(space, problem, seed, {"scramble": True, **dict(sampler_options or {})})


class OptunaSampler(OptunaStrategy):
    """Any Optuna sampler instance behind our ask/tell: `nas.search(..., strategy=optuna.samplers.BruteForceSampler())`,
    `GridSampler`, `PartialFixedSampler`, a sampler from OptunaHub or your own. Decisions are named and suggested as
    for the named strategies (ordered choices as integer indices, see `distribution`). Each (re)start samples with a
    copy of the instance as given, and a resume loads the checkpoint into it: exact for samplers whose state is their
    study's trials and random generators, as Optuna's are; one that keeps more between asks resumes from a fresh copy
    of that part. Not registered by name (the instance is the option); the journal records its class."""

    name = "optuna"

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, sampler: Any = None) -> None:
        import optuna

        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise ConfigError(f"sampler: expected an optuna.samplers.BaseSampler instance, got {type(sampler).__name__}")
        self.sampler_class = f"{type(sampler).__module__}:{type(sampler).__qualname__}"
        self._given = fresh_copy(sampler)  # untouched by asks: every restart copies it
        super().__init__(space, problem, seed)
        check_fixed_params(space, sampler, self.max_discrete)

    def _sampler(self) -> Any:
        return fresh_copy(self._given)


def check_fixed_params(space: Space, sampler: Any, max_discrete: int | None = None) -> None:
    """ConfigError naming a decision that a `PartialFixedSampler` or `GridSampler` fixes but the space lacks, or a
    value its parameter cannot take (an ordered choice's parameter is its option index), before anything runs; a
    warning where an ordered choice's index is also one of its values (`depth=2` of [2, 3, 4] fixes 4)."""
    import optuna

    if isinstance(sampler, optuna.samplers.PartialFixedSampler):
        fixed = {name: [value] for name, value in sampler._fixed_params.items()}
    elif isinstance(sampler, optuna.samplers.GridSampler):
        fixed = {name: list(values) for name, values in sampler._search_space.items()}
    else:
        return
    slots = getattr(space, "slots", None)
    if not callable(slots):
        return
    leaves = {path_str(slot.path): slot.leaf for slot in slots() if isinstance(slot.leaf, (Choice, Integer))}
    what = type(sampler).__name__
    for name, values in fixed.items():
        leaf = leaves.get(name)
        if leaf is None:
            raise ConfigError(f"{what}: {name!r} is not a decision of the space (a repeated decision is named like "
                              f"blocks[0].kernel; the decisions: {', '.join(list(leaves)[:12])}"
                              f"{', ...' if len(leaves) > 12 else ''})")
        dist = distribution(leaf, max_discrete)
        for value in values:
            try:
                ok = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                ok = False
            ordered = isinstance(leaf, Choice) and leaf.ordered
            if not ok:
                hint = (f"an ordered choice's parameter is its option index 0..{leaf.cardinality - 1} (options "
                        f"{list(leaf.options)})" if ordered else f"expected one of {_values_of(leaf)}")
                raise ConfigError(f"{what}: {name} = {value!r} is not a value of this decision: {hint}")
            if ordered and value in leaf.options and leaf.options.index(value) != value:
                log.warning("%s: %s = %r is read as option index %r, i.e. %s = %r (an ordered choice's parameter is "
                            "its index; to hold %s = %r give %d)", what, name, value, value, name,
                            leaf.options[value], name, value, leaf.options.index(value))


def _values_of(leaf: Choice | Integer) -> str:
    if isinstance(leaf, Integer):
        return f"{leaf.low}..{leaf.high} (step {leaf.step})"
    return repr(list(leaf.options))


def check_sampler_options(strategy: str, sampler_cls: type, options: Mapping[str, Any],
                          bounds: Mapping[str, Bound] | None = None) -> None:
    """ConfigError naming a sampler option whose value does not have the type the sampler declares (a run file's
    quoted number, `n_startup_trials = "5"`): Optuna's constructors keep it as given, and it fails mid-search with a
    TypeError naming neither. Only simple declared types (bool, int, float, str, maybe None) are checked; an int
    option takes an integral float, which Optuna's samplers have always accepted. A number outside its `bounds`
    (`n_startup_trials=-1`) is a ConfigError naming `sampler_options.<name>` too."""
    params = inspect.signature(sampler_cls.__init__).parameters
    bounds = bounds or {}
    for key, value in options.items():
        param = params.get(key)
        if param is None:  # an unknown option: the constructor names it
            continue
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            empty = param.default is inspect.Parameter.empty or param.default is None
            text = "" if empty else type(param.default).__name__
        else:  # a string under postponed annotations, else a class (`__name__`) or a union (`int | None`)
            text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        parts = {k.strip() for k in text.split("|") if k.strip()}
        kinds = parts - {"None"}
        if value is None and ("None" in parts or param.default is None):
            continue
        number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
        checks = [(kinds == {"bool"}, isinstance(value, (bool, np.bool_)), "true or false"),
                  (kinds == {"int"}, number and (isinstance(value, numbers.Integral)
                                                 or (isinstance(value, float) and value.is_integer())), "an int"),
                  (bool(kinds) and kinds <= {"int", "float"}, number, "a number"),
                  (kinds == {"str"}, isinstance(value, str), "a string")]
        for applies, ok, want in checks:
            if applies:
                if not ok:
                    raise ConfigError(f"strategy {strategy!r}: bad sampler_options for {sampler_cls.__name__}: "
                                      f"{key}={value!r} ({type(value).__name__}), expected {want}")
                break
        bound = bounds.get(key)
        if bound is not None and number and not bound.holds(float(value)):
            raise ConfigError(f"strategy {strategy!r}: sampler_options.{key}={value!r} is out of range for "
                              f"{sampler_cls.__name__}: expected {bound}")


def fresh_copy(sampler: Any) -> Any:
    """A deep copy of a sampler (or pruner) with its locks made anew (NSGA-II keeps a threading.Lock, which deepcopy
    refuses)."""
    locks = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}
    memo: dict[int, Any] = {}
    seen: set[int] = set()
    stack = [sampler]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj) in locks:
            memo[id(obj)] = locks[type(obj)]()
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    return copy.deepcopy(sampler, memo)


OPTUNA_STRATEGIES: tuple[type[OptunaStrategy], ...] = (OptunaTPE, OptunaGP, OptunaCmaEs, OptunaNSGA2, OptunaQMC)
