import Foundation
import GRDB
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The catalog: an SQLite database (WAL) inside the store. Every decision about snapshots and references is a
/// transaction here first; physical files follow, so a crash between the two is finished on the next open.
enum Catalog {
    static let fileName = "catalog.sqlite"

    /// Called with every statement run on the catalog at a path (the key), on every connection opened after it was
    /// set: how a test counts what an operation costs the catalog.
    static let statementObservers = Mutex<[String: @Sendable (String) -> Void]>([:])

    /// Opens the catalog. `creating` is the only case where an empty database is acceptable: anywhere else an
    /// empty or foreign one beside a store's objects would read as "no snapshots", and `verify` and `gc` would then
    /// treat every object as garbage. A read-only catalog is opened without migrating, and `immutable` when nothing
    /// waits in its write-ahead log, because SQLite cannot otherwise read a WAL database whose directory it may not
    /// write to.
    static func open(at url: URL, creating: Bool = false, readOnly: Bool = false, busyTimeout: TimeInterval = 30) throws -> DatabasePool {
        if creating { try precreate(url) }
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(busyTimeout)
        config.label = "snapfs.catalog"
        let observe = statementObservers.withLock { $0[url.standardizedFileURL.path] }
        config.prepareDatabase { db in
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA synchronous = FULL") }
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            if let observe { db.trace(options: .statement) { observe("\($0)") } }
        }
        var path = url.path
        if readOnly {
            let wal = url.path + "-wal"
            var st = stat()
            if stat(wal, &st) != 0 || st.st_size == 0 {
                path = "file:" + (url.path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? url.path) + "?immutable=1"
            } else if access(url.path + "-shm", R_OK) != 0 {
                throw StoreError.readOnly("the catalog \(url.path) has unfinished writes in its log that SQLite cannot read without write access; open the store writable once")
            }
        }
        if !creating {
            // Checked through a read-only connection first: opening the pool would already switch someone else's
            // database to WAL.
            var probeConfig = Configuration()
            probeConfig.readonly = true
            let probe = try DatabaseQueue(path: path, configuration: probeConfig)
            defer { try? probe.close() }
            try probe.read { db throws in try checkIdentity(db, url: url, creating: creating) }
        }
        let pool = try DatabasePool(path: path, configuration: config)
        if !readOnly {
            // GRDB turns WAL on in the writer after `prepareDatabase` and sets `synchronous = NORMAL` with it, under
            // which a commit is not flushed until the next checkpoint: a delete's unlinks could reach the disk before
            // the commit that decided them. FULL flushes the WAL at every commit. Readers keep prepareDatabase's FULL.
            try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
            let levels = try synchronousLevels(pool)
            guard levels.allSatisfy({ $0 == fullSynchronous }) else {
                throw DatabaseError(message: "catalog connections run with synchronous = \(levels), not FULL (\(fullSynchronous))")
            }
        }
        if readOnly {
            let current = try pool.read { db in try migrator.hasCompletedMigrations(db) }
            guard current else {
                throw StoreError.readOnly("the catalog \(url.path) was written by an older SnapFS and must be upgraded, which needs write access: open the store writable once")
            }
        } else {
            try migrator.migrate(pool)
        }
        return pool
    }

