import Foundation
import GRDB
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// What `verify` found.
public struct VerifyReport: Codable, Sendable {
    public struct Problem: Codable, Sendable, Hashable {
        /// The snapshots that need the object.
        public var snapshots: [String]
        public var path: String
        /// The path's exact bytes when they are not the UTF-8 of `path` (see `PathBytes`).
        public var pathBase64: String?
        public var problem: String

        public init(snapshots: [String], path: String, problem: String) {
            self.snapshots = snapshots; self.path = path; self.pathBase64 = PathBytes.base64IfEscaped(path); self.problem = problem
        }
    }
    public var snapshots: Int
    public var objectsChecked: Int
    public var bytesChecked: Int64
    public var problems: [Problem]
    /// Files under the store's object directories that no snapshot references: `gc` removes them.
    public var unreferenced: [String]
    /// For each unreferenced path whose bytes are not its UTF-8: those bytes, in base64.
    public var unreferencedBase64: [String: String]?
    /// Removals decided but not yet done on disk (finished by the next open or `gc`).
    public var pendingRemovals: Int
    public var clean: Bool { problems.isEmpty && unreferenced.isEmpty }
}

/// What `gc` removed.
public struct GCReport: Codable, Sendable {
    public var removedFiles: [String]
    public var removedBytes: Int64
    public var keptYoungerThanGrace: [String]
    /// For each path above whose bytes are not its UTF-8: those bytes, in base64.
    public var pathsBase64: [String: String]?
}

extension Store {
    /// Directories (relative to the root) whose every file must be a catalogued object.
    public var managedRoots: [String] {
        if let s = try? meta("managed_roots"), let d = s.data(using: .utf8), let a = try? JSONDecoder().decode([String].self, from: d) { return a }
        return [Store.objectsDirectory, Store.canonicalDirectory]
    }

