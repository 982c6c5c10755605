-- Conveyor's SQLite schema. One row per live job; results, revokes, dead letters and
-- workers in their own tables. Every multi-row change runs in one BEGIN IMMEDIATE transaction.
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    seq           INTEGER NOT NULL,          -- enqueue order: FIFO within a priority
    eta           REAL,                      -- NULL: ready; else delayed until this time
    body          BLOB NOT NULL,             -- the encoded envelope, never decoded here
    retries       INTEGER NOT NULL DEFAULT 0,
    info          BLOB,                      -- last error while waiting for a retry
    lease_owner   TEXT,                      -- worker holding the lease, NULL when not leased
    lease_expires REAL,
    delivery      INTEGER NOT NULL DEFAULT 0,  -- hand-out count; fences stale settles (negative:
                                               -- not handed out since its last retry)
    deaths        INTEGER NOT NULL DEFAULT 0,  -- lease expiries while it ran (its worker died)
    running       INTEGER NOT NULL DEFAULT 0   -- 1: its worker said it started (see broker.py)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(queue, priority DESC, seq)
    WHERE lease_owner IS NULL AND eta IS NULL;
CREATE INDEX IF NOT EXISTS jobs_delayed ON jobs(eta) WHERE eta IS NOT NULL AND lease_owner IS NULL;
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs(lease_owner, lease_expires) WHERE lease_owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_lease_expiry ON jobs(lease_expires) WHERE lease_owner IS NOT NULL;

CREATE TABLE IF NOT EXISTS results (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    payload    BLOB,
    retries    INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_expiry ON results(expires_at);

CREATE TABLE IF NOT EXISTS revoked (
    id         TEXT PRIMARY KEY,
    terminate  INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS dead_letters (
    id        TEXT PRIMARY KEY,
    queue     TEXT NOT NULL,
    priority  INTEGER NOT NULL,
    body      BLOB NOT NULL,
    reason    TEXT NOT NULL,
    failed_at REAL NOT NULL,
    deaths    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dead_letters_time ON dead_letters(failed_at);

CREATE TABLE IF NOT EXISTS workers (
    name      TEXT PRIMARY KEY,
    heartbeat REAL NOT NULL,
    info      BLOB NOT NULL
) WITHOUT ROWID;

-- Coordination primitives (locks, schedules, slot claims, limits): small keys with expiry.
CREATE TABLE IF NOT EXISTS kv (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at REAL                          -- NULL: never
) WITHOUT ROWID;

-- The task history (see brokers/history.py): one row per task id, its latest state, written in
-- the settle transaction of the outcome. A rowid table in write order: listings walk it newest
-- first and trimming deletes from its start, with no index on time to keep up.
-- Successes, the bulk, are in no index at all: each one is an append to the table's last page.
-- An index on the random task id would dirty a page of its own per row (measured: +18 % CPU
-- per task in a drain), so only the other states are indexed by id (to find a retried task's
-- row and a failure fast); a success is found by id with a scan (bench/history.py size).
CREATE TABLE IF NOT EXISTS history (
    id       TEXT NOT NULL,
    state    TEXT NOT NULL,                -- SUCCESS, FAILURE, RETRY, REVOKED
    at       REAL NOT NULL,                -- when it reached that state
    name     TEXT NOT NULL,
    queue    TEXT NOT NULL,
    args     TEXT NOT NULL,                -- the arguments' repr (--search looks here)
    record   BLOB NOT NULL,                -- encoded taskrecord.TaskRecord
    payload  BLOB,                         -- the latest run's result or error
    attempts BLOB                          -- failed attempts' encoded Attempt, one per line
);
CREATE INDEX IF NOT EXISTS history_open ON history(id) WHERE state <> 'SUCCESS';
CREATE INDEX IF NOT EXISTS history_state ON history(state) WHERE state <> 'SUCCESS';

-- The history's text-search index (history_search) is created by connection.py, when this
-- SQLite has FTS5 with the trigram tokenizer.

-- Per task name and minute (its start, epoch seconds): runs ended, failures, retries, seconds.
CREATE TABLE IF NOT EXISTS counters (
    minute    INTEGER NOT NULL,
    name      TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    retried   INTEGER NOT NULL DEFAULT 0,
    runtime   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, name)
) WITHOUT ROWID;

-- Workflow groups (brokers/sqlite/workflows.py): a chord's header tasks join their group in the
-- settle transaction of their own outcome; the join that fills the last slot enqueues the body.
CREATE TABLE IF NOT EXISTS groups (
    id            TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    joined        INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,  -- how many members failed
    body_id       TEXT,                      -- the job enqueued when every member joined
    body_queue    TEXT,
    body_priority INTEGER,
    body_eta      REAL,
    body          BLOB,
    expires_at    REAL NOT NULL
) WITHOUT ROWID;

-- One row per member that joined: the slot is the member's place in the group, so a member
-- is counted once however often its outcome arrives.
CREATE TABLE IF NOT EXISTS group_slots (
    group_id TEXT NOT NULL,
    idx      INTEGER NOT NULL,
    state    TEXT NOT NULL,
    payload  BLOB,
    PRIMARY KEY (group_id, idx)
) WITHOUT ROWID;
