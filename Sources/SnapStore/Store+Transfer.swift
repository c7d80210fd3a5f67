import Foundation
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// Moving snapshots in and out of the store and between formats: export, import, convert.
extension Store {
    /// Writes a snapshot as a canonical tree to `dir` (which must not exist or be empty): `files/`, `MANIFEST.json`,
    /// `SHA256SUMS`. Every byte is checked against the catalog's checksum as it is copied.
    public func export(_ name: String, to dir: URL, progress: ProgressHandler? = nil) throws(StoreError) -> CanonicalManifest {
        let fm = FileManager.default
        if let existing = try? fm.contentsOfDirectory(atPath: dir.path), !existing.isEmpty {
            throw .badInput("export target \(dir.path) is not empty")
        }
        do {
            return try withPin(name, what: "export to \(dir.path)") { s in
                let entries = try self.entries(of: s.id)
                let files = dir.appendingPathComponent(CanonicalManifest.filesDirectory)
                try fm.createDirectory(at: files, withIntermediateDirectories: true)
                // Every directory that gets a new name is flushed at the end, as every file is when written: an
                // export that returned is on disk, whatever file system holds it.
                var newNames = Set<String>()
                // Created below `files` a component at a time (PathAt), so names keep their bytes and depth is not
                // limited by PATH_MAX.
                func makeParent(_ rel: String) throws {
                    guard let parent = PathBytes.parent(rel) else { return }
                    guard PathAt.makeDirectories(files.path, parent) == 0 else {
                        throw StoreError.io(path: files.path + "/" + PathBytes.printable(parent), errno: errno, what: "cannot create directory")
                    }
                    newNames.insert(parent)
                }
                /// An entry's recorded owner, mode and time on its exported copy.
                func restore(_ e: SnapshotEntry, _ shown: String) throws {
                    let err = PathAt.restore(files.path, e.path, mode: e.mode, uid: e.uid, gid: e.gid, mtimeNanos: e.mtimeNanos,
                                             symlink: e.type == .symlink, xattrs: e.xattrs)
                    if err != 0 { throw StoreError.io(path: shown, errno: err, what: "cannot set owner, mode or time of") }
                }
                let total = entries.reduce(Int64(0)) { $0 + ($1.type == .file ? $1.size : 0) }
                var done: Int64 = 0
                var dirs: [SnapshotEntry] = []
                var exported: [ObjectID: String] = [:]
                /// SHA-256s computed by this export (files stored with holes have none until asked), for SHA256SUMS.
                var computed: [ObjectID: String] = [:]
                for e in entries {
                    let shown = files.path + "/" + PathBytes.printable(e.path)
                    try makeParent(e.path)
                    switch e.type {
                    case .directory:
                        guard PathAt.makeDirectories(files.path, e.path) == 0 else { throw StoreError.io(path: shown, errno: errno, what: "cannot create directory") }
                        dirs.append(e)
                    case .symlink:
                        guard PathAt.symlink(e.symlinkTarget ?? "", files.path, e.path) == 0 else { throw StoreError.io(path: shown, errno: errno, what: "cannot create link") }
                        try restore(e, shown)
                    case .fifo, .device:
                        guard PathAt.mknod(files.path, e.path, mode: e.mode, rdev: e.rdev ?? 0) == 0 else {
                            throw StoreError.io(path: shown, errno: errno, what: "cannot create \(e.type == .fifo ? "FIFO" : "device node")")
                        }
                        try restore(e, shown)
                    case .file:
                        guard let op = e.objectPath else { throw StoreError.corrupt("file '\(PathBytes.printable(e.path))' of \(name) has no stored object") }
                        // A second name of one object is a hard link, as it was in the state.
                        if let obj = e.object, let first = exported[obj] {
                            if PathAt.link(files.path, first, e.path) == 0 { continue }
                            guard errno == ENAMETOOLONG else { throw StoreError.io(path: shown, errno: errno, what: "cannot create hard link") }
                        }
                        if let obj = e.object { exported[obj] = e.path }
                        let sha = try Self.copyChecked(from: (root.path, op), sha256: e.sha256, sparseDigest: e.sparseDigest,
                                                       to: (files.path, e.path), mode: e.mode, mtime: e.mtimeNanos,
                                                       owner: (e.uid, e.gid), xattrs: e.xattrs, what: e.path)
                        if e.sha256 == nil, let obj = e.object {
                            computed[obj] = sha
                            if e.sparseDigest != nil { self.recordSHA256(sha, of: obj) }
                        }
                        done += e.size
                        progress?(done, total, e.path)
                    }
                }
                // Directories last, deepest first: creating their entries changed their times.
                for e in dirs.reversed() { try restore(e, files.path + "/" + PathBytes.printable(e.path)) }
                if let r = s.root {
                    let e = PathAt.restore(files.path, "", mode: r.mode, uid: r.uid, gid: r.gid,
                                           mtimeNanos: r.mtimeNanos ?? Int64(s.createdAt * 1e9), symlink: false, xattrs: r.xattrs)
                    if e != 0 { throw StoreError.io(path: files.path, errno: e, what: "cannot set owner, mode or time of") }
                }
                var manifest = CanonicalManifest(snapshot: s, entries: entries.map {
                    .init(path: $0.path, type: $0.type, size: $0.size, mode: $0.mode, mtimeNanos: $0.mtimeNanos,
                          sha256: $0.sha256 ?? $0.object.flatMap { computed[$0] }, target: $0.symlinkTarget,
                          rdev: $0.rdev, uid: $0.uid, gid: $0.gid, xattrs: $0.xattrs)
                })
                manifest.root = s.root
                manifest.markHardLinks(objects: entries.map(\.object))
                let omitted = try omissions(of: s.id)
                manifest.notHeld = omitted.isEmpty ? nil : omitted
                try Durability.writeFile(dir.appendingPathComponent(CanonicalManifest.fileName).path, try manifest.encoded())
                try Durability.writeFile(dir.appendingPathComponent(CanonicalManifest.sumsFileName).path, manifest.sha256sums())
                try Durability.syncAncestors(files.path, newNames)
                try Durability.syncDirectories([dir.path, Durability.parent(dir.path)])
                recordEvent("export", snapshot: name, "exported to \(dir.path)")
                return manifest
            }
        } catch { throw .wrap(error, "cannot export \(name)") }
    }

