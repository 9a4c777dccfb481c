"""Edge cases of the predictors found in session 36's outside tests."""
from __future__ import annotations

from collections import Counter

import numpy as np

from nas.predictors import make_predictor
from nas.predictors.embedding import wl_features
from nas.spaces.cell import NasBench201Space

SPACE = NasBench201Space(channels=4, cells_per_stage=1)


def _cosine(a: Counter, b: Counter) -> float:
    dot = sum(c * b.get(k, 0) for k, c in a.items())
    return dot / np.sqrt(sum(c * c for c in a.values()) * sum(c * c for c in b.values()))


def test_wl_gp_similarity_counts_patterns_never_seen_in_fit():
    """The WL kernel is the cosine of the *full* pattern counts: an architecture of mostly new patterns is far from
    every training one (and the GP is unsure of it), not as close as its few familiar parts alone would make it."""
    rng = np.random.default_rng(0)
    train = []
    while len(train) < 30:  # no pooling anywhere in training
        a = SPACE.sample(rng)
        if "avg_pool_3x3" not in a.values():
            train.append(a)
    novel = {k: "avg_pool_3x3" for k in train[0]}
    novel[next(iter(novel))] = train[0][next(iter(novel))]
    y = [sum(op == "nor_conv_3x3" for op in a.values()) + 0.5 * sum(op == "skip_connect" for op in a.values())
         for a in train]
    p = make_predictor("wl-gp", SPACE, 0, onehot=False, target="raw").fit(train, y)
    assert not p.degenerate
    x = p.embed([novel, train[0]]).toarray()
    got = float(x[0] @ x[1])
    fa = wl_features(SPACE.to_graph(SPACE.validate(novel)), p.iterations, p.edge_attr)
    fb = wl_features(SPACE.to_graph(SPACE.validate(train[0])), p.iterations, p.edge_attr)
    want = np.mean([_cosine(ra, rb) for ra, rb in zip(fa, fb)])
    assert abs(got - want) < 1e-9
    assert float(x[0] @ x[0]) < 0.9  # its new patterns are dropped from the vector but not from its norm
    _, std = p.predict([novel, train[0]])
    assert std[0] > 5 * std[1]  # unsure far from the data, sure at a training point
