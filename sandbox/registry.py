"""One lookup for every name registry (arms, presets, designs, problem sets, loophole modes)."""
from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, what: str, error: type[Exception] = ValueError) -> T:
    """registry[name], or `error` naming the unknown `what` and every known name."""
    try:
        return registry[name]
    except KeyError:
        raise error(f"unknown {what} {name!r}; choose from: {', '.join(registry)}") from None
