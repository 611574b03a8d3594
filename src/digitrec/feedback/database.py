"""A PostgreSQL database named by a URL (`--database postgresql://...`): the driver, psycopg 3,
imported only when one is given (the `postgres` extra), the URL as shown without its password,
and psycopg's errors on one line."""

from __future__ import annotations

from typing import Any

from digitrec.errors import DigitrecError


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise DigitrecError(
            "a PostgreSQL database needs the psycopg driver: pip install 'digitrec[postgres]'"
        ) from None
    return psycopg


def is_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def shown_url(url: str) -> str:
    """The URL without its password (for messages and logs); a DigitrecError naming what is
    wrong when it is not a PostgreSQL URL libpq can read."""
    if not is_url(url):
        scheme = url.partition("://")[0] if "://" in url else url[:20]
        raise DigitrecError(
            f"--database: not a PostgreSQL URL ({scheme!r}): expected postgresql://USER:PASSWORD"
            "@HOST:PORT/DATABASE"
        )
    psycopg = _psycopg()
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as e:
        raise DigitrecError(f"--database: not a valid PostgreSQL URL: {_reason(e)}") from None
    port = str(parts.get("port") or "5432")
    if not all(p.isdigit() for p in port.split(",")):
        raise DigitrecError(f"--database: the port is not a number: {port!r}")
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{parts.get('host') or 'localhost'}:{port}/{parts.get('dbname', '')}"


def _reason(e: BaseException) -> str:
    """psycopg's message on one line (libpq's run over several), without its prefix."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else type(e).__name__
    return text.removeprefix("connection failed: ")
