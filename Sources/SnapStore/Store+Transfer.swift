import Foundation
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
                // Every directory that gets a new name is flushed at the end, as every file is when written: an
                // export that returned is on disk, whatever file system holds it.
                var newNames = Set(try Durability.makeDirectories(files.path) + [dir.path, files.path])
                let total = entries.reduce(Int64(0)) { $0 + ($1.type == .file ? $1.size : 0) }
                var done: Int64 = 0
                var dirs: [(String, SnapshotEntry)] = []
                for e in entries {
                    let target = files.path + "/" + e.path
                    switch e.type {
                    case .directory:
                        newNames.formUnion(try Durability.makeDirectories(target))
                        dirs.append((target, e))
                    case .symlink:
                        newNames.formUnion(try Durability.makeDirectories(Durability.parent(target)))
                        newNames.insert(Durability.parent(target))
                        guard symlink(e.symlinkTarget ?? "", target) == 0 else { throw StoreError.io(path: target, errno: errno, what: "cannot create link") }
                    case .file:
                        guard let op = e.objectPath else { throw StoreError.corrupt("file '\(e.path)' of \(name) has no stored object") }
                        newNames.formUnion(try Durability.makeDirectories(Durability.parent(target)))
                        newNames.insert(Durability.parent(target))
                        try Self.copyChecked(from: root.path + "/" + op, sha256: e.sha256, to: target, mode: e.mode, mtime: e.mtimeNanos, what: e.path)
                        done += e.size
                        progress?(done, total, e.path)
                    }
                }
                for (path, e) in dirs.reversed() { Self.setTimes(path, e.mode, e.mtimeNanos, symlink: false) }
                let manifest = CanonicalManifest(snapshot: s, entries: entries.map {
                    .init(path: $0.path, type: $0.type, size: $0.size, mode: $0.mode, mtimeNanos: $0.mtimeNanos, sha256: $0.sha256, target: $0.symlinkTarget)
                })
                try Durability.writeFile(dir.appendingPathComponent(CanonicalManifest.fileName).path, try manifest.encoded())
                try Durability.writeFile(dir.appendingPathComponent(CanonicalManifest.sumsFileName).path, Data(manifest.sha256sums().utf8))
                try Durability.syncDirectories(newNames)
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
        let source = FileTreeSource(root: filesDir, expected: expected)
        let scanned = Set(try source.scan().filter { $0.type == .file }.map(\.path))
        if let missing = expected.keys.sorted().first(where: { !scanned.contains($0) }) {
            throw .badInput("\(dir.path): file '\(missing)' named in the manifest is missing")
        }
        if let extra = scanned.sorted().first(where: { expected[$0] == nil }) {
            throw .badInput("\(dir.path): file '\(extra)' is not in the manifest")
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

    static func copyChecked(from src: String, sha256: String?, to dst: String, mode: UInt32, mtime: Int64, what: String) throws {
        let source = FileTreeSource(root: URL(fileURLWithPath: (src as NSString).deletingLastPathComponent),
                                    expected: sha256.map { [(src as NSString).lastPathComponent: $0] } ?? [:])
        let fd = Glibc.open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.io(path: dst, errno: errno, what: "cannot create") }
        do {
            defer { close(fd) }
            _ = try source.read(SourceEntry(path: (src as NSString).lastPathComponent, type: .file, size: 0, mode: 0, mtimeNanos: 0, sha256: sha256)) { chunk in
                var off = 0
                while off < chunk.count {
                    let n = write(fd, chunk.baseAddress! + off, chunk.count - off)
                    if n < 0 { if errno == EINTR { continue }; throw StoreError.io(path: dst, errno: errno, what: "cannot write") }
                    off += n
                }
            }
            setTimes(fd: fd, mode, mtime)
            try Durability.sync(fd: fd, path: dst)
        } catch SourceProblem.checksumMismatch(_, let want, let got) {
            throw StoreError.corrupt("stored bytes of '\(what)' do not match their checksum (expected \(want), found \(got))")
        } catch SourceProblem.vanished {
            throw StoreError.corrupt("stored object of '\(what)' is missing (\(src))")
        }
    }

    /// An open file's mode and times, set before it is flushed so they are durable with its bytes.
    static func setTimes(fd: Int32, _ mode: UInt32, _ mtime: Int64) {
        fchmod(fd, mode_t(mode & 0o7777))
        let ts = timespec(tv_sec: Int(mtime / 1_000_000_000), tv_nsec: Int(mtime % 1_000_000_000))
        var times = [ts, ts]
        futimens(fd, &times)
    }

    static func setTimes(_ path: String, _ mode: UInt32, _ mtime: Int64, symlink: Bool) {
        if !symlink { chmod(path, mode_t(mode & 0o7777)) }
        let ts = timespec(tv_sec: Int(mtime / 1_000_000_000), tv_nsec: Int(mtime % 1_000_000_000))
        var times = [ts, ts]
        utimensat(AT_FDCWD, path, &times, symlink ? AT_SYMLINK_NOFOLLOW : 0)
    }
}
