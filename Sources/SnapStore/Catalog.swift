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
        // GRDB turns WAL on in the writer after `prepareDatabase` and sets `synchronous = NORMAL` with it, under which
        // a commit is not flushed until the next checkpoint: a delete's unlinks could reach the disk before the
        // commit that decided them. FULL flushes the WAL at every commit. Readers keep prepareDatabase's FULL.
        if !readOnly { try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") } }
        let levels = try synchronousLevels(pool)
        guard levels.allSatisfy({ $0 == fullSynchronous }) else {
            throw DatabaseError(message: "catalog connections run with synchronous = \(levels), not FULL (\(fullSynchronous))")
        }
        if !readOnly { try migrator.migrate(pool) }
        return pool
    }

    /// `PRAGMA synchronous`'s value for FULL.
    static let fullSynchronous = 2

    /// The effective `synchronous` level of the writer and of a reader connection.
    static func synchronousLevels(_ pool: DatabasePool) throws -> [Int] {
        let sql = "PRAGMA synchronous"
        let writer = try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: sql) } ?? -1
        let reader = try pool.read { try Int.fetchOne($0, sql: sql) } ?? -1
        return [writer, reader]
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
