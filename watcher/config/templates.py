"""Message templates with a formatter that cannot reach attributes or items.

``str.format`` would let ``{value.__class__}`` walk into the interpreter; this
formatter accepts only bare names from a fixed set, so a template can only
place values, never explore them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

MAX_WIDTH = 100
_NUMBERS = re.compile(r"\d+")
PLACEHOLDERS = ("value", "threshold", "rule", "currency", "severity", "state", "since", "when")


class TemplateError(ValueError):
    """A template that names something it may not, or cannot be rendered."""


class SafeFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        if not field_name or any(c in field_name for c in ".[]"):
            raise TemplateError(
                f"'{{{field_name}}}' is not allowed: use a bare name such as {{value}}"
            )
        if field_name not in PLACEHOLDERS:
            raise TemplateError(
                f"unknown placeholder '{{{field_name}}}' (known: {', '.join(PLACEHOLDERS)})"
            )
        return kwargs[field_name], field_name

    def format_field(self, value: Any, format_spec: str) -> Any:
        """Widths and precisions are bounded: ``{value:>2147483647}`` would render 2 GB."""
        for number in _NUMBERS.findall(format_spec):
            if int(number) > MAX_WIDTH:
                raise TemplateError(
                    f"width or precision {int(number)} in '{{...:{format_spec}}}' is above "
                    f"{MAX_WIDTH}"
                )
        return super().format_field(value, format_spec)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            raise TemplateError("conversions such as !r are not allowed in templates")
        return value


_FORMATTER = SafeFormatter()


def render(template: str, values: Mapping[str, Any]) -> str:
    """Render ``template``; any failure becomes a ``TemplateError`` with a reason."""
    try:
        for _, _, spec, _ in _FORMATTER.parse(template):
            if spec and "{" in spec:
                raise TemplateError("placeholders inside a format spec are not allowed")
        return _FORMATTER.vformat(template, (), dict(values))
    except TemplateError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise TemplateError(f"cannot render the message: {exc}") from None
