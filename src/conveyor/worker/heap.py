"""Freezing the start-up heap: no pause of 10-20 ms a few seconds after a worker starts.

A worker process holds some 40,000 objects once the app and its libraries are imported, and
nearly all of them live as long as the process. Python's cyclic garbage collector walks every
one of them at each full collection; the first comes after some 70,000 allocations, which a
worker reaches a few seconds into its first tasks (at 500 tasks a second, about 1,400 tasks
in). On the benchmark's machine that walk held each worker process for 11-18 ms: some twenty
tasks offered meanwhile waited up to 15 ms, all of a worker's 99th-percentile latency
(docs/benchmarks.md). ``gc.freeze()`` moves every object alive at that moment out of the
collector's reach, so full collections walk only what the worker created since: the tasks'
own objects, well under a millisecond.

A collection just before the freeze frees the start-up garbage first, so none of it is kept
for good. The freeze costs nothing later: a frozen object is still freed as soon as nothing
refers to it; only a reference cycle made entirely of start-up objects and dropped later would
never be freed (unlike the collector's pass, which would find it).

Only processes Conveyor owns freeze: the ``conveyor worker`` command's processes (a supervisor
freezes before it forks its worker processes, which then share those pages with it: a full
collection no longer writes to every object's header, which would copy each page into every
child) and the ``-P processes`` children, which freeze what they inherited from a worker that
froze its own (the command's), or collect and freeze what they inherited or, started with
``spawn``, imported. A worker embedded in an application's own process leaves that
application's collector alone.

One thing changes for code in a frozen process: ``gc.get_objects()`` and ``gc.get_referrers()``
no longer list frozen objects (a leak hunt with objgraph in a worker: ``gc.unfreeze()`` first).
"""

from __future__ import annotations

import gc


def freeze_heap(collect: bool = True) -> None:
    """Collect the garbage there is, then freeze everything left (see the module doc).

    ``collect=False`` in a child forked from a process that froze its own heap: a collection
    would walk (and so copy) every page it shares with its parent, for the little garbage the
    parent made since its freeze."""
    if collect:
        gc.collect()
    gc.freeze()
