"""``train --from-backend`` on a DuckDB file another process holds (a running consumer) says what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamscore.errors import BackendError
from streamscore.ops.retrain import read_labeled

HOLD = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


def test_a_locked_duckdb_file_says_to_stop_its_consumer(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    with subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(BackendError) as caught:
                read_labeled(f"duckdb:///{path}")
            assert caught.value.reason == "database-locked" and not caught.value.retriable
            assert "stop the consumer" in caught.value.message
        finally:
            holder.stdin.close()  # the holder reads stdin to its end, then exits
            holder.wait(30)
