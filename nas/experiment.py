"""Opening an experiment: the one path every driver (search loop, Ray Tune searcher, one-shot search) takes
to claim a workdir, check it holds the same search, settle the budget, and record trials.

`open_experiment(workdir, config)` locks the workdir for this process (a second writer gets a clear error),
creates the journal or checks the recorded header against `config` field by field (naming the field that
differs, down to the space's own field), and returns an `Experiment` that journals each trial as it is
recorded. With `workdir=None` the same object keeps the trials in memory only.

Rules a resumed search follows:
- the budget only grows: a smaller one keeps the recorded budget (with a warning) unless `lower_budget`;
- objectives and constraints may be corrected while no trial has completed (a typo found by the first
  result does not lock the workdir); after that they are part of the search's identity, their order included;
- the space's field order (header `space_order`; absent in older journals) is part of its identity, though not
  of its fingerprint;
- a search run with a Strategy instance (header `strategy_instance`) resumes only with an instance like it;
- strategy options are recorded as given and compared with the strategy's defaults filled in on both sides
  (`filled_options`): an option left out and one written out at its default are the same search;
- metadata that differs from the recorded is journaled in the resume record (unless `compare` holds it).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from nas import jsonio
from nas.errors import ConfigError, JournalError, check_seed
from nas.spaces.model_space import space_settings
from nas.spaces.spec_difference import first_difference, space_difference
from nas.store import Journal, JournalContents, JournalWriter, Trial, evaluations_used
from nas.strategies import default_options

log = logging.getLogger(__name__)
T = TypeVar("T")

SAME_SEARCH = ("space", "strategy", "strategy_options", "seed", "fidelity", "warm_start")
"""Header fields two runs must share to be one search (the problem is checked separately, see module doc)."""
SETTINGS = ("timeout_s", "max_time", "enqueue")
"""Header fields a resumed run may change (recorded in its resume record), besides the budget."""


def check_options(options: Any, cls: type[T], name: str = "options") -> T:
    """`options` as the dataclass `cls`: None gives its defaults, a dict its fields (a misspelt field is named);
    anything else is a ConfigError naming `name`."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if isinstance(options, Mapping):
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ConfigError(f"{name}.{unknown[0]}: not a field of {cls.__name__} (fields: {', '.join(known)})")
        return cls(**options)
    raise ConfigError(f"{name}: expected a {cls.__name__} or a dict of its fields, got {type(options).__name__}")


def resolve_seed(seed: Any, recorded: Mapping[str, Any] | None) -> int:
    """The seed a run uses: the one given; else the one its workdir recorded (a resumed search repeats it);
    else a fresh one from the OS, which the journal header then records."""
    if seed is not None:
        return check_seed(seed)
    if recorded is not None and isinstance(recorded.get("seed"), int):
        return int(recorded["seed"])
    return secrets.randbelow(2**31)


def recorded_config(workdir: str | Path | None) -> dict[str, Any] | None:
    """Read-only: the header config (with later updates) a workdir's journal holds, or None without a journal."""
    if workdir is None or not Journal(workdir).exists():
        return None
    return Journal(workdir).read().config


def check_recorded_digest(workdir: str | Path | None, config: dict[str, Any], key: str,
                          what: str) -> JournalContents | None:
    """Read-only: what `workdir`'s journal holds (None without one), after comparing the digests `config` records
    as `metadata[key]` ({part: digest}, e.g. of each data split) with the journal's: a JournalError names the
    first part of `what` that differs; a journal older than `metadata[key]` resumes with a warning (and `key`
    leaves `config`'s metadata, so the header comparison passes)."""
    if workdir is None or not Journal(workdir).exists():
        return None
    contents = Journal(workdir).read()
    if key not in config.get("metadata", {}):
        return contents
    was, now = (contents.config.get("metadata") or {}).get(key), config["metadata"][key]
    if was is None:
        log.warning("%s: its journal predates metadata.%s, so this run cannot check that %s is the one it used",
                    workdir, key, what)
        config["metadata"] = {k: v for k, v in config["metadata"].items() if k != key}
    elif was != now:
        part = next(k for k in list(now) + list(was) if was.get(k) != now.get(k))
        raise JournalError(f"{workdir} holds a search on other {what}: {what}[{part!r}] has digest "
                           f"{was.get(part, '<absent>')!r} there, {now.get(part, '<absent>')!r} in this run (use a new "
                           f"workdir, or the same {what})")
    return contents


