"""structlog, configured once, with every record (ours and stdlib's) masked by
``watcher.core.secrets.MASKER``.

One ``ProcessorFormatter`` renders both structlog events and stdlib records
from apscheduler, apprise and urllib3, so the masking step cannot be bypassed.
Exceptions are turned into text by ``format_exc_info`` *before* masking (no
frame locals ever get rendered).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from watcher.core.secrets import MASKER

QUIET_LOGGERS = {
    "apprise": logging.WARNING,
    "apscheduler": logging.WARNING,
    "urllib3": logging.WARNING,
}


def mask_event(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: every string in the event, nested ones too, through ``MASKER``."""
    for key, value in list(event.items()):
        event[key] = _walk(value)
    return event


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return MASKER.mask(value)
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_walk(v) for v in value]
    if isinstance(value, BaseException):
        return MASKER.mask(f"{type(value).__name__}: {value}")
    return value


_HANDLER_FLAG = "_watcher_handler"


def configure(
    level: str = "INFO",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and stdlib logging; safe to call again (tests, reload)."""
    stream = stream or sys.stderr
    for secret in secrets:
        MASKER.add(secret)
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%SZ", utc=True),  # to the second
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_FLAG, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, logging.getLevelName(level)))
    structlog.configure(
        processors=[  # masked here too, so no other handler on the root logger sees a secret
            *shared,
            structlog.processors.format_exc_info,
            mask_event,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=MaskedBoundLogger,
        cache_logger_on_first_use=False,
    )


class MaskedBoundLogger(structlog.stdlib.BoundLogger):
    """``exception`` as ``error`` with ``exc_info``: the traceback is rendered and masked in
    the chain, never handed raw to stdlib, where any other handler would print it as is."""

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._proxy_to_logger("error", event, *args, **kw)


def reset() -> None:
    """Remove our handler and forget secrets (tests; a process normally configures once)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    MASKER.clear()


def get(name: str) -> Any:
    return structlog.get_logger(name)
