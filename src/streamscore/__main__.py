"""`python -m streamscore …`: the same as the `streamscore` command (e.g. where the script is not on PATH)."""

from streamscore.cli import main

main()