    /// Checks every referenced object: present, the recorded size, and (with `checksums`) the recorded checksum: an
    /// object's `SparseDigest` when it has one (its holes are not hashed), else its SHA-256.
    public func verify(checksums: Bool = true, progress: ProgressHandler? = nil) throws(StoreError) -> VerifyReport {
        drainRemovals()
        let rows: [Row]
        let snapCount: Int
        let pending: Int
        do {
            (rows, snapCount, pending) = try db.read { db in
                (try Row.fetchAll(db, sql: """
                    SELECT o.path, o.size, o.sha256, o.sparse_digest, GROUP_CONCAT(DISTINCT s.name) AS names
                    FROM objects o JOIN entries e ON e.object_id = o.id JOIN snapshots s ON s.id = e.snapshot_id
                    WHERE s.state = 'complete' GROUP BY o.id ORDER BY o.path
                    """),
                 try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM snapshots WHERE state = 'complete'") ?? 0,
                 try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM removals") ?? 0)
            }
        } catch { throw .wrap(error, "cannot read catalog") }
        var problems: [VerifyReport.Problem] = []
        let total = rows.reduce(Int64(0)) { $0 + ($1["size"] as Int64) }
        var done: Int64 = 0
        // An object store is listed once, and asked one by one only for what the listing lacks.
        var remote: [String: StoreFileStat?]?
        if !files.isLocal {
            let paths = rows.map { $0["path"] as String }
            remote = Dictionary(zip(paths, try files.stat(paths)), uniquingKeysWith: { a, _ in a })
        }
        for r in rows {
            let path: String = r["path"], size: Int64 = r["size"]
            let names = ((r["names"] as String?) ?? "").split(separator: ",").map(String.init).sorted()
            if let remote {
                guard let found = remote[path] ?? nil else {
                    problems.append(.init(snapshots: names, path: path, problem: "missing")); continue
                }
                if found.size != size { problems.append(.init(snapshots: names, path: path, problem: "size \(found.size), expected \(size)")) }
                else { done += size }
                continue
            }
            var st = stat()
            if PathAt.stat(root.path, path, &st) != 0 {
                problems.append(.init(snapshots: names, path: path, problem: "missing"))
                continue
            }
            if Int64(st.st_size) != size {
                problems.append(.init(snapshots: names, path: path, problem: "size \(st.st_size), expected \(size)"))
                continue
            }
            if checksums, let want = r["sparse_digest"] as String? {
                if let problem = Self.sparseMismatch(root.path, path, want) {
                    problems.append(.init(snapshots: names, path: path, problem: problem))
                }
            } else if checksums, let want = r["sha256"] as String? {
                let got = Self.sha256(ofFile: root.path, path)
                if got != want { problems.append(.init(snapshots: names, path: path, problem: "checksum \(got ?? "unreadable"), expected \(want)")) }
            }
            done += size
            progress?(done, total, path)
        }
        let unreferenced = try unreferencedFiles().map(\.path)
        var bytes: [String: String] = [:]
        for u in unreferenced { bytes[u] = PathBytes.base64IfEscaped(u) }
        return VerifyReport(snapshots: snapCount, objectsChecked: rows.count, bytesChecked: done, problems: problems,
                            unreferenced: unreferenced, unreferencedBase64: bytes.isEmpty ? nil : bytes, pendingRemovals: pending)
    }

    /// Files on disk under the managed roots that the catalog does not know, with their ages.
    func unreferencedFiles() throws(StoreError) -> [(path: String, age: TimeInterval, size: Int64)] {
        let known: Set<String>
        do {
            known = try db.read { db in
                Set(try String.fetchAll(db, sql: "SELECT path FROM objects UNION SELECT path FROM removals"))
            }
        } catch { throw .wrap(error, "cannot read catalog") }
        var out: [(String, TimeInterval, Int64)] = []
        let now = Date().timeIntervalSince1970
        if !files.isLocal {
            for top in managedRoots {
                for (p, st) in try files.list(top, recursive: true, startAfter: nil).files where !known.contains(p) {
                    out.append((p, now - st.mtime, st.size))
                }
            }
            return out.sorted { $0.0 < $1.0 }
        }
        // Walked by descriptor with names decoded as the catalog stores them (PathBytes): a lossy decoding would
        // make a catalogued file with a non-UTF-8 name look unreferenced.
        for top in managedRoots {
            PathAt.walk(root.path, top) { p, st, _, _ in
                guard (st.st_mode & S_IFMT) != S_IFDIR else { return }
                if !known.contains(p) { out.append((p, now - Double(st.st_mtim.tv_sec), Int64(st.st_size))) }
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Removes files no snapshot references once they are older than `grace` (a younger one may belong to a writer).
    ///
    /// `writtenTogether` names, for a file, the store-relative directory a writer fills as one unit (a Flink
    /// `chk-N`): such a directory's files go only when the directory and every file in it are older than `grace`,
    /// since a writer still filling it may have written its first file long ago. A file a snapshot started to name
    /// since the scan is kept, and so is a directory younger than `grace` even when empty (a writer may just have
    /// made it).
    public func gc(grace: TimeInterval, writtenTogether: ((String) -> String?)? = nil) throws(StoreError) -> GCReport {
        try requireWritable("remove unreferenced files")
        drainRemovals()
        if !files.isLocal { return try remoteGC(grace: grace, writtenTogether: writtenTogether) }
        var report = GCReport(removedFiles: [], removedBytes: 0, keptYoungerThanGrace: [])
        let files = try unreferencedFiles()
        let now = Date().timeIntervalSince1970
        var unitAge: [String: TimeInterval] = [:]
        if let writtenTogether {
            for f in files {
                guard let unit = writtenTogether(f.path) else { continue }
                if unitAge[unit] == nil { unitAge[unit] = youngest(under: unit, now: now) }
            }
        }
        // Directories young before this pass removes anything (removing a file makes its directory young).
        let youngDirectories = directoriesChanged(since: now - grace)
        for f in files {
            let age = writtenTogether?(f.path).flatMap { unitAge[$0] }.map { min($0, f.age) } ?? f.age
            if age < grace { report.keptYoungerThanGrace.append(f.path); continue }
            let named = (try? db.read { try Bool.fetchOne($0, sql: "SELECT EXISTS(SELECT 1 FROM objects WHERE path = ?)", arguments: [f.path]) }) ?? true
            if named != false { continue }
            if PathAt.unlink(root.path, f.path) == 0 {
                report.removedFiles.append(f.path)
                report.removedBytes += f.size
            }
        }
        for top in managedRoots {
            let fd = Glibc.open(root.path + "/" + top, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let subs = PathAt.names(in: fd) ?? []
            close(fd)
            for s in subs { Self.removeEmptyDirectories(root.path, top + "/" + s, keeping: youngDirectories) }
        }
        var bytes: [String: String] = [:]
        for p in report.removedFiles + report.keptYoungerThanGrace { bytes[p] = PathBytes.base64IfEscaped(p) }
        report.pathsBase64 = bytes.isEmpty ? nil : bytes
        if !report.removedFiles.isEmpty {
            recordEvent("gc", snapshot: nil, "removed \(report.removedFiles.count) unreferenced files (\(report.removedBytes) bytes)")
        }
        return report
    }

    /// Seconds since anything under the store-relative `directory` (itself included) last changed.
    private func youngest(under directory: String, now: TimeInterval) -> TimeInterval {
        var newest = -Double.infinity
        func note(_ st: stat) { newest = max(newest, Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9) }
        var st = stat()
        if PathAt.lstat(root.path, directory, &st) == 0 { note(st) }
        PathAt.walk(root.path, directory) { _, st, _, _ in note(st) }
        return now - newest
    }

    /// Store-relative paths of the directories under the managed roots that changed after `cutoff` (seconds since 1970).
    private func directoriesChanged(since cutoff: TimeInterval) -> Set<String> {
        var out = Set<String>()
        for top in managedRoots {
            PathAt.walk(root.path, top) { p, st, _, _ in
                guard (st.st_mode & S_IFMT) == S_IFDIR else { return }
                if Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 >= cutoff { out.insert(p) }
            }
        }
        return out
    }

    /// Removes `rel` below `base` and its subdirectories bottom-up where they are empty, except the store-relative
    /// paths in `keep`; never a file.
    static func removeEmptyDirectories(_ base: String, _ rel: String, keeping keep: Set<String>) {
        var dirs: [String] = []
        PathAt.walk(base, rel) { p, st, _, _ in if (st.st_mode & S_IFMT) == S_IFDIR { dirs.append(p) } }
        for d in dirs.reversed() where !keep.contains(d) { _ = PathAt.rmdir(base, d) }
        if !keep.contains(rel) { _ = PathAt.rmdir(base, rel) }
    }

    /// What is wrong with the object at `rel` below `base` measured against its sparse digest `want`; nil when it matches.
    static func sparseMismatch(_ base: String, _ rel: String, _ want: String) -> String? {
        var source = FileTreeSource(root: URL(fileURLWithPath: base))
        source.expectedSparse = [rel: want]
        do {
            _ = try source.readExtents(SourceEntry(path: rel, type: .file, size: 0, mode: 0, mtimeNanos: 0)) { _ in }
            return nil
        } catch SourceProblem.checksumMismatch(_, let want, let got) {
            return "checksum \(got), expected \(want)"
        } catch {
            return "unreadable: \(error)"
        }
    }

    public static func sha256(ofFile path: String) -> String? { sha256(ofFile: path, "") }

    /// The SHA-256 of the file at `rel` below `base` (a store path: any bytes, any depth).
    public static func sha256(ofFile base: String, _ rel: String) -> String? {
        let fd = rel.isEmpty ? Glibc.open(base, O_RDONLY | O_CLOEXEC) : PathAt.open(base, rel, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var h = SHA256()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf.baseAddress, buf.count)
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        return h.finalize().hexString
    }
}
