"""`rl`: a REINFORCE controller (Zoph & Le 2017, ENAS, Auto-GNN) over any space's decision sequence.

An LSTM policy emits one token per slot of the space's fixed-length encoding (`space.slots()`: every
leaf decision, repeats expanded to their largest count); the architecture is read off the active
slots, so repeats with a variable count and conditionals need no special case. The reward is a
scale-free utility in [0, 1]: the fraction of all results seen so far that the result beats
(constraint-domination, so it works with several objectives and constraints). Every `batch_size`
results the policy takes one Adam step on `-(utility - baseline) * log p(tokens) - entropy_weight * H`,
with an exponential moving-average baseline. An ask resamples (up to `resample` times) architectures it
already asked or was told; when every draw is one of those (a converged policy), it proposes an unseen neighbour
of the policy's choice (one decision away, else an unseen uniform sample: `unknown_near`), scored by the policy
like a warm start, so a converged policy keeps proposing new ones instead of stalling the search on cached
repeats. Repeats the search answers from its cache (`TrialResult.cached`) are not rewards: their result was
rewarded when first told, and counting it again would push the policy further onto what it already favours.
On a space that lists its architectures (capability `listed`: a sampled table,
`nas.tabular.TableSpace`) an ask draws among the listed ones not yet seen, each with the probability the
policy gives its decisions relative to a uniform draw per decision, so an untrained policy draws uniformly
from the table and a trained one as it would in the whole space. Drawing in the whole space and snapping to
the nearest listed one would favour isolated entries and reinforce decisions that were never evaluated.
A wide ordered decision (`Slot.scaled`: an `Integer` or numeric `Choice` of more than `WIDE_ORDINAL` options) is one
of `WIDE_ORDINAL` tokens, each a contiguous bin of its options, the option drawn uniformly inside the bin
(`SlotTokens`): one logit per option would give `Integer(0, 10**9)` a billion outputs (a 128 GB policy), and
neighbouring values would share nothing the policy learns. State is plain data (weights and Adam moments as lists).

Auto-GNN's constrained parameter sharing (child GNNs inherit weights from a trained relative only when
their shapes and activations match) belongs to a training evaluator, not to the controller: the
strategy never sees weights, so it is left to evaluators (see docs/strategies.md).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.seeding import torch_seeded
from nas.spaces import Architecture, Slot, Space
from nas.spaces.params import WIDE_ORDINAL
from nas.strategies.base import Strategy, TrialResult, Unseen, check_count, torch_seed, unknown_near

if TYPE_CHECKING:
    import torch


def utility_key(problem: Problem, result: TrialResult) -> tuple[float, tuple[float, ...]]:
    """(violation, objective vector in minimisation form); failed results are worst (inf, inf...)."""
    m = len(problem.objectives)
    if result.status == "failed" or any(o.name not in result.metrics for o in problem.objectives):
        return (np.inf, (np.inf,) * m)
    return (problem.violation(result.metrics), tuple(problem.vector(result.metrics)))


class Utility:
    """Rank-based reward: the share of earlier results that a result constraint-dominates or ties."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.keys: list[tuple[float, tuple[float, ...]]] = []
        self._sorted: list[tuple[float, float]] = []  # single objective: sorted (violation, value)

    def add(self, result: TrialResult) -> float:
        key = utility_key(self.problem, result)
        n = len(self.keys)
        if n == 0:
            u = 0.5
        elif len(self.problem.objectives) == 1:
            k = (key[0], key[1][0])
            worse = len(self._sorted) - bisect.bisect_left(self._sorted, k)  # results not better than this
            u = worse / n
        else:
            viol = np.array([k[0] for k in self.keys])
            obj = np.array([k[1] for k in self.keys])
            if key[0] > 0 or not np.isfinite(key[0]):
                better = (viol < key[0]).sum()
            else:
                mine = np.array(key[1])
                dom = (viol == 0) & np.all(obj <= mine, axis=1) & np.any(obj < mine, axis=1)
                better = dom.sum()
            u = 1.0 - better / n
        self.keys.append(key)
        if len(self.problem.objectives) == 1:
            bisect.insort(self._sorted, (key[0], key[1][0]))
        return float(u)

    def state(self) -> list[Any]:
        return [[k[0], list(k[1])] for k in self.keys]

    def load(self, state: Sequence[Any]) -> None:
        self.keys, self._sorted = [], []
        for viol, vec in state:
            key = (float(viol), tuple(float(v) for v in vec))
            self.keys.append(key)
            if len(self.problem.objectives) == 1:
                bisect.insort(self._sorted, (key[0], key[1][0]))


