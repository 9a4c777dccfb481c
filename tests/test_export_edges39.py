"""`nas export` of a workdir without model.json is refused before its journal is read (it read 20,000 trials
first, 17 s); a folder without a search still says so."""

from __future__ import annotations

import pytest

import nas
from nas.errors import ConfigError, JournalError, NASError
from nas.export import export
from nas.result import SearchResult
from nas.spaces import Choice, Space


def test_a_missing_model_json_is_refused_before_the_journal_is_read(tmp_path, monkeypatch) -> None:
    nas.search(Space(w=Choice([1, 2])), lambda a: {"acc": float(a["w"])}, {"acc": "max"}, budget=2, seed=0,
               workdir=tmp_path / "wd")

    def no_reading(*args, **kwargs):
        raise AssertionError("the journal was read")

    monkeypatch.setattr(SearchResult, "load", no_reading)
    with pytest.raises(ConfigError, match="has no model.json: record"):
        export(tmp_path / "wd", tmp_path / "out")


def test_a_folder_without_a_search_is_still_named_as_such(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NASError) as e:
        export(tmp_path / "empty", tmp_path / "out")
    assert not isinstance(e.value, ConfigError) or "model.json" not in str(e.value)
    assert isinstance(e.value, (ConfigError, JournalError))
