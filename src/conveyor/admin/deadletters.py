"""Dead letters, filtered and paged without ever loading the whole set.

Brokers list dead letters newest first by offset and know nothing of task names (they never
decode a message), so a filter is applied here, on broker pages of ``SCAN_PAGE`` letters. A
filtered page's ``offset``/``next_offset`` are positions in the broker's unfiltered list, so
paging on stays cheap and stable.

The bulk actions (retry or delete all letters matching a filter) walk the list the same way,
acting on each broker page before reading the next; the letters they remove shift the rest
forward, which the walk accounts for. A letter that dies while the walk runs lands at the front
(newest first) and is not part of it, like a row inserted behind a cursor.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..brokers import BrokerAdmin
from .parse import dead_letter_info
from .records import DeadLetterInfo, Page

SCAN_PAGE = 500  # letters read from the broker per round trip


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters: ``queue`` (exact), ``task`` (a name or a glob, ``proj.tasks.*``),
    ``search`` (a case-insensitive substring of the id, task name, arguments or reason)."""

    queue: str | None = None
    task: str | None = None
    search: str | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.queue, self.task, self.search))

    def matches(self, letter: DeadLetterInfo) -> bool:
        if self.queue is not None and letter.queue != self.queue:
            return False
        if self.task is not None and not fnmatch.fnmatchcase(letter.task, self.task):
            return False
        if self.search is not None:
            needle = self.search.lower()
            haystack = (letter.id, letter.task, letter.args, letter.reason)
            return any(needle in text.lower() for text in haystack)
        return True


def page(broker: BrokerAdmin, offset: int, limit: int, where: DeadFilter) -> Page[DeadLetterInfo]:
    """A page of dead letters matching ``where``, newest first."""
    if not where:
        letters = [dead_letter_info(d) for d in broker.dead_letters(limit=limit, offset=offset)]
        total = broker.dead_letter_count()
        end = offset + len(letters)
        return Page(tuple(letters), offset, limit, end if end < total else None, total)
    found: list[DeadLetterInfo] = []
    for position, letter in _scan(broker, offset):
        if where.matches(letter):
            found.append(letter)
            if len(found) == limit:
                return Page(tuple(found), offset, limit, position + 1)
    return Page(tuple(found), offset, limit, None)


def _scan(broker: BrokerAdmin, offset: int) -> Iterator[tuple[int, DeadLetterInfo]]:
    position = offset
    while True:
        chunk = broker.dead_letters(limit=SCAN_PAGE, offset=position)
        for i, letter in enumerate(chunk):
            yield position + i, dead_letter_info(letter)
        if len(chunk) < SCAN_PAGE:
            return
        position += len(chunk)


def act_on_matching(broker: BrokerAdmin, where: DeadFilter, action: Callable[[Sequence[str]], int]) -> int:
    """Apply ``action`` (requeue or delete, which both remove the letter) to every letter that
    matches, one broker page at a time. Returns the sum of what ``action`` returned."""
    done = position = 0
    while True:
        chunk = broker.dead_letters(limit=SCAN_PAGE, offset=position)
        ids = [d.id for d in chunk if where.matches(dead_letter_info(d))]
        if ids:
            done += action(ids)
        if len(chunk) < SCAN_PAGE:
            return done
        position += len(chunk) - len(ids)  # the ids acted on left the list