    /// Brings an exported canonical snapshot into this store as a user-induced canonical snapshot, checking every checksum.
    public func importCanonical(from dir: URL, label: String?, progress: ProgressHandler? = nil) throws(StoreError) -> Snapshot {
        let manifest = try CanonicalManifest.load(from: dir)
        var expected: [String: String] = [:]
        for e in manifest.entries where e.type == .file { expected[e.path] = e.sha256 }
        let filesDir = dir.appendingPathComponent(CanonicalManifest.filesDirectory)
        var source = FileTreeSource(root: filesDir, expected: expected)
        source.inherited = manifest.notHeld ?? []
        source.recorded = manifest.recorded
        source.recordedRoot = manifest.root
        let scanned = Set(try source.scan().filter { $0.type == .file }.map(\.path))
        if let missing = expected.keys.sorted().first(where: { !scanned.contains($0) }) {
            throw .badInput("\(dir.path): file '\(PathBytes.printable(missing))' named in the manifest is missing")
        }
        if let extra = scanned.sorted().first(where: { expected[$0] == nil }) {
            throw .badInput("\(dir.path): file '\(PathBytes.printable(extra))' is not in the manifest")
        }
        var builder = SnapshotBuilder(store: self)
        builder.attempts = 1
        let s = try builder.build(from: source, format: .canonical, kind: .user, label: label ?? availableLabel(manifest.name),
                                  job: manifest.job, progress: progress)
        recordEvent("import", snapshot: s.name, "imported from \(dir.path)")
        return s
    }

    /// Writes a new user-induced snapshot with the content of `name` in another format (the FLIP's conversion tool).
    public func convert(_ name: String, to format: SnapshotFormat, label: String?, progress: ProgressHandler? = nil) throws(StoreError) -> Snapshot {
        do {
            return try withPin(name, what: "convert to \(format.rawValue)") { s in
                if format == .nativeIncremental {
                    throw StoreError.badInput("convert produces native-full or canonical snapshots; native-incremental is what the engine writes")
                }
                let src = try StoredSnapshotSource(store: self, snapshot: s)
                var b = SnapshotBuilder(store: self)
                b.attempts = 1
                let out = try b.build(from: src, format: format, kind: .user, label: label, job: s.job, progress: progress)
                recordEvent("convert", snapshot: out.name, "converted from \(name) (\(s.format.rawValue) → \(format.rawValue))")
                return out
            }
        } catch { throw .wrap(error, "cannot convert \(name)") }
    }

