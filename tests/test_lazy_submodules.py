"""After a plain `import nas`, the submodules the docs call as `nas.importance.decision_importances(...)`,
`nas.plot.plot_pareto(...)` or `nas.to_optuna.to_optuna(...)` are there, imported on first use (so `import nas` stays
light)."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_documented_submodule_calls_work_after_import_nas() -> None:
    out = run("import sys, nas\n"
              "light = 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
              "calls = [nas.importance.decision_importances, nas.plot.plot_pareto, nas.compare.compare_searches,\n"
              "         nas.to_optuna.to_optuna, nas.spaces.Space]\n"
              "print(light, all(callable(c) for c in calls))")
    assert out == "True True"


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    out = run("import nas\n"
              "try:\n    nas.no_such_module\nexcept AttributeError as e:\n    print(e)\n"
              "print(hasattr(nas, '_private'), hasattr(nas, 'no_such_module'))")
    assert out.splitlines() == ["module 'nas' has no attribute 'no_such_module'", "False False"]