def space_header(space: Any) -> dict[str, Any]:
    """The journal header's description of `space`: its fingerprint (the decisions), spec, field order and, for a
    space with constructor settings, those (`space_settings`). `check_same_search(..., compare=("space",))` on
    two of these tells whether they are one space, naming the field or setting that differs."""
    described = space_settings(space)
    spec = space.to_spec()
    return {"space": space.fingerprint(), "space_spec": spec, "space_order": field_order(spec),
            **({"space_settings": described} if described is not None else {})}


def search_config(space: Any, problem: Any, strategy: str, strategy_options: Mapping[str, Any], seed: int,
                  budget: int, fidelity: float | None = None, metadata: Mapping[str, Any] | None = None,
                  **settings: Any) -> dict[str, Any]:
    """The journal header of a search (a `Space`, a `Problem`, ...): what makes two runs the same search, plus
    budget, metadata and the `settings` a resumed run may change (timeout_s, max_time, enqueue, warm_start)."""
    unknown = set(settings) - set(SETTINGS) - {"warm_start"}
    if unknown:
        raise ConfigError(f"search_config: unknown setting {sorted(unknown)[0]!r}")
    return {**space_header(space), "problem": problem.to_dict(), "strategy": strategy,
            "strategy_options": dict(strategy_options), "seed": seed, "budget": budget, "fidelity": fidelity,
            "metadata": dict(metadata or {}), **{k: v for k, v in settings.items() if v is not None}}


