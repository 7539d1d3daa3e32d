"""Secrets in a workspace: ``${VAR}`` references, the workspace's ``.env``, literal passwords in
URLs, and redaction for display.

modelcycle.yaml is committed to git, so it must not hold a password. A URL-valued field may
instead refer to environment variables::

    source:
      url: postgresql+psycopg://analyst:${MODELCYCLE_SOURCE_PASSWORD}@db.example.com/sales

A reference is resolved when the workspace is loaded, from the process environment first, then
from ``.env`` in the workspace root (``KEY=VALUE`` lines, git-ignored, mode 0600). The value is
inserted as it is: write a password the way it appears in a URL (percent-encoded where it holds
``@``, ``/``, ``:`` ...).

The fields that may hold references are :data:`REFERENCE_FIELDS`; ``${...}`` anywhere else is
kept as written. Nothing here imports above the config layer.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from modelcycle.atomic import write_atomic
from modelcycle.errors import ConfigError

log = logging.getLogger(__name__)

ENV_FILE = ".env"

#: The fields of modelcycle.yaml whose ``${VAR}`` references are resolved (dotted names; a list
#: field resolves each of its items).
REFERENCE_FIELDS: tuple[str, ...] = (
    "source.url",
    "backends.mlflow_tracking_uri",
    "backends.mlflow_registry_uri",
    "backends.mlflow_artifacts",
    "backends.prefect_api_url",
    "backends.dvc_remote",
    "notify.urls",
)

#: The variable ``modelcycle init`` moves a source URL's password to.
SOURCE_PASSWORD_VAR = "MODELCYCLE_SOURCE_PASSWORD"

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# scheme://user:password@ -- the user holds no ':', '/', '@' or blank; the password no '@' or
# blank (SQLAlchemy accepts a raw '/' in it, so '/' is allowed, see _is_port_and_path)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<password>[^\s@]*)@")


def _is_port_and_path(password: str) -> bool:
    """``http://host:5000/a@b``: what looks like a password is a port and a path."""
    return "/" in password and password.split("/", 1)[0].isdigit()


def _is_reference_only(password: str) -> bool:
    return _REF.sub("", password) == ""


# ---------------------------------------------------------------------------------------------
# display
# ---------------------------------------------------------------------------------------------

def redact(text: str | None) -> str:
    """``text`` with the password of every URL in it replaced by ``***``:
    ``postgresql://u:secret@host/db`` -> ``postgresql://u:***@host/db``. A password that is a
    ``${VAR}`` reference is kept (it names the variable, not the secret). Works on any text (an
    error message holding URLs, too); ``None`` becomes ``""``."""
    if not text:
        return ""

    def sub(m: re.Match[str]) -> str:
        password = m.group("password")
        if not password or _is_reference_only(password) or _is_port_and_path(password):
            return m.group(0)
        return f"{m.group('head')}:***@"

    return _USERINFO.sub(sub, str(text))


def url_password(url: str) -> str | None:
    """The literal password in ``url`` (``user:password@``), or None when it has none or the
    password is a ``${VAR}`` reference."""
    for m in _USERINFO.finditer(url):
        password = m.group("password")
        if password and not _is_reference_only(password) and not _is_port_and_path(password):
            return password
    return None


def move_password(url: str, variable: str = SOURCE_PASSWORD_VAR) -> tuple[str, str | None]:
    """Split a URL's literal password off: ``("scheme://u:${VARIABLE}@host/db", "secret")``, or
    ``(url, None)`` when the URL holds no literal password."""
    for m in _USERINFO.finditer(url):
        password = m.group("password")
        if password and not _is_reference_only(password) and not _is_port_and_path(password):
            return url[:m.start()] + f"{m.group('head')}:${{{variable}}}@" + url[m.end():], password
    return url, None


# ---------------------------------------------------------------------------------------------
# literal secrets (before a file is written or committed)
# ---------------------------------------------------------------------------------------------

