"""The CLI's entry point: commands run with a raised young-generation GC threshold, restored afterwards."""

from __future__ import annotations

import argparse
import gc

import pytest

from flows import cli


def test_a_command_runs_with_the_raised_gc_threshold_which_is_restored_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []

    def publish(args: argparse.Namespace) -> None:
        seen.append(gc.get_threshold()[0])

    monkeypatch.setattr(cli, "cmd_publish", publish)
    before = gc.get_threshold()
    assert before[0] != cli.GC_YOUNG_THRESHOLD
    cli.main(["publish", "--lake", "unused"])
    assert seen == [cli.GC_YOUNG_THRESHOLD] and gc.get_threshold() == before
    with pytest.raises(SystemExit):  # bad input exits 2, the threshold is still restored
        cli.main(["publish", "--no-such-option"])
    assert gc.get_threshold() == before
