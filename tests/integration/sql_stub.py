"""A SQL "server" for tests, without a server: SQLAlchemy's SQLite dialect behind a network
driver's manners.

``sqlite+netcheck://USER:PASSWORD@HOST:PORT//abs/path.db`` opens the SQLite file ``/abs/path.db``
like any SQLAlchemy source, but first behaves as a driver of a database server does:

* with a port, it opens a real TCP connection to HOST:PORT and fails as drivers do
  (``OperationalError: connection refused``) when nothing listens there;
* it refuses any password but :data:`PASSWORD` (``OperationalError: password authentication
  failed``).

No Python driver of a networked database is installed in the test environment, and none may
be downloaded at run time: this is how the tests put a password-protected, unreachable or
reachable "server" behind a real SQLAlchemy engine.
"""

from __future__ import annotations

import socket
import sqlite3

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

PASSWORD = "s3cret-pw"


class NetcheckDialect(SQLiteDialect_pysqlite):
    driver = "netcheck"
    supports_statement_cache = True

    def create_connect_args(self, url):
        self._netcheck = (url.host, url.port, url.password)
        return ([url.database], {})

    def connect(self, *cargs, **cparams):
        host, port, password = self._netcheck
        if port:
            try:
                socket.create_connection((host, port), timeout=2).close()
            except OSError as exc:
                raise sqlite3.OperationalError(
                    f'connection to server at "{host}", port {port} failed: {exc.strerror or exc}') from exc
        if password != PASSWORD:
            raise sqlite3.OperationalError("password authentication failed for the user")
        return super().connect(*cargs, **cparams)


def register() -> None:
    registry.register("sqlite.netcheck", __name__, "NetcheckDialect")


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
