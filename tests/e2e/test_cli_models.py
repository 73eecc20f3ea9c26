"""`streamscore publish-model --role` and `streamscore models …` on the embedded broker, in-process
(typer's runner: the commands are thin, what matters is what they leave on the models topic)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_cli import environment
from typer.testing import CliRunner

from streamscore.cli import app
from streamscore.models import bundled_path
from streamscore.producers.lifecycle import read_topic
from streamscore.shared.config import Settings

pytestmark = pytest.mark.slow


def test_publish_with_roles_list_promote_and_roll_back(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=environment(settings))
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())  # as one line, however the console wrapped it

    run("publish-model", str(bundled_path(1)))
    assert "in force: mlp:v1, shadow v2" in run("publish-model", str(bundled_path(2)), "--role", "shadow")
    listing = run("models", "list", "mlp")
    assert "shadow" in listing and "shadowing" in listing and "champion" in listing and "unsigned" in listing
    assert "consumers switch to mlp:v2" in run("models", "promote", "mlp", "2")
    assert "consumers switch to mlp:v1" in run("models", "rollback", "mlp")
    state = read_topic(settings, "mlp").lifecycle
    assert state.champion == 1 and [(e.version, e.state) for e in state.versions] == [(1, "serving"),
                                                                                        (2, "rolled-back")]
    refused = runner.invoke(app, ["models", "rollback", "mlp"], env=environment(settings))
    assert refused.exit_code != 0 and "no earlier champion" in str(refused.exception or refused.output)
