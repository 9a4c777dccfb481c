"""`mcts`: Monte-Carlo tree search over a space's sequence of decisions (DeepArchitect, Negrinho & Gordon 2017).

The tree branches on the space's leaf decisions (`space.slots()`) one after another, in slot order except
that a controller (the count of a `Repeat`, the field a `Conditional` is switched by) always comes before
the slots it switches on or off. Slots that earlier decisions made inactive are skipped, so a path from
the root spells out exactly one valid architecture, whatever `Repeat`s and `Conditional`s the space holds.
Spaces whose slots are not independent decisions (a `Subset`'s mask bits) lack the `independent-slots`
capability and are refused at construction.

One ask: descend from the root by UCT while every option of a node has a child; at the first node with an
untried option, add one child for an option drawn uniformly among the untried ones (one expansion per
visit); complete the remaining decisions uniformly at random (the rollout) and build the architecture with
`space.from_vector`. The ask counts as a visit of the nodes on its path at once (a virtual loss, so a batch
of asks spreads out); its result is added to the same nodes when told.

Scores, normalised to [0, 1] from the results seen so far, so one exploration constant fits every problem:
a feasible result scores the share of the earlier feasible results it beats (ties count half), failed and
infeasible results score 0 (the worst). A node keeps its visit count `n`, the sum `s` of its scores and the
best loss `b` below it (loss: the objective in minimisation form; with several objectives the result's
Pareto rank, `pareto_ranks`, among the feasible results when it was told). Its value is
`(1 - greed) * s / n + greed * q(b)`, where q(b) is the share of all feasible losses so far that are not
better than `b` (exact at every selection): the mean says where results are good on average, the best
where the optimum is likely (single-player MCTS mixes the two the same way). A child's UCT value is its
value + `exploration * sqrt(ln N_parent / n_child)`.

Defaults, chosen on the cora table with seeds 100..119 (experiments/README.md): `exploration=0.1`,
`greed=0.5`. UCB1's sqrt(2) assumes rewards that a few visits tell apart across [0, 1]; at a budget of 100
a node is visited a handful of times and sibling subtrees differ by a tenth or two of this scale, so large
constants spend the budget nearly uniformly: over a grid of exploration 0.02..1.41 x greed 0, 0.5, 1, the
settings with exploration 0.05..0.1 and greed 0.5 had the lowest regret, exploration >= 0.5 the highest
(neighbouring settings differ by less than the noise of 20 seeds).

Nothing is proposed twice: rollouts that give an architecture already asked or told (by
`space.canonical_key`) are drawn again (`resample` times), and that architecture's path is added to the
tree with its leaf marked explored; a node whose options all have explored children is explored itself,
and UCT never descends into it. When the root is explored, the space is exhausted and ask returns fewer.

State is plain data: the tree as nested dicts of counts, sums and best losses keyed by option index (as
strings in JSON), the sorted losses, the asks awaiting results, the keys seen, and the RNG.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.pareto import ParetoFronts
from nas.spaces import Architecture, Conditional, Repeat, Space
from nas.strategies.base import SeenArchitectures, Strategy, TrialResult, check_count, scalar_key

Node = dict[str, Any]  # {"n": visits, "s": sum of scores, "b": best loss, "d": explored, "c": {option: Node}}


def _node() -> Node:
    return {"n": 0, "s": 0.0, "b": None, "d": False, "c": {}}


class Decisions:
    """A space's slots in decision order (controllers before what they switch), and which are active.

    `conditions[i]` lists (controller slot, options of it under which slot i exists) for every `Conditional`
    and variable-count `Repeat` on slot i's path; slot i is active when each controller holds one of them.
    """

    def __init__(self, space: Space) -> None:
        slots = space.slots()
        index = {s.path: i for i, s in enumerate(slots)}
        self.cards = [s.leaf.cardinality for s in slots]
        self.conditions = [self._conditions(space, s.path, index) for s in slots]
        order: list[int] = []
        placed: set[int] = set()
        remaining = list(range(len(slots)))
        while remaining:  # stable: the first slot in slot order whose controllers are placed
            j = next(j for j, i in enumerate(remaining) if all(c in placed for c, _ in self.conditions[i]))
            placed.add(remaining[j])
            order.append(remaining.pop(j))
        self.order = order

    @staticmethod
    def _conditions(space: Space, path: tuple, index: Mapping[tuple, int]) -> list[tuple[int, frozenset[int]]]:
        out = []
        cur, prefix, k = space, (), 0
        while True:
            name = path[k]
            node = cur.fields[name]
            if isinstance(node, Conditional):
                ctrl = cur.fields[node.on]
                out.append((index[prefix + (node.on,)],
                            frozenset(j for j in range(ctrl.cardinality) if node.active(ctrl.value(j)))))
                node = node.node
            if isinstance(node, Repeat):
                i = path[k + 1]
                if isinstance(node.count, str):
                    ctrl = cur.fields[node.count]
                    out.append((index[prefix + (node.count,)],
                                frozenset(j for j in range(ctrl.cardinality) if ctrl.value(j) > i)))
                cur, prefix, k = node.block, prefix + (name, i), k + 2
            elif isinstance(node, Space):
                cur, prefix, k = node, prefix + (name,), k + 1
            else:
                return out

    def next_active(self, pos: int, choice: Sequence[int]) -> int:
        """The first position >= `pos` in `order` whose slot is active under `choice` (len(order): none)."""
        while pos < len(self.order):
            if all(choice[c] in allowed for c, allowed in self.conditions[self.order[pos]]):
                return pos
            pos += 1
        return pos

    def path(self, vector: Sequence[float]) -> list[int]:
        """The option indices of an architecture's active decisions, in decision order (its path in the tree)."""
        return [int(vector[i]) for i in self.order if vector[i] >= 0]