    /// Creates the catalog file owner-only before SQLite does: SQLite creates its log files with the mode of the
    /// database file, so this one mode covers all three.
    private static func precreate(_ url: URL) throws {
        let fd = Glibc.open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.io(path: url.path, errno: errno, what: "cannot create catalog") }
        fchmod(fd, 0o600)
        close(fd)
    }

    /// Whether the database is a SnapFS catalog: its tables are ours, or (only when creating) there are none.
    private static func checkIdentity(_ db: Database, url: URL, creating: Bool) throws {
        let tables = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
        if tables.isEmpty {
            if creating { return }
            throw StoreError.corrupt("the catalog \(url.path) is empty (no tables): it is not the store's catalog, so its snapshots and references are unknown; nothing was changed")
        }
        let ours: Set<String> = ["meta", "snapshots", "objects", "entries", "grdb_migrations"]
        guard ours.isSubset(of: tables) else {
            throw StoreError.corrupt("\(url.path) is an SQLite database but not a SnapFS catalog (tables: \(tables.sorted().joined(separator: ", "))); nothing was changed")
        }
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
        // Each snapshot's root directory is shown in the mount with the mode and owner the state directory had
        // when it was taken: otherwise a state directory that kept others out would not keep them out of its
        // snapshots. NULL for snapshots taken before this was recorded, and for engines whose source has no root.
        m.registerMigration("v3-root-ownership") { db in
            try db.execute(sql: """
            ALTER TABLE snapshots ADD COLUMN root_mode INTEGER;
            ALTER TABLE snapshots ADD COLUMN root_uid INTEGER;
            ALTER TABLE snapshots ADD COLUMN root_gid INTEGER;
            """)
        }
        // FIFOs and device nodes are entries (with a device's number); what a snapshot does not hold of its source
        // (sockets) is recorded, so it is never silently absent; and the last failure of each journalled removal is
        // kept, so one that keeps failing is logged once, not at every open. SQLite cannot change a CHECK
        // constraint in place: the entries table is copied into one that allows the new types.
        m.registerMigration("v4-special-files-and-omissions") { db in
            try db.execute(sql: """
            CREATE TABLE entries_v3(
                snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                type TEXT NOT NULL CHECK(type IN ('file','directory','symlink','fifo','device')),
                size INTEGER NOT NULL,
                mode INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                object_id INTEGER REFERENCES objects(id),
                symlink_target TEXT,
                hidden INTEGER NOT NULL DEFAULT 0,
                rdev INTEGER,
                PRIMARY KEY(snapshot_id, path)
            ) WITHOUT ROWID;
            INSERT INTO entries_v3(snapshot_id, path, type, size, mode, mtime_ns, object_id, symlink_target, hidden)
                SELECT snapshot_id, path, type, size, mode, mtime_ns, object_id, symlink_target, hidden FROM entries;
            DROP TABLE entries;
            ALTER TABLE entries_v3 RENAME TO entries;
            CREATE INDEX entries_object ON entries(object_id);
            CREATE TABLE omissions(
                snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                type TEXT NOT NULL,
                reason TEXT NOT NULL,
                PRIMARY KEY(snapshot_id, path)
            ) WITHOUT ROWID;
            ALTER TABLE removals ADD COLUMN failure TEXT;
            """)
        }
        // A length rule per entry: some engines' files may be longer than the snapshot needs (see SizeRule). An
        // entry recorded before this reads as exact, which is what every earlier engine meant.
        m.registerMigration("v5-size-rules") { db in
            try db.execute(sql: """
            ALTER TABLE entries ADD COLUMN size_rule TEXT NOT NULL DEFAULT 'exact' CHECK(size_rule IN ('exact','at-least'));
            ALTER TABLE entries ADD COLUMN required_size INTEGER;
            """)
        }
        // Objects a snapshot being written will reference without having written them: a native-incremental
        // snapshot's reuse of its base's objects, a Flink import's adoption of files already catalogued. A delete that
        // commits while the writer copies must not remove them; the pin is recorded in the same transaction that
        // decides the reuse and released in the one that commits or rolls back the snapshot, or by `recover` once
        // its writer is dead. `kind` says whether the writer may remove an object it leaves unreferenced ('reuse':
        // the store's own) or never ('adopt': a file the engine wrote).
        m.registerMigration("v6-object-pins") { db in
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
        // A hold: a person's word that a snapshot must stay until they release it, with why (like `zfs hold`).
        // Keyed by the snapshot's id, so it follows no name; it goes with its snapshot's row, and nothing else
        // refers to it.
        m.registerMigration("v7-holds") { db in
            try db.execute(sql: """
            CREATE TABLE holds(
                snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
                reason TEXT NOT NULL,
                held_at REAL NOT NULL
            );
            """)
        }
        // Every entry's owner and extended attributes (POSIX ACLs among them), the root directory's time and
        // extended attributes beside its mode and owner (v3), and the disk blocks each object occupies (holes kept), so a snapshot is shown, exported and imported with the
        // metadata its state had. NULL for entries recorded before, and for engines that write their own files: the
        // mount shows those as the daemon's.
        m.registerMigration("v8-fidelity") { db in
            try db.execute(sql: """
            ALTER TABLE entries ADD COLUMN uid INTEGER;
            ALTER TABLE entries ADD COLUMN gid INTEGER;
            ALTER TABLE entries ADD COLUMN xattrs BLOB;
            ALTER TABLE snapshots ADD COLUMN root_mtime_ns INTEGER;
            ALTER TABLE snapshots ADD COLUMN root_xattrs BLOB;
            ALTER TABLE objects ADD COLUMN blocks INTEGER;
            """)
        }
        // A file stored with holes is checksummed by its `SparseDigest` (over its data blocks and their offsets),
        // which costs its data rather than its length: the whole-content SHA-256 of an 8 GiB file holding 10 KiB is
        // seconds of hashing zeros. `sha256` stays NULL for such an object until something needs it (an export,
        // `getfattr -n user.snapfs.sha256`), which computes it, checks the bytes against the digest and records it.
        m.registerMigration("v9-sparse-digests") { db in
            try db.execute(sql: "ALTER TABLE objects ADD COLUMN sparse_digest TEXT")
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
    static let columns = "id, name, kind, format, state, engine, job, created_at, completed_at, directory, external_id, root_mode, root_uid, root_gid, root_mtime_ns, root_xattrs"

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
        if let mode = row["root_mode"] as Int64?, let uid = row["root_uid"] as Int64?, let gid = row["root_gid"] as Int64? {
            root = RootOwnership(mode: UInt32(truncatingIfNeeded: mode), uid: UInt32(truncatingIfNeeded: uid), gid: UInt32(truncatingIfNeeded: gid),
                                 mtimeNanos: row["root_mtime_ns"], xattrs: (row["root_xattrs"] as Data?).flatMap(ExtendedAttributes.init(blob:)))
        } else {
            root = nil
        }
    }
}
