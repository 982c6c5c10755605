"""Every Redis key the broker uses, in one place.

All keys of one app live under ``{<prefix>}:`` (``?prefix=`` in the broker URL, default
``conveyor``), so several apps can share one Redis and ``SCAN MATCH {conveyor}:*`` finds
everything one app stores.

Why one hash tag for the whole app, not one per queue: Redis Cluster only runs a script or a
MULTI whose keys all hash to the same slot, and the braces make ``prefix`` the only part of a
key that is hashed. Our atomic steps span queues and jobs: a fetch leases from several queues
at once, a settle batch acks jobs of any queue, and the job store (one hash per field) is shared
by all queues. With per-queue tags those steps would stop being atomic, which is a redesign;
with one tag every script stays legal in a cluster, and an app's broker lives on one shard.
One Redis primary sustains several hundred thousand script-driven job steps a second, far
beyond one app's needs; several apps (prefixes) spread over the shards of a cluster.

Layout (``P`` is ``{prefix}``; *id* a task id, *q* a queue name, *n* a priority 0..9, *owner*
a worker's lease name):

====================  ======  =======================================================
P:job:meta            hash    id -> "priority|seq|queue"; a field here means the job exists
P:job:body            hash    id -> encoded envelope (never decoded by the broker)
P:job:state           hash    id -> "delivery|deaths|owner"; owner empty when not leased
P:job:retry           hash    id -> "retries|last error payload" once the job was retried
P:seq                 string  enqueue counter (FIFO within a priority, across queues)
P:queues              set     names of queues that hold jobs (for queue_stats)
P:ready:q:n           list    ready ids of queue q at priority n, oldest first
P:delayed:q           zset    delayed ids of q by eta (countdown, eta, retry)
P:notify:q            list    at most one wake-up token for fetches blocked on q
P:leases              zset    owners by the expiry of their leases (all of one owner's
                              leases expire together; a heartbeat renews them at once)
P:owned:owner         set     ids leased by owner
P:fetched:owner       string  owner's last fetch (nonce + ids): redelivered if its reply was lost
P:revoked             hash    id -> "terminate|expires_at"
P:result:id           string  "state|retries|=payload", expires with the result (Redis TTL)
P:waiting:id          string  how many callers wait for id to finish (short TTL)
P:done:id             list    wake-up tokens for those callers (short TTL)
P:deadletters         zset    dead-lettered ids by failed_at
P:deadletter:id       hash    queue, priority, body, reason, failed_at, deaths
P:workers             hash    owner -> worker info (JSON)
P:beats               zset    owner by last heartbeat
P:kv:key              string  coordination key/value (locks, schedules, counters), Redis TTL
P:kvindex             zset    coordination key names (score 0) for prefix scans by lex range
P:kvindex:cursor      string  where the next cleanup pass over P:kvindex starts
P:history             list    task history: ids, the latest written first (an id is
                              moved to the front when it gets a new state)
P:history:s:STATE     zset    ids by the time of their latest state, per state other than
                              SUCCESS (FAILURE, RETRY, REVOKED)
P:history:rec         hash    id -> encoded TaskRecord, "\n", the latest run's payload
P:history:att         hash    id -> failed attempts (encoded Attempt), "\n" between them
P:group:id            hash    workflow group: size, joined, failed, body_id, queue,
                              priority, eta, body (the job its last member enqueues)
P:group:id:slots      hash    slot index -> packed result of the member that joined there
P:counts:minute       hash    per task name: "p:name" runs, "f:name" failures, "r:name"
                              retries, "t:name" seconds; expires after COUNTERS_KEPT
====================  ======  =======================================================

Why these shapes: a few hashes keyed by id (not a hash per job) let a batch read or write one
field of a thousand jobs in one command; a list per (queue, priority) makes enqueue an RPUSH and
fetch an LPOP (a sorted set with a composite score costs several times more per job and
is slowest exactly at small sizes, where Redis stores it as a listpack).
"""

from __future__ import annotations


class Keys:
    """Key names for one prefix, computed once (they are used on every call).

    >>> Keys("conveyor").ready("default", 5)
    '{conveyor}:ready:default:5'
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        p = self.tag = "{" + prefix + "}"
        # The job store. Every script that touches jobs receives these as KEYS[1..4], in this
        # order (see scripts/lib.lua).
        self.job_meta = f"{p}:job:meta"
        self.job_body = f"{p}:job:body"
        self.job_state = f"{p}:job:state"
        self.job_retry = f"{p}:job:retry"
        self.job_store = [self.job_meta, self.job_body, self.job_state, self.job_retry]
        self.seq = f"{p}:seq"
        self.queues = f"{p}:queues"
        self.leases = f"{p}:leases"
        self.revoked = f"{p}:revoked"
        self.dead_letters = f"{p}:deadletters"
        self.workers = f"{p}:workers"
        self.beats = f"{p}:beats"
        self.kv_index = f"{p}:kvindex"
        self.kv_index_cursor = f"{p}:kvindex:cursor"
        self.history = f"{p}:history"
        self.history_records = f"{p}:history:rec"
        self.history_attempts = f"{p}:history:att"
        self.history_state_prefix = f"{p}:history:s:"
        self.counts_prefix = f"{p}:counts:"
        # Prefixes: a script appends a queue name (and ":<priority>"), task id or owner.
        self.ready_prefix = f"{p}:ready:"
        self.delayed_prefix = f"{p}:delayed:"
        self.notify_prefix = f"{p}:notify:"
        self.owned_prefix = f"{p}:owned:"
        self.fetched_prefix = f"{p}:fetched:"
        self.result_prefix = f"{p}:result:"
        self.waiting_prefix = f"{p}:waiting:"
        self.done_prefix = f"{p}:done:"
        self.dead_letter_prefix = f"{p}:deadletter:"
        self.kv_prefix = f"{p}:kv:"
        self.group_prefix = f"{p}:group:"

    def ready(self, queue: str, priority: int) -> str:
        # The priority is the last character, so distinct (queue, priority) never collide.
        return f"{self.ready_prefix}{queue}:{priority}"

    def delayed(self, queue: str) -> str:
        return self.delayed_prefix + queue

    def notify(self, queue: str) -> str:
        return self.notify_prefix + queue

    def owned(self, owner: str) -> str:
        return self.owned_prefix + owner

    def fetched(self, owner: str) -> str:
        return self.fetched_prefix + owner

    def result(self, task_id: str) -> str:
        return self.result_prefix + task_id

    def waiting(self, task_id: str) -> str:
        return self.waiting_prefix + task_id

    def done(self, task_id: str) -> str:
        return self.done_prefix + task_id

    def group(self, group_id: str) -> str:
        return self.group_prefix + group_id

    def kv(self, key: str) -> str:
        return self.kv_prefix + key
