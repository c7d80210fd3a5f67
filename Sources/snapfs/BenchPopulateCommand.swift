import ArgumentParser
import Foundation
import LocalEngine
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Fills a store with many small snapshots in one process, for `Scripts/bench` (a root holding thousands of
/// snapshots; delete and move as the store grows). Each snapshot has the same shape as a native-incremental one:
/// `--files` entries, of which `--changed` get new objects and the rest reference the previous snapshot's objects.
/// Snapshots are committed through the store's ordinary path (catalog rows, references, events), but their few
/// bytes are not flushed to disk one snapshot at a time as the engine does; the store is synced once at the end.
struct BenchPopulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-populate",
                                                    abstract: "Add many small snapshots to a store (for benchmarks).",
                                                    shouldDisplay: false)
    @OptionGroup var options: StoreOptions
    @Option(help: "Snapshots to add.") var count: Int
    @Option(help: "Files in each snapshot.") var files = 4
    @Option(help: "Files new in each snapshot (the rest are shared with the previous one).") var changed = 1
    @Option(help: "Bytes in each new file.") var size = 1024
    @Option(help: "checkpoint or user (user snapshots are never removed by retention).") var kind = "user"
    @Option(help: "Seed for the files' content and the object names.") var seed: UInt64 = 1
    @Flag(help: "Continue the chain of the store's newest snapshot (made by this command): its files are the start, so even the first snapshot added rewrites only --changed of them.")
    var continueChain = false

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard files >= 1, changed >= 0, changed <= files else { throw ValidationError("need 1 <= --files and 0 <= --changed <= --files") }
        guard size >= 0 else { throw ValidationError("--size must be at least 0") }
        guard SnapshotKind(rawValue: kind) != nil else { throw ValidationError("--kind must be checkpoint or user") }
    }

    func run() throws {
        let store = try options.open()
        let kind = SnapshotKind(rawValue: kind)!
        var rng = SplitMix64(seed: seed)
        var current: [ObjectID?] = Array(repeating: nil, count: files)
        // Where in the rotation of rewritten files the chain stands: 0 starts a new chain with every file new.
        var position = 0
        if continueChain {
            let existing = try CLI.run { () throws(StoreError) in try store.snapshots() }
            if let newest = existing.last {
                let entries = try CLI.run { () throws(StoreError) in try store.entries(of: newest.id) }
                for e in entries {
                    if let i = Int(e.path.dropFirst().dropLast(4)), e.path.hasPrefix("f"), i < files { current[i] = e.object }
                }
                if current.allSatisfy({ $0 != nil }) { position = existing.count }
            }
        }
        let started = Date()
        for step in 0..<count {
            let n = position + step
            let pending = try CLI.run { () throws(StoreError) in
                try store.beginSnapshot(label: nil, kind: kind, format: .nativeIncremental, job: "bench")
            }
            // The first snapshot writes every file; each later one rewrites `changed` of them, in turn.
            let fresh: [Int] = n == 0 ? Array(0..<files) : (0..<changed).map { (n * changed + $0) % files }
            var paths: [(path: String, size: Int64)] = []
            for _ in fresh {
                let hex = String(format: "%016llx%016llx", rng.next(), rng.next())
                paths.append(("\(Store.objectsDirectory)/\(hex.prefix(2))/\(hex)", Int64(size)))
            }
            let ids = try CLI.run { () throws(StoreError) in try pending.reserveObjects(paths) }
            var checksums: [ObjectID: (size: Int64, sha256: String)] = [:]
            for (k, f) in fresh.enumerated() {
                let abs = store.root.path + "/" + paths[k].path
                try writeObject(abs, bytes: content(&rng))
                guard let sha = Store.sha256(ofFile: abs) else {
                    CLI.fail(.io(path: abs, errno: EIO, what: "cannot read back object")); throw ExitCode(8)
                }
                checksums[ids[k]] = (Int64(size), sha)
                current[f] = ids[k]
            }
            let mtime = Int64(started.timeIntervalSince1970) * 1_000_000_000 + Int64(step)
            let entries = (0..<files).map { i in
                NewEntry(path: String(format: "f%05d.dat", i), type: .file, size: Int64(size), mode: UInt32(S_IFREG) | 0o644,
                         mtimeNanos: mtime, object: current[i])
            }
            _ = try CLI.run { () throws(StoreError) in try pending.commit(entries: entries, checksums: checksums) }
        }
        let fd = open(store.root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        sync()
        let secs = Date().timeIntervalSince(started)
        print(String(format: "added %d snapshots in %.2f s", count, secs))
    }

    private func content(_ rng: inout SplitMix64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        var i = 0
        while i < size {
            var v = rng.next()
            for _ in 0..<8 where i < size { bytes[i] = UInt8(truncatingIfNeeded: v); v >>= 8; i += 1 }
        }
        return bytes
    }

    private func writeObject(_ path: String, bytes: [UInt8]) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { CLI.fail(.io(path: path, errno: errno, what: "cannot create object")); throw ExitCode(8) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let w = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    CLI.fail(.io(path: path, errno: errno, what: "cannot write object")); throw ExitCode(8)
                }
                off += w
            }
        }
    }
}
