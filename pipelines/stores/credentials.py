"""Credentials never leave the process in words: masked in error messages and in every log record.

`redact` (pipelines/tracking/runs.py) cleans one URI. Errors from MLflow, SQLAlchemy or requests quote the whole
URL they failed on, and Prefect stores a failed run's message in its database, so the text of every error
and log line that crosses a boundary goes through `mask_credentials` first.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from urllib.parse import parse_qsl, unquote, urlsplit

from pipelines.tracking.runs import redact

# Where kdflow reads store URIs from the environment (a `--set` password is moved into the first two).
URI_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "KDFLOW_OPTUNA_STORAGE",
    "PREFECT_API_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_KEYS = {"password", "passwd", "pwd", "token", "secret"}
_MIN_SECRET = 4  # shorter strings would mask ordinary words


def uri_secrets(uri: str | None) -> set[str]:
    """The password and secret query values a URI carries, as written and URL-decoded."""
    if not uri or "://" not in uri:
        return set()
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:  # a malformed port: still look for the password by hand
        parts, password = None, None
    found = {password} if password else set()
    if parts is None and "@" in uri:
        userinfo = uri.split("://", 1)[1].rsplit("@", 1)[0]
        found |= {userinfo.split(":", 1)[1]} if ":" in userinfo else set()
    query = parts.query if parts is not None else uri.partition("?")[2]
    found |= {v for k, v in parse_qsl(query) if k.lower() in _SECRET_KEYS}
    found |= {unquote(s) for s in found}
    return {s for s in found if len(s) >= _MIN_SECRET}


def known_secrets(*uris: str | None) -> set[str]:
    return set().union(*(uri_secrets(u) for u in (*uris, *(os.environ.get(v) for v in URI_VARIABLES))))


def mask_credentials(text: str, *uris: str | None) -> str:
    """Every URI in `text` redacted, and every password known from `uris` or the environment replaced by ***."""
    text = _URI.sub(lambda m: redact(m.group(0)), text)
    for secret in sorted(known_secrets(*uris), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class CredentialsMasked(RuntimeError):
    """An error whose message quoted a credential: the same words, masked, and whether a retry may help."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient

    @classmethod
    def of(cls, error: BaseException, transient: bool) -> CredentialsMasked:
        return cls(f"{type(error).__name__}: {mask_credentials(str(error))}", transient)


def carries_credentials(error: BaseException) -> bool:
    """True if the error or any error it was raised from quotes a credential."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if mask_credentials(str(e)) != str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def mask_credentials_in_logs() -> None:
    """Mask credentials in every log record this process creates, whichever library logs it (idempotent)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_credentials", False):
        return

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        clean = mask_credentials(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and carries_credentials(record.exc_info[1]):
            record.exc_text = mask_credentials("".join(traceback.format_exception(*record.exc_info)).rstrip())
        return record

    masked_record.masks_credentials = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)
