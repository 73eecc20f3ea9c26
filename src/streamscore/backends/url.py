"""Backend URLs: parsed once, passwords masked whenever printed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, unquote, urlsplit

from streamscore.errors import ConfigError


@dataclass(frozen=True)
class BackendURL:
    """``scheme://user:password@host:port/database?option=value``; ``repr``/``str`` hide the password."""

    raw: str
    scheme: str
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    path: str
    options: dict[str, str]

    @classmethod
    def parse(cls, raw: str) -> BackendURL:
        if "://" not in raw:
            raise ConfigError(
                f"backend {mask_url(raw)!r} is not a URL; use e.g. duckdb:///path/to.db, "
                "postgresql://user@host:5432/db, oracle://user@host:1521/service or kinetica://host:9191"
            )
        parts = urlsplit(raw)
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"backend URL {mask_url(raw)!r} has an invalid port") from None
        return cls(
            raw=raw,
            scheme=parts.scheme.lower(),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=port,
            path=unquote(parts.path),
            options=dict(parse_qsl(parts.query)),
        )

    def with_options(self, extra: dict[str, str]) -> BackendURL:
        """This URL with more query options (the raw text keeps the original; options win)."""
        return replace(self, options=self.options | extra) if extra else self

    @property
    def database(self) -> str:
        return self.path.lstrip("/")

    def masked(self) -> str:
        return mask_url(self.raw)

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"BackendURL({self.masked()!r})"


def mask_url(raw: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors)."""
    if "://" not in raw:
        return raw
    scheme, rest = raw.split("://", 1)
    netloc, sep, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    return f"{scheme}://{netloc}{sep}{tail}"
