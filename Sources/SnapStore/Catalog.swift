import Foundation
import GRDB

/// The catalog: an SQLite database (WAL) inside the store. Every decision about snapshots and references is a
/// transaction here first; physical files follow, so a crash between the two is finished on the next open.
enum Catalog {
    static let fileName = "catalog.sqlite"

    static func open(at url: URL, readOnly: Bool = false) throws -> DatabasePool {
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(30)
        config.label = "snapfs.catalog"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        let pool = try DatabasePool(path: url.path, configuration: config)
        if !readOnly { try migrator.migrate(pool) }
        return pool
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
            CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE snapshots(
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL CHECK(kind IN ('checkpoint','user')),
                format TEXT NOT NULL CHECK(format IN ('native-incremental','native-full','canonical')),
                state TEXT NOT NULL CHECK(state IN ('writing','complete')),
                engine TEXT NOT NULL,
                job TEXT,
                created_at REAL NOT NULL,
                completed_at REAL,
                directory TEXT,
                external_id TEXT,
                owner TEXT
            );
            CREATE TABLE objects(
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                path TEXT NOT NULL UNIQUE,
                size INTEGER NOT NULL,
                sha256 TEXT,
                pending_snapshot INTEGER,
                created_at REAL NOT NULL
            );
            CREATE TABLE entries(
                snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                type TEXT NOT NULL CHECK(type IN ('file','directory','symlink')),
                size INTEGER NOT NULL,
                mode INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                object_id INTEGER REFERENCES objects(id),
                symlink_target TEXT,
                hidden INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY(snapshot_id, path)
            ) WITHOUT ROWID;
            CREATE INDEX entries_object ON entries(object_id);
            CREATE INDEX objects_pending ON objects(pending_snapshot);
            -- Decided removals not yet done on disk: the journal that makes delete crash-safe.
            CREATE TABLE removals(path TEXT PRIMARY KEY NOT NULL, is_directory INTEGER NOT NULL, queued_at REAL NOT NULL);
            -- Snapshots that a live process is reading (export, convert): delete waits for them.
            CREATE TABLE pins(snapshot_id INTEGER NOT NULL, owner TEXT NOT NULL, what TEXT NOT NULL);
            CREATE TABLE events(
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                time REAL NOT NULL,
                type TEXT NOT NULL,
                snapshot TEXT,
                detail TEXT NOT NULL
            );
            CREATE TABLE requests(
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                format TEXT NOT NULL,
                label TEXT,
                source TEXT NOT NULL,
                state TEXT NOT NULL CHECK(state IN ('pending','running','complete','failed')),
                snapshot TEXT,
                error TEXT,
                owner TEXT,
                requested_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL
            );
            INSERT INTO meta(key, value) VALUES ('generation', '0');
            """)
        }
        // The recovery point and a snapshot's last refusal are asked for on every delete, report and listing:
        // without these, each is a scan of the whole table, and a store of 10,000 snapshots pays it per call.
        m.registerMigration("v2-lookup-indexes") { db in
            try db.execute(sql: """
            CREATE INDEX snapshots_newest ON snapshots(state, completed_at, id);
            CREATE INDEX events_snapshot ON events(snapshot, type, seq);
            """)
        }
        // Objects a snapshot being written will reference without having written them: a native-incremental
        // snapshot's reuse of its base's objects, a Flink import's adoption of files already catalogued. A delete that
        // commits while the writer copies must not remove them; the pin is recorded in the same transaction that
        // decides the reuse and released in the one that commits or rolls back the snapshot, or by `recover` once
        // its writer is dead. `kind` says whether the writer may remove an object it leaves unreferenced ('reuse':
        // the store's own) or never ('adopt': a file the engine wrote).
        m.registerMigration("v3-object-pins") { db in
            try db.execute(sql: """
            CREATE TABLE object_pins(
                snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
                object_id INTEGER NOT NULL REFERENCES objects(id),
                kind TEXT NOT NULL CHECK(kind IN ('reuse','adopt')),
                PRIMARY KEY(snapshot_id, object_id)
            ) WITHOUT ROWID;
            CREATE INDEX object_pins_object ON object_pins(object_id);
            """)
        }
        return m
    }
}

extension Database {
    /// Marks the catalog changed, so a daemon that polls it refreshes its view within a second.
    func bumpGeneration() throws {
        try execute(sql: "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    }
}

extension Snapshot: FetchableRecord {
    static let columns = "id, name, kind, format, state, engine, job, created_at, completed_at, directory, external_id"

    public init(row: Row) throws {
        id = row["id"]
        name = row["name"]
        let k: String = row["kind"], f: String = row["format"], s: String = row["state"]
        guard let kind = SnapshotKind(rawValue: k), let format = SnapshotFormat(rawValue: f),
              let state = SnapshotState(rawValue: s) else {
            throw StoreError.corrupt("catalog row for snapshot \(row["id"] as Int64? ?? -1) has kind '\(k)', format '\(f)', state '\(s)'")
        }
        self.kind = kind; self.format = format; self.state = state
        engine = row["engine"]; job = row["job"]
        createdAt = row["created_at"]; completedAt = row["completed_at"]
        directory = row["directory"]; externalID = row["external_id"]
    }
}
