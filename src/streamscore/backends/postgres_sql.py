"""Old import path of the PostgreSQL connection helpers (tests/drill_support.py uses it).

The PostgreSQL backend lives in :mod:`streamscore.backends.postgres`; import from
``streamscore.backends.postgres.statements``. This module goes once no caller is left.
"""

from streamscore.backends.postgres.statements import conninfo, set_search_path

__all__ = ["conninfo", "set_search_path"]
