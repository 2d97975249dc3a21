"""Incrementing-ID ranges: the partitions of a usage section.

Range ``i`` of a section with span ``S`` holds keys ``i*S .. (i+1)*S - 1``. Its partition key is
both bounds zero-padded to 32 digits (the longest key Planhat accepts), so keys sort in key
order as plain strings, e.g. ``00000000000000000000000001000000-00000000000000000000000001999999``.
"""

from __future__ import annotations

from dataclasses import dataclass

from planhat_pipelines.warehouses.base import KEY_DIGITS, KEY_LIMIT

#: The largest valid usage key (32 digits).
MAX_KEY = KEY_LIMIT - 1


@dataclass(frozen=True, order=True)
class KeyRangeSpan:
    """An inclusive key range ``[start, end]`` that is one partition."""

    start: int
    end: int

    @property
    def partition_key(self) -> str:
        return f"{self.start:0{KEY_DIGITS}d}-{self.end:0{KEY_DIGITS}d}"

    @classmethod
    def parse(cls, partition_key: str) -> KeyRangeSpan:
        """The range a partition key names; ValueError if it is not one."""
        start, sep, end = partition_key.partition("-")
        if not sep or len(start) != KEY_DIGITS or len(end) != KEY_DIGITS or not (start + end).isdigit():
            raise ValueError(
                f"'{partition_key}' is not a usage range partition key: expected two {KEY_DIGITS}-digit "
                "numbers joined by '-'"
            )
        span = cls(int(start), int(end))
        if span.end < span.start:
            raise ValueError(f"'{partition_key}' ends before it starts")
        return span


def span_at(start: int, span: int) -> KeyRangeSpan:
    """The range of width ``span`` that starts at ``start`` (a multiple of ``span``)."""
    return KeyRangeSpan(start, min(start + span - 1, MAX_KEY))


def range_of(key: int, span: int) -> KeyRangeSpan:
    """The range of width ``span`` that holds ``key``."""
    return span_at(key - key % span, span)


#: The most ranges :func:`ranges_between` builds: planning from real data goes through
#: ``Warehouse.occupied_ranges``, which is bounded by the ranges that hold rows.
MAX_LISTED_RANGES = 100_000


def ranges_between(first_key: int, last_key: int, span: int) -> list[KeyRangeSpan]:
    """Every range from the one holding ``first_key`` to the one holding ``last_key`` (a dense, bounded list).

    Raises:
        ValueError: more than :data:`MAX_LISTED_RANGES` ranges would be listed.
    """
    if last_key < first_key:
        return []
    first, last = first_key // span, last_key // span
    if last - first + 1 > MAX_LISTED_RANGES:
        raise ValueError(
            f"keys {first_key}..{last_key} span {last - first + 1:,} ranges of {span:,} keys, more than "
            f"{MAX_LISTED_RANGES:,}: plan from the keys that exist (Warehouse.occupied_ranges) instead"
        )
    return [span_at(i * span, span) for i in range(first, last + 1)]
