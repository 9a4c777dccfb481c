"""`autognn`: Auto-GNN's conservative controller (Zhou et al., 2019) over any space's decision sequence.

The slots of the space's encoding are grouped into *action classes* (Auto-GNN: every layer's hidden width is
one class, every layer's activation another, ...). Once a result is known, each proposal keeps the current best
architecture and re-draws the decisions of one action class only: a learned class selector (a softmax over
the classes that the best architecture uses, trained by REINFORCE) picks the class, and `rl`'s LSTM policy
draws that class's values given the best architecture's other decisions (teacher forcing). Decisions the best
architecture lacks (a second layer's fields while it has one layer) are drawn too, so a proposal differs from
the best in at most one class wherever both have a decision. Before the first result, and when all `1 + resample`
variations drawn for an ask were already seen (the best's neighbourhood is spent; counted in `escapes`),
a proposal is the policy's full sample, as in `rl`. On a listed space (a sampled table) a proposal is a listed
architecture that differs from the best in one class, drawn by the policy's weight; when none is left, a full
draw as `rl` makes one there. Rewards, baseline and updates are `rl`'s (`ReinforceController`): repeats the
search answers from its cache are not rewards, for the policy nor for the class selector. State is plain data.
Auto-GNN's constrained parameter sharing is a training evaluator: `nas.spaces.gnn_sharing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.spaces import Architecture, Space
from nas.spaces.space import Slot
from nas.strategies.base import TrialResult, check_count, scalar_key
from nas.strategies.rl import ReinforceController, _Policy, _tensor_load, _tensor_state, listed_weights

ClassSpec = str | Mapping[str, Sequence[str]] | None


def _field_name(slot: Slot) -> str:
    return next(str(p) for p in reversed(slot.path) if isinstance(p, str))


def action_classes(space: Space, classes: ClassSpec = None) -> dict[str, list[int]]:
    """Action class name -> indices into `space.slots()`.

    `classes=None`: every slot is its own class (named by the slot). `"name"`: slots grouped by their field's
    name, the last name in the path (every block's `hidden` together). A mapping: class name -> field names
    or full slot names (`"hidden_layers[0].op"`); a slot no class names is its own class.
    """
    slots = space.slots()
    if classes is None:
        return {s.name: [i] for i, s in enumerate(slots)}
    if classes == "name":
        out: dict[str, list[int]] = {}
        for i, s in enumerate(slots):
            out.setdefault(_field_name(s), []).append(i)
        return out
    if not isinstance(classes, Mapping):
        raise ConfigError(f"autognn: classes must be None, 'name' or a mapping class -> field names, got {classes!r}")
    owner: dict[str, str] = {}
    for cls, names in classes.items():
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ConfigError(f"autognn: classes[{cls!r}] must be a list of field or slot names, got {names!r}")
        for name in names:
            if name in owner:
                raise ConfigError(f"autognn: classes: {name!r} is in both {owner[name]!r} and {cls!r}")
            owner[name] = cls
    out = {cls: [] for cls in classes}
    known = {s.name for s in slots} | {_field_name(s) for s in slots}
    unknown = [n for n in owner if n not in known]
    if unknown:
        raise ConfigError(f"autognn: classes names {unknown[0]!r}, which is neither a field nor a slot of the space")
    for i, s in enumerate(slots):
        cls = owner.get(s.name, owner.get(_field_name(s)))
        out.setdefault(cls if cls is not None else s.name, []).append(i)
    return {k: v for k, v in out.items() if v}


def changed_classes(space: Space, classes: Mapping[str, Sequence[int]], a: Architecture,
                    b: Architecture) -> set[str]:
    """The action classes in which `a` and `b` differ: a slot active in both with different values."""
    va, vb = space.to_vector(a), space.to_vector(b)
    differs = (va >= 0) & (vb >= 0) & (va != vb)
    return {name for name, idx in classes.items() if differs[list(idx)].any()}


def _sample_rows(policy: _Policy, rng: np.random.Generator, forced: np.ndarray) -> np.ndarray:
    """A token row per row of `forced` (K x T): tokens >= 0 are kept (teacher forcing), -1 entries are drawn
    from `policy` given the row's tokens before them (inverse-CDF from `rng`)."""
    import torch

    rows = forced.astype(int).copy()
    with torch.no_grad():
        x = policy.embed.weight[-1:].expand(rows.shape[0], -1)
        h = c = torch.zeros(rows.shape[0], policy.hidden)
        for t in range(rows.shape[1]):
            h, c = policy.cell(x, (h, c))
            free = np.flatnonzero(rows[:, t] < 0)
            if free.size:
                p = torch.softmax(policy._logits(h[torch.as_tensor(free)], t).double(), -1).numpy()
                cdf = np.cumsum(p, axis=1)
                u = rng.random(free.size) * cdf[:, -1]
                rows[free, t] = np.minimum((cdf < u[:, None]).sum(axis=1), p.shape[1] - 1)
            x = policy.embed.weight[torch.as_tensor(rows[:, t] + int(policy.offsets[t]))]
    return rows


class ConservativeController(ReinforceController):
    """Auto-GNN's conservative explorer: each proposal re-draws one action class of the best architecture.

    `classes` groups the slots (see `action_classes`; default: each slot its own class). The other options
    are `rl`'s, shared by the value policy and the class selector.
    """

    name = "autognn"

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, classes: ClassSpec = None,
                 hidden: int = 32, lr: float = 0.05, batch_size: int = 10, baseline_decay: float = 0.9,
                 entropy_weight: float = 0.01, resample: int = 20) -> None:
        super().__init__(space, problem, seed, hidden, lr, batch_size, baseline_decay, entropy_weight, resample)
        import torch

        self.classes = action_classes(space, classes)
        self.class_names = list(self.classes)
        self.members = np.zeros((len(self.classes), len(self.slots)), dtype=bool)  # class x slot
        for k, idx in enumerate(self.classes.values()):
            self.members[k, idx] = True
        self.choices = np.array([s.leaf.cardinality for s in self.slots])
        self.selector = torch.nn.Parameter(torch.zeros(len(self.classes)))  # class logits, uniform at first
        self.selector_opt = torch.optim.Adam([self.selector], lr=lr)
        self.class_batch: list[tuple[int, list[bool], float]] = []  # (class, eligible classes, advantage)
        self.best: dict[str, Any] | None = None  # the best architecture so far (plain dict) and its key
        self.best_key: tuple[float, float] | None = None
        self.escapes = 0  # full samples asked because every one-class variation drawn was already seen

    # ------------------------------------------------------------------ ask/tell
    def _class_probs(self, eligible: np.ndarray) -> np.ndarray:
        logits = self.selector.detach().double().numpy().copy()
        logits[~eligible] = -np.inf
        p = np.exp(logits - logits[eligible].max())
        return p / p.sum()

    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out = []
        for _ in range(n):
            best = None if self.best is None else self.space.validate(self.best)
            vec = None if best is None else self.space.to_vector(best)
            eligible = None if vec is None else (self.members & ((vec >= 0) & (self.choices > 1))).any(axis=1)
            step = self._conservative_listed if "listed" in self.space.capabilities else self._conservative
            arch = None if vec is None or not eligible.any() else step(vec, eligible)
            if arch is None:  # nothing to keep yet, or the best's neighbourhood is spent: a full sample, as in rl
                if best is not None:
                    self.escapes += 1
                arch = super().ask(1)[0]
                tokens = self.pending[arch.id][-1]
                self.pending[arch.id][-1] = [list(tokens), [int(v >= 0) for v in self.space.to_vector(arch)], -1, []]
            out.append(arch)
        return out

    def _conservative(self, vec: np.ndarray, eligible: np.ndarray) -> Architecture | None:
        """The first unseen of 1 + `resample` one-class variations of the best (None when all were seen)."""
        k = 1 + self.resample
        drawn = self.rng.choice(len(self.classes), size=k, p=self._class_probs(eligible))
        forced = np.tile(np.maximum(self._tokens(vec), 0).astype(int), (k, 1))
        free = self.members[drawn] | (vec < 0)[None, :]  # the class's slots, and slots the best lacks
        forced[free] = -1
        rows = _sample_rows(self.policy, self.rng, forced)
        for r in range(k):
            arch = self._decode(rows[r], keep=np.where(free[r], -1, vec))  # the other classes keep the best's options
            if arch.id in self.seen:
                continue
            mask = (free[r] & (self.space.to_vector(arch) >= 0)).astype(int).tolist()
            self.seen.add(arch.id)
            self.pending.setdefault(arch.id, []).append([rows[r].tolist(), mask, int(drawn[r]), eligible.tolist()])
            return arch
        return None

    def _conservative_listed(self, vec: np.ndarray, eligible: np.ndarray) -> Architecture | None:
        """On a listed space (a sampled table): an unseen listed architecture differing from the best in one
        eligible action class only, the class drawn by the selector among those that have one and the
        architecture by the policy's weight over a uniform draw, as rl's listed asks (None when none has one)."""
        archs, vecs = self._listed(unseen=True)
        if not archs:
            return None
        differs = (vecs >= 0) & (vec >= 0)[None, :] & (vecs != vec[None, :])
        changed = (differs[:, None, :] & self.members[None, :, :]).any(axis=2)  # architecture x class
        one = changed.sum(axis=1) == 1
        available = eligible & (changed & one[:, None]).any(axis=0)
        if not available.any():
            return None
        cls = int(self.rng.choice(len(self.classes), p=self._class_probs(available)))
        rows = np.flatnonzero(one & changed[:, cls])
        tokens = np.maximum(self._tokens(vecs[rows]), 0)
        free = (self.members[cls][None, :] | (vec < 0)[None, :]) & (vecs[rows] >= 0)
        mask = free.astype(np.float32)
        k = int(self.rng.choice(len(rows), p=listed_weights(self.policy, tokens, mask)))
        arch = archs[int(rows[k])]
        self.seen.add(arch.id)
        self.pending.setdefault(arch.id, []).append([tokens[k].tolist(), mask[k].astype(int).tolist(), cls,
                                                     available.tolist()])
        return arch

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        rows = self.pending.get(arch.id)
        if rows:
            tokens, mask, cls, eligible = rows.pop(0)
            if not rows:
                del self.pending[arch.id]
        else:  # not asked by us (warm start, replay, cache): teacher-force its active slots, no class
            vec = self.space.to_vector(arch)
            tokens, mask, cls, eligible = np.maximum(self._tokens(vec), 0).tolist(), [int(v >= 0) for v in vec], -1, []
        self.seen.add(arch.id)
        key = scalar_key(self.problem, result)
        if np.isfinite(key[0]) and (self.best_key is None or key < self.best_key):
            self.best, self.best_key = arch.to_dict(), (float(key[0]), float(key[1]))
        if result.cached:  # a repeat answered from the search's cache: rewarded when it was first told, as in rl
            return
        u = self.utility.add(result)
        if self.baseline is None:
            self.baseline = u
        adv = u - self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * u
        self.batch.append((list(tokens), list(mask), adv))
        if cls >= 0:
            self.class_batch.append((int(cls), [bool(e) for e in eligible], adv))
        if len(self.batch) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        import torch

        if self.class_batch:
            cls = torch.tensor([b[0] for b in self.class_batch])
            eligible = torch.tensor([b[1] for b in self.class_batch])
            adv = torch.tensor([b[2] for b in self.class_batch], dtype=torch.float32)
            logp = torch.log_softmax(self.selector.masked_fill(~eligible, -1e9), -1)
            chosen = logp.gather(1, cls[:, None]).squeeze(1)
            ent = -(logp.exp() * logp * eligible).sum(-1)
            loss = -(adv * chosen).mean() - self.entropy_weight * ent.mean()
            self.selector_opt.zero_grad()
            loss.backward()
            self.selector_opt.step()
            self.class_batch = []
        super()._update()

    def class_probabilities(self) -> dict[str, float]:
        """The selector's probability of each action class when every class is eligible (for inspection)."""
        return dict(zip(self.class_names, self._class_probs(np.ones(len(self.classes), dtype=bool)).tolist()))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "selector": self.selector.detach().tolist(),
                "selector_optimizer": _tensor_state(self.selector_opt.state_dict()),
                "class_batch": [[c, list(e), a] for c, e, a in self.class_batch],
                "best": self.best, "best_key": None if self.best_key is None else list(self.best_key),
                "escapes": self.escapes}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        super().load_state_dict(state)
        with torch.no_grad():
            self.selector.copy_(torch.tensor(state["selector"], dtype=torch.float32))
        opt = _tensor_load(state["selector_optimizer"])
        opt["state"] = {int(k): v for k, v in opt["state"].items()}
        self.selector_opt.load_state_dict(opt)
        self.class_batch = [(int(c), [bool(x) for x in e], float(a)) for c, e, a in state["class_batch"]]
        self.best, self.escapes = state["best"], int(state["escapes"])
        self.best_key = None if state["best_key"] is None else (float(state["best_key"][0]),
                                                                 float(state["best_key"][1]))