def _strings(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _strings(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            yield from _strings(value, f"{prefix}.{i}" if prefix else str(i))
    elif isinstance(data, str):
        yield prefix, data


def find_literal_secrets(data: Mapping[str, Any]) -> list[str]:
    """The dotted names of the fields of parsed YAML ``data`` whose value holds a URL with a
    literal password (``user:password@`` where the password is not a ``${VAR}`` reference), in
    document order; list items are named by index (``notify.urls.0``). Empty when none."""
    return [field for field, value in _strings(data) if url_password(value) is not None]


def literal_secrets(path: str | os.PathLike[str]) -> list[str]:
    """The fields of the YAML file ``path`` (modelcycle.yaml, params.yaml, ...) that hold a URL
    with a literal password, as dotted names such as ``["source.url", "notify.urls.0"]``; an
    empty list when the file is safe to commit. The file's raw text is read: ``${VAR}``
    references are not resolved, and a password given as one is not reported.

    Call it before committing such a file and refuse when the list is not empty (see
    :func:`literal_secrets_error` for the error to raise). Raises ConfigError when the file is
    missing, unreadable or not YAML."""
    from modelcycle.config.load import read_yaml

    return find_literal_secrets(read_yaml(Path(path)))


def literal_secrets_error(path: str | os.PathLike[str], fields: list[str]) -> ConfigError:
    """The error for a file whose ``fields`` hold literal passwords (from :func:`literal_secrets`)."""
    names = ", ".join(fields)
    return ConfigError(
        f"{path} holds a password in {names}; it would be written into git",
        f"write the password as a reference, e.g. user:${{{SOURCE_PASSWORD_VAR}}}@host, and put "
        f"{SOURCE_PASSWORD_VAR}=the-password in {Path(path).parent / ENV_FILE} (git-ignored, mode 0600) "
        "or in the environment")


# ---------------------------------------------------------------------------------------------
# .env
# ---------------------------------------------------------------------------------------------

def _unquote(raw: str, path: Path, lineno: int) -> str:
    raw = raw.strip()
    if raw[:1] == '"':
        out, i = [], 1
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                i += 2
                continue
            if ch == '"':
                rest = raw[i + 1:].strip()
                if rest and not rest.startswith("#"):
                    break
                return "".join(out)
            out.append(ch)
            i += 1
        raise ConfigError(f"{path}, line {lineno}: the double-quoted value is not closed properly",
                          'write KEY="value" (\\" for a quote inside) or KEY=value')
    if raw[:1] == "'":
        end = raw.find("'", 1)
        rest = raw[end + 1:].strip() if end > 0 else "x"
        if end < 0 or (rest and not rest.startswith("#")):
            raise ConfigError(f"{path}, line {lineno}: the single-quoted value is not closed properly",
                              "write KEY='value' or KEY=value")
        return raw[1:end]
    comment = re.search(r"\s#", raw)
    return (raw[:comment.start()] if comment else raw).strip()


def parse_env(text: str, path: str | os.PathLike[str] = ENV_FILE) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``# comments`` skipped, ``export KEY=VALUE`` and
    quoted values accepted). A line that is none of these is a ConfigError naming the file and
    the line number (never the line's text: it may hold a secret)."""
    where = Path(path)
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, eq, value = stripped.partition("=")
        key = key.strip()
        if not eq or not _NAME.match(key):
            raise ConfigError(f"{where}, line {lineno}: not a KEY=VALUE line",
                              "each line of a .env file is NAME=value (letters, digits and _ in the "
                              "name), a blank line or a # comment")
        out[key] = _unquote(value, where, lineno)
    return out


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of a ``.env`` file ({} when it does not exist). A file that others may read
    is tightened to 0600 on the way."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            if tighten(p, 0o600, fd=fh.fileno()):
                log.warning("%s could be read by other users; its mode is now 0600", p)
            text = fh.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}", "check the file's permissions") from exc
    return parse_env(text, p)


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[A-Za-z0-9_.,:/@%+=~^\-]+", value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_env_values(path: str | os.PathLike[str], values: Mapping[str, str]) -> None:
    """Set ``values`` in the ``.env`` file ``path`` (created with mode 0600; other lines kept,
    a variable already there replaced in place). The file is never readable by others, not even
    for a moment: it is written to a 0600 temporary file and moved over."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    parse_env("\n".join(lines), p)  # refuse to rewrite a file we cannot read back
    pending = dict(values)
    out: list[str] = []
    for line in lines:
        stripped = line.strip().removeprefix("export ").lstrip()
        key = stripped.partition("=")[0].strip()
        if not stripped.startswith("#") and key in pending:
            out.append(f"{key}={_quote(pending.pop(key))}")
        else:
            out.append(line)
    out.extend(f"{key}={_quote(value)}" for key, value in pending.items())
    write_atomic(p, "\n".join(out) + "\n", mode=0o600)


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------

def _field(data: Mapping[str, Any], dotted: str) -> tuple[Mapping[str, Any] | None, str]:
    *parents, leaf = dotted.split(".")
    current: Any = data
    for part in parents:
        current = current.get(part) if isinstance(current, Mapping) else None
    return (current if isinstance(current, Mapping) else None), leaf


def references(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The variables each field of :data:`REFERENCE_FIELDS` refers to, e.g.
    ``{"source.url": ["MODELCYCLE_SOURCE_PASSWORD"]}`` (fields without references left out)."""
    out: dict[str, list[str]] = {}
    for dotted in REFERENCE_FIELDS:
        parent, leaf = _field(data, dotted)
        value = parent.get(leaf) if parent is not None else None
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, str) and (names := _REF.findall(item)):
                out[dotted if not isinstance(value, list) else f"{dotted}.{i}"] = names
    return out


