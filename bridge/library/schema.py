"""The clip library's SQLite schema, versioned with `PRAGMA user_version` and upgraded step by step.

Each entry of UPGRADES takes the database from version N to N+1 inside one transaction, so an old
library opens in a new Segue, and a library from a newer Segue is refused instead of damaged.
The full-text index (FTS5) is not part of the versioned schema: it is rebuilt from the clips table
whenever it is missing, and left out on a Python whose SQLite lacks FTS5 (search then uses LIKE).
"""

import sqlite3

from bridge.errors import LibraryError

# Statuses: 'pending' (files being written by `writer`, a 'host:pid'), 'ready', 'trashing' and
# 'restoring' (files moving to or from the Segue trash, by `writer`), 'trashed' (files in the trash),
# 'missing' (file gone from disk; the row keeps the parameters that made it, and turns 'ready'
# again if the file comes back).
_V1 = """
CREATE TABLE clips (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'trashing', 'trashed', 'restoring', 'missing')),
    writer TEXT,
    status_changed_at REAL NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    seed INTEGER,
    params TEXT NOT NULL DEFAULT '{}',
    parent_id INTEGER REFERENCES clips(id) ON DELETE SET NULL,
    bpm REAL,
    signature TEXT,
    bars REAL,
    musical_key TEXT,
    duration_seconds REAL NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    created_at REAL NOT NULL,
    rating INTEGER NOT NULL DEFAULT 0 CHECK (rating BETWEEN 0 AND 5),
    kept INTEGER NOT NULL DEFAULT 0 CHECK (kept IN (0, 1)),
    tags TEXT NOT NULL DEFAULT ''
);
-- A trashed clip keeps its home path (for restore) while a new clip may take that path.
CREATE UNIQUE INDEX clips_by_path ON clips (path) WHERE status NOT IN ('trashing', 'trashed');
CREATE INDEX clips_by_status_time ON clips (status, created_at DESC, id DESC);
CREATE INDEX clips_by_model_time ON clips (model, created_at DESC);
CREATE INDEX clips_by_bpm ON clips (bpm);
CREATE INDEX clips_by_parent ON clips (parent_id);
"""

UPGRADES: list[str] = [_V1]
SCHEMA_VERSION = len(UPGRADES)

_FTS = """
CREATE VIRTUAL TABLE clips_fts USING fts5(name, prompt, tags, content='clips', content_rowid='id');
CREATE TRIGGER clips_fts_insert AFTER INSERT ON clips BEGIN
    INSERT INTO clips_fts(rowid, name, prompt, tags) VALUES (new.id, new.name, new.prompt, new.tags);
END;
CREATE TRIGGER clips_fts_delete AFTER DELETE ON clips BEGIN
    INSERT INTO clips_fts(clips_fts, rowid, name, prompt, tags) VALUES ('delete', old.id, old.name, old.prompt, old.tags);
END;
CREATE TRIGGER clips_fts_update AFTER UPDATE OF name, prompt, tags ON clips BEGIN
    INSERT INTO clips_fts(clips_fts, rowid, name, prompt, tags) VALUES ('delete', old.id, old.name, old.prompt, old.tags);
    INSERT INTO clips_fts(rowid, name, prompt, tags) VALUES (new.id, new.name, new.prompt, new.tags);
END;
INSERT INTO clips_fts(clips_fts) VALUES ('rebuild');
"""


def upgrade(connection: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; return the version found before."""
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise LibraryError(
            f"the clip library was written by a newer Segue (schema {found}, this one knows {SCHEMA_VERSION}); "
            "update Segue to open it"
        )
    for version in range(found, SCHEMA_VERSION):
        with transaction(connection):
            _run_script(connection, UPGRADES[version])
            connection.execute(f"PRAGMA user_version = {version + 1}")
    return found


def fts_available(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0] == 1


def ensure_fts(connection: sqlite3.Connection) -> bool:
    """Create (and fill) the full-text index if SQLite has FTS5; return whether search can use it."""
    if not fts_available(connection):
        return False
    exists = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'clips_fts'").fetchone()
    if not exists:
        with transaction(connection):
            _run_script(connection, _FTS)
    return True


class transaction:
    """`with transaction(connection):` BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

    The connection is in autocommit mode (isolation_level=None), so transactions are explicit.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, tb) -> None:
        self.connection.execute("ROLLBACK" if exc_type else "COMMIT")


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT first; run statement by statement to stay inside the transaction.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            connection.execute(statement)
            statement = ""