@dataclass
class Experiment:
    """A search's trials and header config, journaled to `writer` when the search has a workdir."""

    config: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    writer: JournalWriter | None = None
    problem_changed: bool = False  # the objectives/constraints were corrected on this open

    def __post_init__(self) -> None:
        self._used = evaluations_used(self.trials)  # kept as trials are recorded: the loop asks for it often

    @property
    def workdir(self) -> Path | None:
        return self.writer.workdir if self.writer is not None else None

    @property
    def budget(self) -> int:
        return int(self.config["budget"])

    @property
    def used(self) -> int:
        """Evaluations spent so far (`nas.store.evaluations_used` of the trials)."""
        return self._used

    def record(self, trial: Trial) -> None:
        """Journal `trial` (fsync'd) and keep it; its number must be the next one."""
        if trial.number != len(self.trials):
            raise JournalError(f"trial {trial.number} recorded where trial {len(self.trials)} was expected")
        if self.writer is not None:
            self.writer.append(trial)
        self.trials.append(trial)
        self._used += trial.is_evaluation

    def snapshot(self) -> dict[str, Any] | None:
        return self.writer.load_snapshot() if self.writer is not None else None

    def save_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        if self.writer is not None:
            self.writer.save_snapshot(snapshot)

    def save_running(self, slots: int, in_flight: Sequence[Mapping[str, Any]]) -> None:
        if self.writer is not None:
            self.writer.save_running(slots, in_flight)

    def end(self, stop_reason: str) -> None:
        """Journal why the search stopped (readers tell an exhausted space from a search that can go on)."""
        if self.writer is not None:
            self.writer.append_end(stop_reason)

    def close(self) -> None:
        """Release the workdir (another process may write it from now on)."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_experiment(workdir: str | Path | None, config: Mapping[str, Any], *, lower_budget: bool = False,
                    compare: Sequence[str] = SAME_SEARCH) -> Experiment:
    """Claim `workdir` for the search `config` describes (its header); resume it when it holds the same search.

    `config` needs "budget" and "problem" plus the fields in `compare`. Raises JournalError when the workdir
    holds a different search or another process is writing it; the workdir is released again on any error.
    """
    config = jsonio.plain(dict(config), "config")
    if workdir is None:
        return Experiment(config)
    check_workdir_arg(workdir)
    writer = JournalWriter(workdir)
    try:
        if not writer.exists():
            writer.create(config)
            return Experiment(config, [], writer)
        contents = writer.read()
        old = contents.config
        check_same_search(writer.workdir, old, config, contents.trials, compare)
        budget = settle_budget(writer.workdir, int(old.get("budget") or 0), int(config["budget"]),
                               evaluations_used(contents.trials), lower_budget)
        changed = problem_key(old.get("problem")) != problem_key(config["problem"])
        updates = {k: config.get(k) for k in SETTINGS if config.get(k) != old.get(k)}
        if "metadata" not in compare and config.get("metadata") != old.get("metadata"):
            updates["metadata"] = config.get("metadata")  # this run's, for every reader (nas.load, nas status)
        writer.load_snapshot()  # a damaged snapshot is refused before this run leaves a resume record
        writer.append_resume(budget, **updates)
        if changed:
            log.warning("%s: no trial has completed yet, so this run's objectives and constraints %s replace the "
                        "recorded %s", writer.workdir, config["problem"], old.get("problem"))
            writer.append_config(problem=config["problem"])
        return Experiment({**config, "budget": budget}, list(contents.trials), writer, changed)
    except BaseException:
        writer.close()
        raise


def check_workdir(workdir: str | Path, config: Mapping[str, Any],
                  compare: Sequence[str] = SAME_SEARCH) -> JournalContents | None:
    """Read-only: what `workdir` holds when it is the search `config` describes (None when it holds no journal);
    JournalError naming the differing field otherwise. For drivers that report before they start."""
    journal = Journal(workdir)
    if not journal.exists():
        return None
    contents = journal.read()
    check_same_search(journal.workdir, contents.config, jsonio.plain(dict(config), "config"), contents.trials,
                      compare)
    return contents


def check_same_search(workdir: Path, old: Mapping[str, Any], new: Mapping[str, Any], trials: Sequence[Trial],
                      compare: Sequence[str] = SAME_SEARCH) -> None:
    """JournalError naming the first header field (and, for the space, the space's field) that differs; for a
    workdir holding no trial yet (a run that failed before its first, e.g. a diverged supernet) it says so, since
    deleting it loses nothing."""
    try:
        _check_same_search(workdir, old, new, trials, compare)
    except JournalError as e:
        if trials:
            raise
        raise JournalError(f"{e}; it holds no trial yet, so to run this search there, delete it first") from None


def _check_same_search(workdir: Path, old: Mapping[str, Any], new: Mapping[str, Any], trials: Sequence[Trial],
                       compare: Sequence[str]) -> None:
    for key in compare:
        was, now = old.get(key), new.get(key)
        if key == "strategy_options" and old.get("strategy") == new.get("strategy"):
            was, now = filled_options(old), filled_options(new)  # {} and {"population_size": 50}: one search
        if was == now:
            continue
        if key == "space" and old.get("space_spec") is not None and new.get("space_spec") is not None:
            found = space_difference(old["space_spec"], new["space_spec"])
            if found is not None:
                field, was, now = found
                raise JournalError(f"{workdir} holds a different search: its space differs at {field} (the journal "
                                   f"has {was}, this run {now}); use a new workdir or run the same space")
        if isinstance(was, Mapping) and isinstance(now, Mapping):  # name the field, not two dicts
            where, before, after = first_difference(was, now)
            name = ".".join(where or ())
            options = key == "strategy_options"
            what = f"option {name}" if options else f"{key} field {name}"
            raise JournalError(f"{workdir} holds a different search: its {what} is "
                               f"{_value(before, old.get(key) if options else None, where)}, this run's is "
                               f"{_value(after, new.get(key) if options else None, where)} (use a new workdir, or "
                               f"run with the recorded {name})")
        raise JournalError(f"{workdir} holds a different search: its {key} is {old.get(key)!r}, this run's is "
                           f"{new.get(key)!r} (use a new workdir, or run with the recorded {key})")
    was, now = old.get("space_settings"), new.get("space_settings")
    if was is not None and now is not None and was != now:  # journals from before settings were recorded pass
        where, before, after = first_difference(was, now)
        raise JournalError(f"{workdir} holds a different search: its space settings differ at "
                           f"{'.'.join(where or ())} (the journal has {before!r}, this run {after!r}); use a new "
                           "workdir or run the same space")
    was, now = old.get("space_order"), new.get("space_order")
    if "space" in compare and was is not None and now is not None and was != now:  # older journals pass
        level, before, after = _order_difference(was, now)
        raise JournalError(f"{workdir} holds a different search: its space declares {level} in the order {before}, "
                           f"this run's space in the order {after} (the order decides how a space samples and "
                           "encodes; declare them in the recorded order)")
    if "strategy" in compare:
        _check_instance(workdir, old.get("strategy_instance"), new.get("strategy_instance"))
    if problem_key(old.get("problem")) != problem_key(new.get("problem")) and any(t.status == "ok" for t in trials):
        before, after = _objective_order(old.get("problem")), _objective_order(new.get("problem"))
        if old.get("problem") == new.get("problem") and before != after:  # the same objectives, reordered
            raise JournalError(f"{workdir} holds a different search: its objectives are in the order {before}, "
                               f"this run's in the order {after} (the first is what best() and single-objective "
                               "strategies optimise; give them in the recorded order)")
        raise JournalError(f"{workdir} holds a different search: its objectives and constraints are "
                           f"{old.get('problem')!r}, this run's are {new.get('problem')!r} (they can only be "
                           "changed before the first trial completes; use a new workdir)")


def filled_options(config: Mapping[str, Any]) -> Any:
    """A header's `strategy_options` with the defaults of its `strategy` filled in (`default_options`), as two
    runs compare them: the journal records the options as given, so `{}` and `{"population_size": 50}` (the
    default) are one search. Options that are not a dict, or of a strategy not registered by name, as given."""
    options = config.get("strategy_options")
    if not isinstance(options, Mapping):
        return options
    defaults = default_options(config.get("strategy"))
    return {**options, **{k: v for k, v in defaults.items() if k not in options}}


def _value(value: Any, given: Any, where: tuple[str, ...] | None) -> str:
    """`value` for a message, marked "(the default)" where the strategy options as `given` leave that option out
    (`given` None: not strategy options)."""
    defaulted = where is not None and len(where) == 1 and isinstance(given, Mapping) and where[0] not in given \
        and value != "<absent>"
    return f"{value!r} (the default)" if defaulted else repr(value)


def _check_instance(workdir: Path, was: Any, now: Any) -> None:
    """JournalError when a search run with a Strategy instance (header `strategy_instance`) is resumed by name or
    with an instance of another class or options; journals from before instances were recorded pass."""
    if was is None or was == now:
        return
    if now is None:
        raise JournalError(f"{workdir} holds a search run with a {was.get('class')} instance (options "
                           f"{was.get('options')}); resume it with an instance made the same way, not by name")
    where, before, after = first_difference(was, now)
    raise JournalError(f"{workdir} holds a different search: its strategy instance's {'.'.join(where or ())} is "
                       f"{before!r}, this run's is {after!r} (make the instance as the recorded one, or use a new "
                       "workdir)")


def problem_key(problem: Any) -> Any:
    """A header's problem as two runs compare it: objectives in their order (a dict compares without it), and
    constraints."""
    if isinstance(problem, Mapping) and isinstance(problem.get("objectives"), Mapping):
        return list(problem["objectives"].items()), problem.get("constraints")
    return problem


def _objective_order(problem: Any) -> str:
    objectives = problem.get("objectives") if isinstance(problem, Mapping) else None
    return ", ".join(map(str, objectives)) if isinstance(objectives, Mapping) else repr(problem)


def field_order(spec: Any, prefix: str = "") -> list[str]:
    """The dotted paths of the fields a `Space.to_spec()` describes, in declaration order (nested fields after
    their parent). The order decides how a space samples and encodes, yet the fingerprint (a hash of sorted
    JSON) does not see it, so the header records it beside the fingerprint."""
    out: list[str] = []
    if not isinstance(spec, Mapping):
        return out
    fields = spec.get("fields")
    if isinstance(fields, Mapping):
        for name, node in fields.items():
            out.append(f"{prefix}{name}")
            out.extend(field_order(node, f"{prefix}{name}."))
    for key in ("block", "then"):  # a Repeat's block, a Conditional's field: their fields belong to this path
        out.extend(field_order(spec.get(key), prefix))
    return out


def _order_difference(was: Sequence[str], now: Sequence[str]) -> tuple[str, str, str]:
    """Where two field orders first differ: (which fields, as "its top-level fields" or "the fields of
    blocks", their order in `was`, their order in `now`)."""
    i = next((i for i, (a, b) in enumerate(zip(was, now)) if a != b), None)
    if i is None:  # one order is the start of the other
        shorter, longer = sorted((was, now), key=len)
        parent = longer[len(shorter)].rpartition(".")[0]
    else:
        parent = was[i].rpartition(".")[0]

    def children(order: Sequence[str]) -> str:
        return ", ".join(p.rpartition(".")[2] for p in order if p.rpartition(".")[0] == parent)

    return ("its top-level fields" if not parent else f"the fields of {parent}"), children(was), children(now)


def check_workdir_arg(workdir: str | Path | None) -> None:
    """ConfigError naming `workdir` when it is an empty path (it would write into the current directory)."""
    if workdir is not None and not str(workdir).strip():
        raise ConfigError("workdir: an empty path would write the journal into the current directory; give a "
                          "folder (workdir='.' to mean it), or leave workdir out to keep the trials in memory")


def settle_budget(workdir: Path, recorded: int, requested: int, used: int, lower: bool) -> int:
    """The budget a resumed search runs to: it only grows, unless `lower` says the user wants it smaller."""
    if requested >= recorded or lower:
        return requested
    log.warning("%s: budget %d is below the %d recorded for this search (%d used); keeping %d (lower it "
                "explicitly: lower_budget=True to nas.search or nas.Study, or nas resume --lower-budget)", workdir,
                requested, recorded, used, recorded)
    return recorded


__all__ = ["Experiment", "SAME_SEARCH", "SETTINGS", "check_options", "check_recorded_digest", "check_same_search",
           "check_workdir", "check_workdir_arg", "field_order", "filled_options",
           "open_experiment", "problem_key", "recorded_config", "resolve_seed", "search_config", "settle_budget",
           "space_header"]