class MonteCarloTreeSearch(Strategy):
    """Monte-Carlo tree search (UCT) over the space's decisions with random rollouts (DeepArchitect)."""

    name = "mcts"
    requires = frozenset({"sample", "encode", "independent-slots"})  # any option per active slot is valid

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, exploration: float = 0.1,
                 greed: float = 0.5, resample: int = 5) -> None:
        super().__init__(space, problem, seed)
        if not (isinstance(exploration, (int, float)) and math.isfinite(exploration) and exploration >= 0):
            raise ConfigError(f"mcts: exploration must be a finite number >= 0, got {exploration!r}")
        if not (isinstance(greed, (int, float)) and 0 <= greed <= 1):
            raise ConfigError(f"mcts: greed must be in [0, 1], got {greed!r}")
        if not isinstance(resample, int) or isinstance(resample, bool) or resample < 0:
            raise ConfigError(f"mcts: resample must be an int >= 0, got {resample!r}")
        self.exploration, self.greed, self.resample = float(exploration), float(greed), resample
        self.decisions = Decisions(space)
        self.root: Node = _node()
        self.losses: list[float] = []  # losses of the feasible results told, sorted
        self.feasible: list[dict[str, float]] = []  # several objectives: metrics of the feasible results (ranks)
        self._fronts = ParetoFronts()  # their Pareto fronts, kept as they arrive (a cache, rebuilt on load)
        self.pending: dict[str, list[list[Any]]] = {}  # arch id -> [[nodes counted at the ask, path], ...]
        self.known = SeenArchitectures(space)  # asked or told: never proposed again

    # ------------------------------------------------------------------ ask
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out = []
        for _ in range(n):
            arch = self._propose()
            if arch is None:
                break
            out.append(arch)
        return out

    def _propose(self) -> Architecture | None:
        last = None
        for _ in range(20):  # one expansion per try; more tries only while rollouts meet known architectures
            if self.root["d"]:
                return None
            nodes, cards, choice, pos = self._descend()
            for _ in range(self.resample + 1):
                full = self._rollout(choice, pos)
                arch = self.space.from_vector(full)
                if arch not in self.known:
                    return self._commit(arch, nodes, cards, full, terminal=pos == len(self.decisions.order))
                last = arch
                self._mark_explored(self.decisions.path(full))
                if nodes[-1]["d"]:
                    break  # everything below the new node is known (or it is a leaf)
        for _ in range(100):  # the tree keeps meeting known ones: a uniform sample, if one is new
            arch = self.space.sample(self.rng)
            if arch not in self.known:
                return self._commit(arch, [self.root], [], self.space.to_vector(arch), terminal=False)
        return last

    def _descend(self) -> tuple[list[Node], list[int], list[int], int]:
        """UCT from the root down to the first node with an untried option, which gets one new child.

        Returns the nodes on the path (root first), the cardinalities of their decisions, the decisions
        made (a slot vector, -1 where undecided or inactive) and the position of the next decision.
        """
        dec = self.decisions
        choice = [-1] * len(dec.cards)
        node, nodes, cards = self.root, [self.root], []
        pos = dec.next_active(0, choice)
        while pos < len(dec.order):
            slot = dec.order[pos]
            card = dec.cards[slot]
            cards.append(card)
            children = node["c"]
            if len(children) < card:
                if 2 * len(children) < card:  # mostly untried (large Integer ranges): draw until untried
                    j = int(self.rng.integers(card))
                    while j in children:
                        j = int(self.rng.integers(card))
                else:
                    free = [j for j in range(card) if j not in children]
                    j = free[int(self.rng.integers(len(free)))]
                children[j] = _node()
                choice[slot] = j
                nodes.append(children[j])
                return nodes, cards, choice, dec.next_active(pos + 1, choice)
            j = self._uct(node)
            choice[slot] = j
            node = children[j]
            nodes.append(node)
            pos = dec.next_active(pos + 1, choice)
        return nodes, cards, choice, pos  # only a space without decisions gets here (the root is the leaf)

    def _uct(self, node: Node) -> int:
        """The option of the unexplored child with the highest UCT value (ties drawn at random)."""
        log_n = math.log(max(node["n"], 1))
        best, args = -math.inf, []
        for j in sorted(node["c"]):
            child = node["c"][j]
            if child["d"]:
                continue
            v = math.inf if child["n"] == 0 else \
                self.value(child) + self.exploration * math.sqrt(log_n / child["n"])
            if v > best + 1e-12:
                best, args = v, [j]
            elif v >= best - 1e-12:
                args.append(j)
        return args[0] if len(args) == 1 else args[int(self.rng.integers(len(args)))]

    def value(self, node: Node) -> float:
        """(1 - greed) * mean score + greed * the share of feasible losses not better than the node's best."""
        if node["n"] == 0:
            return 0.0
        mean = node["s"] / node["n"]
        if node["b"] is None or not self.greed:
            return (1 - self.greed) * mean
        q = (len(self.losses) - bisect.bisect_left(self.losses, node["b"])) / len(self.losses)
        return (1 - self.greed) * mean + self.greed * q

    def _rollout(self, choice: Sequence[int], pos: int) -> list[int]:
        """The decisions from position `pos` on drawn uniformly (inactive slots stay -1)."""
        dec = self.decisions
        full = list(choice)
        pos = dec.next_active(pos, full)
        while pos < len(dec.order):
            slot = dec.order[pos]
            full[slot] = int(self.rng.integers(dec.cards[slot]))
            pos = dec.next_active(pos + 1, full)
        return full

    def _commit(self, arch: Architecture, nodes: list[Node], cards: list[int], full: Sequence[float],
                terminal: bool) -> Architecture:
        for node in nodes:
            node["n"] += 1  # counted now, scored when told
        self.pending.setdefault(arch.id, []).append([len(nodes), self.decisions.path(full)])
        if terminal:
            self._explored(nodes, cards)
        self.known.add(arch)
        return arch

    def _explored(self, nodes: list[Node], cards: list[int]) -> None:
        """Mark the last node explored, then every ancestor whose options all have explored children."""
        nodes[-1]["d"] = True
        for node, card in zip(reversed(nodes[:-1]), reversed(cards)):
            if len(node["c"]) < card or not all(c["d"] for c in node["c"].values()):
                return
            node["d"] = True

    def _mark_explored(self, path: Sequence[int]) -> None:
        """Add a known architecture's path to the tree (new nodes unvisited) and mark its leaf explored."""
        dec = self.decisions
        choice = [-1] * len(dec.cards)
        node, nodes, cards = self.root, [self.root], []
        pos = dec.next_active(0, choice)
        for j in path:
            slot = dec.order[pos]
            cards.append(dec.cards[slot])
            node = node["c"].setdefault(j, _node())
            nodes.append(node)
            choice[slot] = j
            pos = dec.next_active(pos + 1, choice)
        self._explored(nodes, cards)

    # ------------------------------------------------------------------ tell
    def _loss(self, result: TrialResult, new: bool) -> float | None:
        """Lower is better: the objective (minimisation form), or with several objectives the Pareto rank
        among the feasible results so far; None for failed and infeasible results. `new` results are kept."""
        violation, value = scalar_key(self.problem, result)
        if violation != 0 or not math.isfinite(value):
            return None
        if len(self.problem.objectives) == 1:
            return float(value)
        if not all(math.isfinite(v) for v in self.problem.vector(result.metrics)):
            return None
        point = self.problem.vector(result.metrics)  # its `pareto_ranks` rank among them: the fronts it follows
        if not new:
            return float(self._fronts.rank_of(point))
        self.feasible.append(dict(result.metrics))
        return float(self._fronts.add(point, len(self.feasible) - 1))

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        waiting = self.pending.get(arch.id)
        if result.cached and not waiting:
            return  # a repeat of an architecture someone else asked: nothing new
        self.known.add(arch)
        loss = self._loss(result, new=not result.cached)  # a cached answer to our ask scores like its twin
        score = 0.0
        if loss is not None:
            lo, hi = bisect.bisect_left(self.losses, loss), bisect.bisect_right(self.losses, loss)
            m = len(self.losses)
            score = 0.5 if m == 0 else (m - hi + 0.5 * (hi - lo)) / m
            if not result.cached:
                self.losses.insert(hi, loss)
        if waiting:  # our ask: its visit was counted then, on the nodes that existed
            depth, path = waiting.pop(0)
            if not waiting:
                del self.pending[arch.id]
        else:  # not asked by us (warm start, replay): a visit of every node on its path
            depth, path = None, self.decisions.path(self.space.to_vector(arch))
        node: Node | None = self.root
        i = 0
        while node is not None and (depth is None or i < depth):
            if depth is None:
                node["n"] += 1
            node["s"] += score
            if loss is not None and (node["b"] is None or loss < node["b"]):
                node["b"] = loss
            node = node["c"].get(path[i]) if i < len(path) else None
            i += 1

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tree": _tree_state(self.root), "losses": list(self.losses),
                "feasible": [dict(m) for m in self.feasible],
                "pending": {k: [list(p) for p in v] for k, v in self.pending.items()}, "seen": sorted(self.known.keys)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.root = _tree_load(state["tree"])
        self.losses = [float(x) for x in state["losses"]]
        self.feasible = [dict(m) for m in state["feasible"]]
        self._fronts = ParetoFronts(np.array([self.problem.vector(m) for m in self.feasible], dtype=float))
        self.pending = {k: [[int(d), [int(j) for j in p]] for d, p in v] for k, v in state["pending"].items()}
        self.known.clear()
        self.known.keys = set(state["seen"])


def _tree_state(node: Node) -> dict[str, Any]:
    return {"n": node["n"], "s": node["s"], "b": node["b"], "d": node["d"],
            "c": {str(j): _tree_state(c) for j, c in sorted(node["c"].items())}}


def _tree_load(data: Mapping[str, Any]) -> Node:
    return {"n": int(data["n"]), "s": float(data["s"]), "b": None if data["b"] is None else float(data["b"]),
            "d": bool(data["d"]), "c": {int(j): _tree_load(c) for j, c in data["c"].items()}}
