"""The benchmark gym, after ArchGym (Krishnan et al., ISCA 2023): every registered strategy against every
environment through one ask/tell loop (`nas.search`), each with the same number of its own hyper-parameter
settings, reporting the distribution of outcomes over settings x seeds rather than a best run, so that no
strategy wins the "hyperparameter lottery" by having been tuned more.

`Environment` (built in: NAS-Bench-Graph tables, the analytic hardware `CostModel`, real training on digits,
and any environment behind a `ProxyCostModel`), `HYPERPARAMETERS` / `draw_settings`, `run_gym -> GymResult`.
Nothing here prints: `experiments/reporting.py` renders tables and plots; docs/gym.md walks through it.
"""

from nas.gym.environments import (ENVIRONMENTS, CNN1dSpace, DigitsMLPTraining, Environment, digits_mlp_space,
                                  environment, hardware_environment, proxy_environment, tabular_environment,
                                  training_environment)
from nas.gym.proxy import OnnxForests, ProxyAccuracy, ProxyCostModel, time_per_query
from nas.gym.runs import GymResult, RunRecord, Skip, Summary, applicability, run_gym, run_one
from nas.gym.settings import HYPERPARAMETERS, Hyperparameters, Setting, draw_settings

__all__ = ["CNN1dSpace", "DigitsMLPTraining", "ENVIRONMENTS", "Environment", "GymResult", "HYPERPARAMETERS",
           "Hyperparameters", "OnnxForests", "ProxyAccuracy", "ProxyCostModel", "RunRecord", "Setting", "Skip",
           "Summary", "applicability", "digits_mlp_space", "draw_settings", "environment", "hardware_environment",
           "proxy_environment", "run_gym", "run_one", "tabular_environment", "time_per_query", "training_environment"]
