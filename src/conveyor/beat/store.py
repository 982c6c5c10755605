"""Where beat keeps everything: a handful of key/value keys in the broker.

Key schema (all through the broker's atomic ``kv_*`` primitives, so it works the same on the
memory, SQLite and Redis brokers and across machines)::

    beat:entry:<name>           Entry JSON: the definition, enabled, source        (no expiry)
    beat:state:<name>           EntryState JSON: cursor, runs, last run, error      (no expiry)
    beat:slot:<name>:<slot ms>  slot claim: {"owner", "state": pending|done|failed} (expires)
    beat:leader                 leader lease: {"owner", "host", "pid", "since"}     (expires)
    beat:version                counter bumped on every edit; schedulers poll it     (no expiry)

Definition and state live in separate keys because different writers own them: people (API,
CLI, the declaration sync) edit the entry, schedulers advance the state.  Each key is updated
by compare-and-set on its exact previous bytes, so concurrent writers never lose an update.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..brokers import Broker
from .entry import Entry, EntryError, EntryState

ENTRY_PREFIX = "beat:entry:"
STATE_PREFIX = "beat:state:"
SLOT_PREFIX = "beat:slot:"
LEADER_KEY = "beat:leader"
VERSION_KEY = "beat:version"


def slot_key(name: str, slot: float) -> str:
    """``beat:slot:poll:1700000002000`` -- slots are whole milliseconds, so this is exact."""
    return f"{SLOT_PREFIX}{name}:{round(slot * 1000)}"


@dataclass(frozen=True, slots=True)
class Stored:
    """An entry and its state as read, with the raw bytes needed to compare-and-set them."""

    entry: Entry
    entry_raw: bytes
    state: EntryState | None
    state_raw: bytes | None

    @property
    def live_state(self) -> EntryState | None:
        """The state if it belongs to this incarnation of the entry (not a removed namesake)."""
        state = self.state
        return state if state is not None and state.entry_id == self.entry.id else None


class ScheduleStore:
    """Reads and compare-and-sets entries and their state.

    >>> store = ScheduleStore(app.broker)          # doctest: +SKIP
    >>> sorted(store.load())                       # doctest: +SKIP
    ['poll-aircraft', 'weekly-vacuum']
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    # -- reading -----------------------------------------------------------------------------
    def get(self, name: str) -> Stored | None:
        """One entry with its state; None if absent.  Raises EntryError if it is unreadable."""
        raw = self.broker.kv_get(ENTRY_PREFIX + name)
        if raw is None:
            return None
        state = self.broker.kv_get(STATE_PREFIX + name)
        state_raw = state.value if state is not None else None
        parsed = EntryState.from_json(state_raw) if state_raw is not None else None
        return Stored(Entry.from_json(raw.value), raw.value, parsed, state_raw)

    def load(self) -> dict[str, Stored]:
        """Every readable entry with its state (two scans).  Unreadable ones are left out;
        :meth:`broken` names them."""
        states = self.broker.kv_scan(STATE_PREFIX)
        out: dict[str, Stored] = {}
        for key, kv in self.broker.kv_scan(ENTRY_PREFIX).items():
            name = key[len(ENTRY_PREFIX) :]
            try:
                entry = Entry.from_json(kv.value)
            except EntryError:
                continue
            state_kv = states.get(STATE_PREFIX + name)
            state_raw = state_kv.value if state_kv is not None else None
            parsed = EntryState.from_json(state_raw) if state_raw is not None else None
            out[name] = Stored(entry, kv.value, parsed, state_raw)
        return out

    def broken(self) -> dict[str, str]:
        """Stored entries that cannot be read (e.g. written by a newer version): name -> why."""
        out: dict[str, str] = {}
        for key, kv in self.broker.kv_scan(ENTRY_PREFIX).items():
            try:
                Entry.from_json(kv.value)
            except EntryError as exc:
                out[key[len(ENTRY_PREFIX) :]] = str(exc)
        return out

    # -- writing -----------------------------------------------------------------------------
    def put_entry(self, entry: Entry, expected: bytes | None) -> bool:
        """Write ``entry`` if the stored bytes are still ``expected`` (None: create only)."""
        ok = self.broker.kv_compare_and_set(ENTRY_PREFIX + entry.name, expected, entry.to_json())
        if ok:
            self.bump_version()
        return ok

    def delete_entry(self, name: str, expected: bytes) -> bool:
        """Delete an entry (and its state) if it is still ``expected``."""
        if not self.broker.kv_compare_and_set(ENTRY_PREFIX + name, expected, None):
            return False
        self._delete_state(name)
        self.bump_version()
        return True

    def _delete_state(self, name: str) -> None:
        for _ in range(10):
            current = self.broker.kv_get(STATE_PREFIX + name)
            if current is None or self.broker.kv_compare_and_set(STATE_PREFIX + name, current.value, None):
                return

    def put_state(self, name: str, state: EntryState, expected: bytes | None) -> bool:
        """Compare-and-set an entry's state on its exact previous bytes."""
        return self.broker.kv_compare_and_set(STATE_PREFIX + name, expected, state.to_json())

    # -- change notification -----------------------------------------------------------------
    def bump_version(self) -> int:
        """Tell running schedulers that the entry set changed (they poll :meth:`version`)."""
        return self.broker.kv_incr(VERSION_KEY)

    def version(self) -> int:
        kv = self.broker.kv_get(VERSION_KEY)
        return int(kv.value) if kv is not None else 0
