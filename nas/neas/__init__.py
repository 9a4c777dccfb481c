"""NEAS: one-shot neural ensemble architecture search with diversity-guided search-space shrinking (docs/neas.md).

`chain`: the chain supernet space and ensembles of its subnets (space, supernet, module, files);
`search`: K-path training, the potential + diversity scores, shrinking, and `search_neas`.
"""

from nas.neas.chain import (ChainConfig, ChainNet, ChainSpace, ChainSupernet, Ensemble, EnsembleConfig, EnsembleSpace,
                            EnsembleSupernet, load_ensemble, save_ensemble)
from nas.neas.search import (CandidateScore, NeasOptions, NeasResult, PathEvaluator, RoundRecord, disagreement,
                             ensemble_probs, score_candidates, search_neas, shrink, train_kpath)

__all__ = ["CandidateScore", "ChainConfig", "ChainNet", "ChainSpace", "ChainSupernet", "Ensemble", "EnsembleConfig",
           "EnsembleSpace", "EnsembleSupernet", "NeasOptions", "NeasResult", "PathEvaluator", "RoundRecord",
           "disagreement", "ensemble_probs", "load_ensemble", "save_ensemble", "score_candidates", "search_neas",
           "shrink", "train_kpath"]
