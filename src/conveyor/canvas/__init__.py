"""Workflows (Celery's canvas): signatures, ``chain``, ``group``, ``chord`` and callbacks, with
completion tracked in the broker in the same atomic step as each task's outcome
(docs/workflows.md).

- signature.py: ``Signature`` (a task call as a JSON dict), ``signature()``, and the
  workflows made of signatures: ``chain``, ``group``, ``chord``;
- jobs.py: a signature -> the job the broker stores;
- run.py: starting a workflow (producer); eager.py: running one here (``apply``, eager mode);
- continuations.py: what a worker settles with a step's outcome (the next step, callbacks,
  a chord header's join), and a chord body's results.
"""

from .signature import Chain, Chord, Group, Signature, chain, chord, group, maybe_signature, signature

__all__ = ["Chain", "Chord", "Group", "Signature", "chain", "chord", "group", "maybe_signature", "signature"]
