"""`connector up` options: the one-process layout is the default, `--workers` needs
`--separate-roles` (decision 0016)."""

from __future__ import annotations

import pytest

from connector.cli import EXIT_CONFIG, _parser, main


def test_one_process_is_the_default_and_separate_roles_is_an_option() -> None:
    assert _parser().parse_args(["up"]).separate_roles is False
    args = _parser().parse_args(["up", "--separate-roles", "--workers", "3"])
    assert args.separate_roles is True
    assert args.workers == 3


def test_workers_without_separate_roles_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--workers", "2"]) == EXIT_CONFIG
    assert "--workers needs --separate-roles" in capsys.readouterr().err
