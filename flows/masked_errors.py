"""Errors leave kdflow's flows and tasks with credentials masked: Prefect logs them and stores their message."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flows.retries import is_transient
from pipelines.stores.credentials import CredentialsMasked, carries_credentials, mask_credentials_in_logs


@contextmanager
def credentials_masked() -> Iterator[None]:
    """Re-raise an error that quotes a credential as CredentialsMasked (same words, masked, same retry verdict)."""
    mask_credentials_in_logs()
    try:
        yield
    except Exception as e:
        if not carries_credentials(e):
            raise
        raise CredentialsMasked.of(e, is_transient(e)) from None  # `from None`: the unmasked error is not printed


def masking_credentials(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # Prefect reads the parameters through __wrapped__
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with credentials_masked():
            return fn(*args, **kwargs)

    return wrapper