@dataclass(frozen=True)
class SlotTokens:
    """The policy's tokens for one slot: one per option, or for a wide ordered decision (`Slot.scaled`)
    `WIDE_ORDINAL` contiguous bins of near-equal size, bin b holding options floor(b C / B) .. floor((b + 1) C / B) - 1."""

    cardinality: int
    count: int

    @classmethod
    def of(cls, slot: Slot) -> "SlotTokens":
        card = int(slot.leaf.cardinality)
        return cls(card, WIDE_ORDINAL if slot.scaled and card > WIDE_ORDINAL else card)

    @property
    def binned(self) -> bool:
        return self.count < self.cardinality

    def tokens(self, indices: np.ndarray) -> np.ndarray:
        """Option indices -> tokens (negative entries, inactive slots, stay as they are)."""
        idx = np.asarray(indices, dtype=np.int64)
        if not self.binned:
            return idx
        return np.where(idx < 0, idx, ((idx + 1) * self.count + self.cardinality - 1) // self.cardinality - 1)

    def index(self, token: int, rng: np.random.Generator) -> int:
        """Token -> option index: the option itself, or one drawn uniformly in the token's bin."""
        if not self.binned:
            return int(token)
        lo, hi = (int(token) * self.cardinality // self.count, (int(token) + 1) * self.cardinality // self.count)
        return int(rng.integers(lo, hi))


class _Policy:
    """LSTM controller: token embedding -> LSTMCell -> per-slot softmax head (ENAS-style)."""

    def __init__(self, cards: Sequence[int], hidden: int, seed: int) -> None:
        import torch.nn as nn

        self.cards = list(cards)
        self.offsets = np.concatenate([[0], np.cumsum(self.cards)]).astype(int)
        with torch_seeded(seed):
            self.embed = nn.Embedding(int(self.offsets[-1]) + 1, hidden)  # last row: the start token
            self.cell = nn.LSTMCell(hidden, hidden)
            self.head = nn.Linear(hidden, int(self.offsets[-1]))
            for p in self.head.parameters():
                nn.init.zeros_(p)  # start uniform over every decision
        self.hidden = hidden
        self.modules = nn.ModuleList([self.embed, self.cell, self.head])

    def _logits(self, h: "torch.Tensor", t: int) -> "torch.Tensor":
        return self.head(h)[..., self.offsets[t]:self.offsets[t + 1]]

    def sample(self, rng: np.random.Generator, k: int = 1) -> list[list[int]]:
        """`k` token sequences drawn in one batched pass (inverse-CDF sampling from `rng`)."""
        import torch

        out = np.zeros((k, len(self.cards)), dtype=int)
        with torch.no_grad():
            x = self.embed.weight[-1:].expand(k, -1)
            h = c = torch.zeros(k, self.hidden)
            for t in range(len(self.cards)):
                h, c = self.cell(x, (h, c))
                p = torch.softmax(self._logits(h, t).double(), -1).numpy()
                cdf = np.cumsum(p, axis=1)
                u = rng.random(k) * cdf[:, -1]
                a = np.minimum((cdf < u[:, None]).sum(axis=1), p.shape[1] - 1)
                out[:, t] = a
                x = self.embed.weight[torch.as_tensor(a + int(self.offsets[t]))]
        return out.tolist()

    def log_prob_entropy(self, tokens: np.ndarray, mask: np.ndarray) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Sum over active slots of log p(token) and of the entropy, per row of `tokens` (B x T)."""
        import torch

        b = tokens.shape[0]
        tok = torch.as_tensor(tokens, dtype=torch.long)
        msk = torch.as_tensor(mask, dtype=torch.float32)
        x = self.embed.weight[-1:].expand(b, -1)
        h = c = torch.zeros(b, self.hidden)
        logp = torch.zeros(b)
        ent = torch.zeros(b)
        for t in range(len(self.cards)):
            h, c = self.cell(x, (h, c))
            lsm = torch.log_softmax(self._logits(h, t), -1)
            logp = logp + msk[:, t] * lsm.gather(1, tok[:, t:t + 1]).squeeze(1)
            ent = ent - msk[:, t] * (lsm.exp() * lsm).sum(-1)
            x = self.embed(tok[:, t] + int(self.offsets[t]))
        return logp, ent


def listed_weights(policy: _Policy, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Draw probabilities of listed architectures (rows of `tokens`, active slots in `mask`): the policy's
    probability of each over that of a uniform draw per decision, normalised (none exactly 0)."""
    import torch

    with torch.no_grad():
        logp = policy.log_prob_entropy(tokens, mask)[0].double().numpy()
    logp += mask @ np.log(np.asarray(policy.cards, dtype=float))
    p = np.exp(logp - logp.max()) + 1e-12
    return p / p.sum()


def _tensor_state(obj: Any) -> Any:
    """Tensors inside nested dicts/lists -> nested lists (plain data)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return {"__tensor__": obj.detach().cpu().tolist(), "shape": list(obj.shape)}
    if isinstance(obj, Mapping):
        return {str(k): _tensor_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tensor_state(v) for v in obj]
    return obj


def _tensor_load(obj: Any) -> Any:
    import torch

    if isinstance(obj, Mapping):
        if "__tensor__" in obj:
            return torch.tensor(obj["__tensor__"], dtype=torch.float32).reshape(obj["shape"])
        return {k: _tensor_load(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_tensor_load(v) for v in obj]
    return obj


class ReinforceController(Strategy):
    """REINFORCE with a moving-average baseline and an entropy bonus; works on any space."""

    name = "rl"
    requires = frozenset({"sample", "encode", "independent-slots"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, hidden: int = 32,
                 lr: float = 0.05, batch_size: int = 10, baseline_decay: float = 0.9,
                 entropy_weight: float = 0.01, resample: int = 20) -> None:
        super().__init__(space, problem, seed)
        checks = [("hidden", hidden, hidden >= 1, "an int >= 1"), ("lr", lr, lr > 0, "> 0"),
                  ("batch_size", batch_size, batch_size >= 1, "an int >= 1"),
                  ("baseline_decay", baseline_decay, 0.0 <= baseline_decay < 1.0, "in [0, 1)"),
                  ("entropy_weight", entropy_weight, entropy_weight >= 0, ">= 0"),
                  ("resample", resample, resample >= 0, "an int >= 0")]
        for option, value, ok, rule in checks:
            if not ok:  # the option, its rule and the value given, as evolution's and mcts's errors say
                raise ConfigError(f"{self.name}: {option} must be {rule}, got {value!r}")
        import torch

        self.hidden, self.lr, self.batch_size = hidden, lr, batch_size
        self.baseline_decay, self.entropy_weight, self.resample = baseline_decay, entropy_weight, resample
        self.slots = space.slots()
        self.tokens = [SlotTokens.of(s) for s in self.slots]
        self.policy = _Policy([t.count for t in self.tokens], hidden, torch_seed(seed))
        self.opt = torch.optim.Adam(self.policy.modules.parameters(), lr=lr)
        self.utility = Utility(problem)
        self.baseline: float | None = None
        self.pending: dict[str, list[list[int]]] = {}  # arch id -> sampled token rows not yet told
        self.batch: list[tuple[list[int], list[int], float]] = []  # (tokens, mask, advantage)
        self.updates = 0
        self.seen: set[str] = set()  # ids asked or told: resampled away (a converged policy would loop)
        self._listed_vectors: dict[str, np.ndarray] | None = None  # a listed space's to_vector rows (not state)
        self._unseen = Unseen(space)  # a small space's listing, made when unseen ones grow rare (a cache, not state)

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        if "listed" in self.space.capabilities:
            return self._ask_listed(n)
        out = []
        for _ in range(n):
            tokens = self.policy.sample(self.rng)[0]
            arch = self._decode(tokens)
            if arch.id in self.seen and self.resample > 0:  # one batched draw of alternatives
                for row in self.policy.sample(self.rng, self.resample):
                    cand = self._decode(row)
                    if cand.id not in self.seen:
                        tokens, arch = row, cand
                        break
                else:  # every draw seen: the policy has converged there
                    tokens, arch = self._unseen_near(tokens, arch)
            self.seen.add(arch.id)
            self.pending.setdefault(arch.id, []).append(tokens)
            out.append(arch)
        return out

    def _unseen_near(self, tokens: list[int], arch: Architecture) -> tuple[list[int], Architecture]:
        """An unseen architecture near the policy's `arch` and its tokens (teacher-forced, as a told one's), or
        (`tokens`, `arch`) when every architecture is seen: a converged policy would otherwise repeat cached ones."""
        fresh = unknown_near(self.space, arch, self.rng, lambda a: a.id not in self.seen, unseen=self._unseen)
        if fresh is None:
            return tokens, arch
        return np.maximum(self._tokens(self.space.to_vector(fresh)), 0).tolist(), fresh

    def _ask_listed(self, n: int) -> list[Architecture]:
        """`n` unseen architectures of a listed space, drawn without replacement with probability proportional to
        the policy's over a uniform draw per decision (importance resampling: a table sampled decision by
        decision, as the recorded ones are, then stands for the whole space, and an untrained policy draws
        uniformly from it); once every one is seen, repeats by the same weights."""
        archs, vecs = self._listed(unseen=True)
        if not archs:
            archs, vecs = self._listed(unseen=False)
        tokens, mask = np.maximum(self._tokens(vecs), 0), (vecs >= 0).astype(np.float32)
        p = listed_weights(self.policy, tokens, mask)
        picks = self.rng.choice(len(archs), size=min(n, len(archs)), replace=False, p=p)
        out = []
        for i in picks:
            arch = archs[int(i)]
            self.seen.add(arch.id)
            self.pending.setdefault(arch.id, []).append(tokens[int(i)].tolist())
            out.append(arch)
        return out

    def _listed(self, unseen: bool) -> tuple[list[Architecture], np.ndarray]:
        """A listed space's architectures (those not yet seen, with `unseen`) and their `to_vector` rows, the
        vectors computed once per search (a listed space's entries never change)."""
        if self._listed_vectors is None:
            self._listed_vectors = {a.id: self.space.to_vector(a) for a in self.space}
        archs = [a for a in self.space if not (unseen and a.id in self.seen)]
        vecs = np.array([self._listed_vectors[a.id] for a in archs], dtype=np.int64).reshape(len(archs), len(self.slots))
        return archs, vecs

    def _tokens(self, vecs: np.ndarray) -> np.ndarray:
        """`to_vector` rows (option indices, -1 where inactive; one row or a matrix) -> the policy's tokens."""
        vecs = np.asarray(vecs, dtype=np.int64)
        out = vecs.copy()
        for t, tk in enumerate(self.tokens):
            if tk.binned:
                out[..., t] = tk.tokens(vecs[..., t])
        return out

    def _decode(self, tokens: Sequence[int], keep: np.ndarray | None = None) -> Architecture:
        """The architecture the active slots spell out (inactive slots' tokens are ignored); a binned token's option
        is drawn in its bin, except where `keep` (option indices, -1 for none) holds the option to keep."""
        lookup = {s.path: int(keep[t]) if keep is not None and keep[t] >= 0 else self.tokens[t].index(tok, self.rng)
                  for t, (s, tok) in enumerate(zip(self.slots, tokens))}
        return self.space.validate(self.space._from_indices(lookup, ()))

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        rows = self.pending.get(arch.id)
        if rows:
            tokens = rows.pop(0)
            if not rows:
                del self.pending[arch.id]
        else:  # not asked by us (warm start, replay): teacher-force its active slots only
            tokens = None
        self.seen.add(arch.id)
        if result.cached:  # a repeat answered from the search's cache: rewarded when it was first told
            return
        vec = self.space.to_vector(arch)
        mask = [int(v >= 0) for v in vec]
        if tokens is None:
            tokens = np.maximum(self._tokens(vec), 0).tolist()
        u = self.utility.add(result)
        if self.baseline is None:
            self.baseline = u
        adv = u - self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * u
        self.batch.append((tokens, mask, adv))
        if len(self.batch) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        import torch

        tokens = np.array([b[0] for b in self.batch], dtype=np.int64)
        mask = np.array([b[1] for b in self.batch], dtype=np.float32)
        adv = torch.tensor([b[2] for b in self.batch], dtype=torch.float32)
        logp, ent = self.policy.log_prob_entropy(tokens, mask)
        loss = -(adv * logp).mean() - self.entropy_weight * ent.mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.batch = []
        self.updates += 1

    def probabilities(self) -> list[list[float]]:
        """Per-slot token probabilities (options; bins of a wide ordered decision) of the greedy path's context (for
        inspection and tests)."""
        import torch

        probs = []
        with torch.no_grad():
            x = self.policy.embed.weight[-1:]
            h = c = torch.zeros(1, self.policy.hidden)
            for t in range(len(self.slots)):
                h, c = self.policy.cell(x, (h, c))
                p = torch.softmax(self.policy._logits(h, t)[0], -1)
                probs.append(p.tolist())
                x = self.policy.embed.weight[self.policy.offsets[t] + int(p.argmax())][None]
        return probs

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "policy": _tensor_state(self.policy.modules.state_dict()),
                "optimizer": _tensor_state(self.opt.state_dict()),
                "utility": self.utility.state(), "baseline": self.baseline,
                "pending": {k: [list(r) for r in v] for k, v in self.pending.items()},
                "batch": [[list(t), list(m), a] for t, m, a in self.batch], "updates": self.updates,
                "seen": sorted(self.seen)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        super().load_state_dict(state)
        self.policy.modules.load_state_dict(_tensor_load(state["policy"]))
        opt = _tensor_load(state["optimizer"])
        opt["state"] = {int(k): {n: (v if isinstance(v, torch.Tensor) else v) for n, v in s.items()}
                        for k, s in opt["state"].items()}
        self.opt.load_state_dict(opt)
        self.utility.load(state["utility"])
        self.baseline = state["baseline"]
        self.pending = {k: [list(r) for r in v] for k, v in state["pending"].items()}
        self.batch = [(list(t), list(m), float(a)) for t, m, a in state["batch"]]
        self.updates = int(state["updates"])
        self.seen = set(state["seen"])
        self._unseen.reset()