def resolve_references(data: Mapping[str, Any], *, config_file: str | os.PathLike[str],
                       environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A copy of the parsed modelcycle.yaml ``data`` with the ``${VAR}`` references of
    :data:`REFERENCE_FIELDS` replaced by their values: from ``environ`` (default: the process
    environment) first, then from ``.env`` beside ``config_file`` (read only when a reference
    needs it). An unset variable is a ConfigError naming the file, the field, the variable and
    where to set it. ``data`` is not changed."""
    found = references(data)
    if not found:
        return dict(data)
    import copy

    env = os.environ if environ is None else environ
    path = Path(config_file)
    env_path = path.parent / ENV_FILE
    dotenv: dict[str, str] | None = None
    out = copy.deepcopy(dict(data))

    def value_of(name: str, field: str) -> str:
        nonlocal dotenv
        if name in env:
            return env[name]
        if dotenv is None:
            dotenv = read_env_file(env_path)
        if name in dotenv:
            return dotenv[name]
        raise ConfigError(
            f"{path}: {field} refers to ${{{name}}}, which is not set",
            f"set {name} in the environment, or add a line {name}=... to {env_path} "
            "(that file is git-ignored and should stay mode 0600)")

    for dotted in REFERENCE_FIELDS:
        parent, leaf = _field(out, dotted)
        if parent is None or leaf not in parent:
            continue
        value = parent[leaf]
        if isinstance(value, str):
            parent[leaf] = _substitute(value, dotted, value_of)  # type: ignore[index]
        elif isinstance(value, list):
            parent[leaf] = [_substitute(v, f"{dotted}.{i}", value_of) if isinstance(v, str) else v  # type: ignore[index]
                            for i, v in enumerate(value)]
    return out


# ---------------------------------------------------------------------------------------------
# file modes
# ---------------------------------------------------------------------------------------------

def tighten(path: str | os.PathLike[str], mode: int, *, fd: int | None = None) -> bool:
    """Remove the permission bits of ``path`` that ``mode`` does not allow (e.g. 0o700 for a
    folder, 0o600 for a file); one stat when nothing is to change. Returns True when it changed
    them; False when they were tight already, the path does not exist, or it is not ours."""
    try:
        current = stat.S_IMODE(os.fstat(fd).st_mode if fd is not None else os.stat(path).st_mode)
    except FileNotFoundError:
        return False
    if not current & ~mode:
        return False
    try:
        if fd is not None:
            os.fchmod(fd, current & mode)
        else:
            os.chmod(path, current & mode)
    except PermissionError:
        return False
    return True


def _substitute(text: str, field: str, value_of: Callable[[str, str], str]) -> str:
    """``text`` with each ``${NAME}`` replaced by ``value_of(NAME, field)``."""
    return _REF.sub(lambda m: value_of(m.group(1), field), text)
