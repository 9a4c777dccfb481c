"""Ray executor settings (session 38): a malformed `address` is a ConfigError naming it before anything is journaled
(Ray's "Invalid address format" came after the journal header, and the CLI printed a traceback)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.spaces import Choice, Space
from tests.test_cli import TOY, one_error_line, write

ray_executor = pytest.importorskip("nas.ray.executor")


@pytest.mark.parametrize("address", ["nohost", "host:0", "host:99999", "http://head:6379", ""])
def test_a_malformed_address_is_refused_naming_it(tmp_path, address):
    with pytest.raises(ConfigError, match=rf"^address: expected None .*got {address!r}$"):
        nas.search(Space(a=Choice([1, 2])), lambda a: {"y": float(a["a"])}, {"y": "max"}, budget=2,
                   executor={"name": "ray", "address": address}, workdir=tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("address", ["auto", "local", "10.0.0.5:6379", "head-1.cluster:6379", "ray://head:10001",
                                     "[::1]:6379"])
def test_addresses_ray_parses_are_taken(address):
    assert ray_executor.RayOptions(address).address == address


def test_the_cli_names_the_address_flag_in_one_line(tmp_path):
    script = write(tmp_path / "search.py", TOY)
    result = CliRunner().invoke(app, ["run", str(script), "--budget", "2", "--workdir", str(tmp_path / "wd"),
                                      "--executor", "ray", "--address", "nohost"])
    assert "'nohost'" in one_error_line(result) and not (tmp_path / "wd").exists()
