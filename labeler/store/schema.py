"""The workspace schema: numbered migrations, applied in order by ``Store.migrate``.

Never edit a migration that has shipped; add the next one. Each runs in one transaction and is
recorded in ``schema_migrations``.
"""

SCHEMA_0001 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE classes (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    row INTEGER NOT NULL,               -- 1-based record number in the source
    path TEXT NOT NULL,                 -- the image path exactly as the source wrote it
    file TEXT NOT NULL,                 -- the image file, relative to the image root
    label TEXT NOT NULL,                -- the given label
    split TEXT NOT NULL CHECK (split IN ('train', 'valid', 'test')),
    status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'quarantined', 'gone')),
    reason TEXT,                        -- why quarantined or gone
    extra TEXT                          -- JSON object: the source's other columns
);
CREATE INDEX items_path ON items (path);
CREATE INDEX items_status_split ON items (status, split);
CREATE INDEX items_label ON items (label);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items (id),
    reviewer TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('confirm', 'relabel', 'remove', 'skip', 'undo')),
    label TEXT,                         -- the item's label after this decision
    old_label TEXT,                     -- its label before
    reason TEXT,                        -- reason code (why removed, which flag it answered)
    undoes INTEGER REFERENCES decisions (id),
    created_at TEXT NOT NULL
);
CREATE INDEX decisions_item ON decisions (item_id, id);
CREATE INDEX decisions_undoes ON decisions (undoes);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE arrays (
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    name TEXT NOT NULL,
    path TEXT NOT NULL,                 -- relative to the workspace folder
    shape TEXT NOT NULL,                -- JSON list
    dtype TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (round_id, name)
);
CREATE TABLE issues (
    id INTEGER PRIMARY KEY,
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    item_id INTEGER NOT NULL REFERENCES items (id),
    kind TEXT NOT NULL,
    score REAL NOT NULL,
    suggested_label TEXT,
    reasons TEXT NOT NULL DEFAULT '[]'  -- JSON list of {"code", "text"}
);
CREATE INDEX issues_round ON issues (round_id, score DESC);
CREATE INDEX issues_item ON issues (item_id);
"""

# Flags carry what the review screen and the queue CSV show without recomputing; claims keep
# concurrent reviewers from being shown the same item.
SCHEMA_0002 = """
ALTER TABLE issues ADD COLUMN priority REAL NOT NULL DEFAULT 0;
ALTER TABLE issues ADD COLUMN quality REAL;
ALTER TABLE issues ADD COLUMN suggested_prob REAL;
ALTER TABLE issues ADD COLUMN top TEXT NOT NULL DEFAULT '[]';         -- JSON [[label, prob], ...], best first
ALTER TABLE issues ADD COLUMN group_id INTEGER NOT NULL DEFAULT -1;   -- near-duplicate group, -1 none
ALTER TABLE issues ADD COLUMN contradicts INTEGER NOT NULL DEFAULT 0; -- reviewed, but the round disagrees
ALTER TABLE issues ADD COLUMN neighbours TEXT NOT NULL DEFAULT '[]';  -- JSON [[item_id, similarity], ...]
ALTER TABLE issues ADD COLUMN active_score REAL;                      -- active-learning priority, if computed
CREATE INDEX issues_round_priority ON issues (round_id, priority DESC);
CREATE INDEX issues_round_group ON issues (round_id, group_id);
CREATE TABLE claims (
    item_id INTEGER PRIMARY KEY REFERENCES items (id),
    reviewer TEXT NOT NULL,
    claimed_at REAL NOT NULL                                          -- unix time
);
CREATE INDEX decisions_reviewer ON decisions (reviewer, id);
"""

# A decision made for a whole near-duplicate group carries the group's batch token, so that an
# undo reverts the group as one.
SCHEMA_0003 = """
ALTER TABLE decisions ADD COLUMN batch TEXT;                          -- shared by one group decision
CREATE INDEX decisions_batch ON decisions (batch) WHERE batch IS NOT NULL;
"""

SCHEMA_0004 = """
-- `status` counts images per class and split: an index-only scan (0.04 s on 289k items, 0.4 s without)
CREATE INDEX items_status_label_split ON items (status, label, split);
"""

# One name end to end: the table of flagged items is ``flags`` (the store's ``Flag`` records). A flag's
# score is its one "how likely wrong" figure; cleanlab's label quality (1 - score) is derived where shown.
SCHEMA_0005 = """
ALTER TABLE issues DROP COLUMN quality;
ALTER TABLE issues RENAME TO flags;
"""

# A read-only open applies no migration. For a workspace that lacks one of these migrations, the SQL here
# (TEMP objects only: the connection's own schema, nothing written to the file) lets today's queries read it.
READ_AS_MIGRATED = {
    "0005_flags_table": "CREATE TEMP VIEW flags AS SELECT * FROM issues",
}

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_initial", SCHEMA_0001),
    ("0002_flags_and_claims", SCHEMA_0002),
    ("0003_decision_batches", SCHEMA_0003),
    ("0004_class_count_index", SCHEMA_0004),
    ("0005_flags_table", SCHEMA_0005),
)

ITEM_COLUMNS = ("row", "path", "file", "label", "split", "status", "reason", "extra")
