"""Ray for clusters: `executor` (a pool of long-lived actors), `tune` (Tune trials, schedulers, our strategies
as a Tune `Searcher`) and `train` (data-parallel supernet and one-shot training on Ray Train workers).

Importing this package does not import Ray; each module does, when used.
"""