    /// A label not yet taken in this store, derived from `name`.
    func availableLabel(_ name: String) -> String? {
        guard (try? SnapshotName.validateLabel(name)) != nil else { return nil }
        if (try? snapshot(named: name)) == nil { return name }
        for i in 1...1000 where (try? snapshot(named: "\(name)-\(i)")) == nil { return "\(name)-\(i)" }
        return nil
    }

    /// Copies `src` (a base directory and a path below it) to `dst`, holes kept, checking the bytes as they go
    /// against `sparseDigest` when there is one (holes cost nothing), else against `sha256`. Returns the bytes'
    /// SHA-256: `sha256`, or computed on the way when it is not known (an export's `SHA256SUMS` needs it).
    @discardableResult
    static func copyChecked(from src: (base: String, rel: String), sha256: String?, sparseDigest: String? = nil,
                            to dst: (base: String, rel: String),
                            mode: UInt32, mtime: Int64, owner: (uid: UInt32?, gid: UInt32?) = (nil, nil),
                            xattrs: ExtendedAttributes? = nil, what: String) throws -> String {
        let checksSHA256 = sparseDigest == nil && sha256 != nil
        var source = FileTreeSource(root: URL(fileURLWithPath: src.base), expected: checksSHA256 ? [src.rel: sha256!] : [:])
        if let d = sparseDigest { source.expectedSparse = [src.rel: d] }
        var hasher = sha256 == nil ? SHA256() : nil
        let fd = PathAt.open(dst.base, dst.rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let dstShown = dst.base + "/" + PathBytes.printable(dst.rel)
        guard fd >= 0 else { throw StoreError.io(path: dstShown, errno: errno, what: "cannot create") }
        do {
            defer { close(fd) }
            var out = SparseWriter(fd: fd, shown: dstShown)
            _ = try source.readExtents(SourceEntry(path: src.rel, type: .file, size: 0, mode: 0, mtimeNanos: 0,
                                                   sha256: checksSHA256 ? sha256 : nil)) { chunk in
                switch chunk {
                case .data(let bytes): hasher?.update(bufferPointer: bytes); try out.write(bytes)
                case .hole(let n): hasher?.updateZeros(n); out.skip(n)
                }
            }
            _ = try out.finish()
            if owner.uid != nil || owner.gid != nil {
                // Before the mode: a chown clears set-id bits. Only root may give a file away; anyone else keeps it.
                if fchown(fd, owner.uid ?? UInt32.max, owner.gid ?? UInt32.max) != 0, errno != EPERM {
                    throw StoreError.io(path: dstShown, errno: errno, what: "cannot set owner of")
                }
            }
            if let x = xattrs, !x.isEmpty {
                let e = x.apply(fd: fd)
                if e != 0 { throw StoreError.io(path: dstShown, errno: e, what: "cannot set extended attributes of") }
            }
            setTimes(fd: fd, mode, mtime)
            try Durability.sync(fd: fd, path: dstShown)
            return sha256 ?? hasher!.finalize().hexString
        } catch SourceProblem.checksumMismatch(_, let want, let got) {
            throw StoreError.corrupt("stored bytes of '\(PathBytes.printable(what))' do not match their checksum (expected \(want), found \(got))")
        } catch SourceProblem.vanished {
            throw StoreError.corrupt("stored object of '\(PathBytes.printable(what))' is missing (\(src.base)/\(PathBytes.printable(src.rel)))")
        }
    }

    /// An open file's mode and times, set before it is flushed so they are durable with its bytes.
    static func setTimes(fd: Int32, _ mode: UInt32, _ mtime: Int64) {
        fchmod(fd, mode_t(mode & 0o7777))
        let ts = timespec(tv_sec: Int(mtime / 1_000_000_000), tv_nsec: Int(mtime % 1_000_000_000))
        var times = [ts, ts]
        futimens(fd, &times)
    }
}
