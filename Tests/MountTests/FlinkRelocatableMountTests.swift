import FlinkFixtures
import FlinkMetadata
import Foundation
import SnapStore
import XCTest

/// `user.snapfs.object` of a file in the mount: where its bytes are in the store.
func storePathOf(_ path: String) -> String? {
    let r = Command.run("/usr/bin/getfattr", ["--only-values", "-n", "user.snapfs.object", path])
    return r.ok ? r.out : nil
}

/// A Flink snapshot's directory in the mount is Flink's relocatable savepoint layout: `cp -a MNT/S`, and `mv MNT/S`
/// out of the mount (EXDEV: copy, then `rm -r`, the checked delete), leave a directory whose `_metadata` names every
/// file relative to it, each file inside the copy with the bytes and length Flink needs; the files are the ones
/// Flink's own deserializer named for the snapshot (the fixtures' truth).
final class FlinkRelocatableMountTests: MountTestCase {
    /// One file of a snapshot as the truth has it: store-relative path, the length Flink needs, and whether exactly.
    struct Needed: Hashable {
        var path: String
        var size: Int64
        var exact: Bool
    }

    private func sha(_ path: String) -> String { Store.sha256(ofFile: path) ?? "unreadable \(path)" }

    private func length(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : -1
    }

    /// Regular files below `dir`, relative to it.
    private func files(_ dir: String) -> Set<String> {
        Set(treeDigest(dir).filter { $0.value != "dir" }.keys)
    }

    /// Checks that `copy` is the relocatable layout of the snapshot in store directory `directory` and holds exactly
    /// the files `truth` names, each with the store's bytes. Returns nothing; every difference is a failure.
    private func checkRelocatable(_ copy: String, directory: String, pathMap: PathMap, truth: Set<Needed>, _ what: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let copied = try MetadataReader.read(try Data(contentsOf: URL(fileURLWithPath: copy + "/_metadata")))
        let originalDirectory = w.s + "/" + directory
        let original = try MetadataReader.read(try Data(contentsOf: URL(fileURLWithPath: originalDirectory + "/_metadata")))
        XCTAssertEqual(copied.version, original.version, "\(what): the version the snapshot had", file: file, line: line)
        XCTAssertEqual(copied.checkpointId, original.checkpointId, what, file: file, line: line)
        XCTAssertEqual(copied.properties, original.properties, what, file: file, line: line)

        // Handle by handle, in file order: each copied handle is relative and its file in the copy has the bytes the
        // original handle's file has in the store.
        var copiedHandles: [StateHandle] = [], originalHandles: [StateHandle] = []
        copied.visitHandles { if $0.isFileBacked { copiedHandles.append($0) } }
        original.visitHandles { if $0.isFileBacked { originalHandles.append($0) } }
        XCTAssertEqual(copiedHandles.count, originalHandles.count, what, file: file, line: line)
        XCTAssertFalse(copiedHandles.isEmpty, "\(what): a snapshot with files", file: file, line: line)
        var storedAs: [String: String] = [:]
        // Physical files read through segments: the furthest end the segments reach.
        var segmentEnds: [String: Int64] = [:]
        for (c, o) in zip(copiedHandles, originalHandles) {
            guard case .relativeFile = c else {
                XCTFail("\(what): a handle is not relative: \(c)", file: file, line: line)
                continue
            }
            let inCopy = try XCTUnwrap(c.resolvedFilePath(metadataDirectory: copy, pathMap: .identity))
            let inStore = try XCTUnwrap(o.resolvedFilePath(metadataDirectory: originalDirectory, pathMap: pathMap))
            guard let name = PathBytes.relative(inCopy, under: copy), let stored = PathBytes.relative(inStore, under: w.s) else {
                XCTFail("\(what): \(inCopy) is not inside the copy, or \(inStore) not inside the store", file: file, line: line)
                continue
            }
            XCTAssertEqual(storedAs[name] ?? stored, stored, "\(what): one name for two files", file: file, line: line)
            storedAs[name] = stored
            if case .fileSegment(let segment) = o {
                // A segment: a file of its own holding exactly that range of the physical file.
                let whole = try Data(contentsOf: URL(fileURLWithPath: inStore))
                let range = Int(segment.startPosition)..<Int(segment.startPosition + segment.size)
                XCTAssertTrue(range.upperBound <= whole.count, "\(what): \(stored) holds the segment", file: file, line: line)
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: inCopy)), whole.subdata(in: range.clamped(to: 0..<whole.count)),
                               "\(what): \(name) holds bytes \(range) of \(stored)", file: file, line: line)
                segmentEnds[stored] = max(segmentEnds[stored] ?? 0, segment.startPosition + segment.size)
            } else {
                XCTAssertEqual(sha(inCopy), sha(inStore), "\(what): \(name) holds the bytes of \(stored)", file: file, line: line)
            }
        }
        // Each file the copied `_metadata` names is inside the copy with the length Flink's rule asks.
        for ref in copied.referencedFiles(metadataDirectory: copy, pathMap: .identity) {
            let n = length(ref.path)
            XCTAssertTrue(ref.kind.isExact ? n == ref.size : n >= ref.size,
                          "\(what): \(ref.path) is \(n) bytes, needs \(ref.kind.isExact ? "" : "at least ")\(ref.size)", file: file, line: line)
        }
        // Nothing else in the copy; and the files are those Flink's own deserializer named.
        XCTAssertEqual(files(copy), Set(storedAs.keys).union(["_metadata"]), what, file: file, line: line)
        XCTAssertEqual(Set(storedAs.values), Set(truth.map(\.path)), "\(what): the truth's files", file: file, line: line)
        let nameOf = Dictionary(storedAs.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        for t in truth {
            if let end = segmentEnds[t.path] {
                // Read through segments: they reach exactly as far as Flink's deserializer says the physical file must.
                XCTAssertFalse(t.exact, "\(what): \(t.path) is a physical file", file: file, line: line)
                XCTAssertEqual(end, t.size, "\(what): the furthest segment end of \(t.path)", file: file, line: line)
                continue
            }
            guard let name = nameOf[t.path] else { continue }
            let n = length(copy + "/" + name)
            XCTAssertTrue(t.exact ? n == t.size : n >= t.size, "\(what): \(t.path) as \(name) is \(n) bytes, Flink needs \(t.size)",
                          file: file, line: line)
        }
    }

    /// What `.snapfs/snapshots/S.json` says of the directory's layout.
    private func layout(_ name: String) throws -> (layout: String, detail: String) {
        let data = try Data(contentsOf: URL(fileURLWithPath: w.m + "/.snapfs/snapshots/\(name).json"))
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let view = try XCTUnwrap(report["mountView"] as? [String: Any], "\(report)")
        return (view["layout"] as? String ?? "", view["detail"] as? String ?? "")
    }

    /// Every snapshot `verify` checked, by name: restorable or not.
    private func verified() throws -> [String: Bool] {
        let r = w.snapfs(["verify", w.s, "--json"], timeout: 300)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.summary)
        var out: [String: Bool] = [:]
        for row in report["snapshots"] as? [[String: Any]] ?? [] {
            if let n = row["name"] as? String { out[n] = row["restorable"] as? Bool ?? false }
        }
        return out
    }

    private func truthOfStore(_ n: Int) throws -> [String: Set<Needed>] {
        var out: [String: Set<Needed>] = [:]
        for s in try FlinkFixtures.truth(store: n, root: "") {
            out[s.directory] = Set(s.files.map { line in
                let parts = line.split(separator: "\t")
                return Needed(path: String(parts[0].dropFirst()), size: Int64(parts[1]) ?? -1, exact: true)
            })
        }
        return out
    }

    /// The RocksDB store: `cp -a` of every restorable checkpoint and savepoint is relocatable; `mv` out of an older
    /// checkpoint and a savepoint copies and deletes; `mv` of a recovery point and of a held checkpoint copies and
    /// keeps the snapshot, reported; the store keeps every other snapshot as restorable as it was.
    func testCpAndMvOutOfEverySnapshotOfARocksDBStore() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try FlinkFixtures.copy(store: 1), to: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        let truth = try truthOfStore(1)
        let pathMap = PathMap([(from: FlinkFixtures.writtenAt, to: w.s)])
        try w.mount()
        let store = try w.openStore()
        let snapshots = try store.snapshots()
        XCTAssertEqual(snapshots.count, truth.count)
        // Every snapshot is restorable but one savepoint, 14 of whose 16 files Flink removed (see the fixture's README).
        let before = try verified()
        XCTAssertEqual(before.filter { !$0.value }.map(\.key), ["savepoint-c4f302-ffe50290a9b7"])
        let copies = w.root.appendingPathComponent("copies").path
        try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true)
        for s in snapshots where before[s.name] == true {
            let directory = try XCTUnwrap(s.directory)
            let cp = Command.sh("cp -a \(shellQuote(w.m + "/" + s.name)) \(shellQuote(copies))/")
            XCTAssertTrue(cp.ok, "\(s.name): \(cp.summary)")
            try checkRelocatable(copies + "/" + s.name, directory: directory, pathMap: pathMap, truth: try XCTUnwrap(truth[directory]), s.name)
            XCTAssertEqual(try layout(s.name).layout, "relocatable", s.name)
        }
        // Through by-job/ the same tree.
        let viewed = Command.sh("cmp \(shellQuote(w.m + "/by-job/c4f302458e6451f29e233030dfe8535c/chk-12/_metadata")) \(shellQuote(copies + "/c4f302-chk-12/_metadata"))")
        XCTAssertTrue(viewed.ok, viewed.summary)
        // The store's own paths stay on each file.
        let object = Command.sh("cd \(shellQuote(w.m + "/c4f302-chk-12")) && for f in *; do getfattr --only-values -n user.snapfs.object \"$f\" 2>/dev/null; echo; done")
        XCTAssertTrue(object.out.contains("checkpoints/c4f302458e6451f29e233030dfe8535c/shared/"), object.summary)

        let archive = w.root.appendingPathComponent("archive").path
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        func mv(_ name: String) -> Run { Command.sh("mv \(shellQuote(w.m + "/" + name)) \(shellQuote(archive))/") }

        // An older checkpoint and a savepoint: copied, then deleted through the checked path.
        let moved = ["c4f302-chk-12", "savepoint-c4f302-a3c72ffbb47e"]
        for name in moved {
            let s = try XCTUnwrap(snapshots.first { $0.name == name })
            let run = mv(name)
            XCTAssertTrue(run.ok, "\(name): \(run.summary)")
            // The tree `cp -a` gave and the check above passed (the files only it needed are gone from the store now).
            XCTAssertEqual(treeDigest(archive + "/" + name), treeDigest(copies + "/" + name), "mv \(name)")
            XCTAssertEqual(files(archive + "/" + name).count, Set(try XCTUnwrap(truth[s.directory!]).map(\.path)).count + 1, "mv \(name)")
            XCTAssertThrowsError(try store.snapshot(named: name), name)
            XCTAssertFalse(w.rootNames().contains(name))
        }

        // The recovery point (no JobManager: each job's newest checkpoint) stays, reported; the copy is complete.
        let rp = "c4f302-chk-13"
        let refused = mv(rp)
        XCTAssertFalse(refused.ok, "mv must report the refused delete")
        XCTAssertTrue(refused.err.contains("Device or resource busy"), refused.summary)
        XCTAssertNoThrow(try store.snapshot(named: rp))
        let rpDirectory = try XCTUnwrap(snapshots.first { $0.name == rp }?.directory)
        try checkRelocatable(archive + "/" + rp, directory: rpDirectory, pathMap: pathMap, truth: truth[rpDirectory]!, "mv \(rp)")
        XCTAssertTrue(w.snapfs(["events", w.s]).out.contains("recovery point"))

        // A held checkpoint alike.
        let held = "e9201c-chk-12"
        XCTAssertTrue(Command.sh("setfattr -n user.snapfs.hold -v 'keep for audit' \(shellQuote(w.m + "/" + held))").ok)
        let heldMove = mv(held)
        XCTAssertFalse(heldMove.ok)
        XCTAssertTrue(heldMove.err.contains("Device or resource busy"), heldMove.summary)
        XCTAssertNoThrow(try store.snapshot(named: held))
        let heldDirectory = try XCTUnwrap(snapshots.first { $0.name == held }?.directory)
        try checkRelocatable(archive + "/" + held, directory: heldDirectory, pathMap: pathMap, truth: truth[heldDirectory]!, "mv \(held)")
        let report = try String(contentsOfFile: w.m + "/.snapfs/snapshots/\(held).json", encoding: .utf8)
        XCTAssertTrue(report.contains("keep for audit"), report)

        // Every other snapshot is still restorable, and still relocatable through the mount.
        var expected = before
        for name in moved { expected[name] = nil }
        XCTAssertEqual(try verified(), expected)
        let again = w.root.appendingPathComponent("again").path
        try FileManager.default.createDirectory(atPath: again, withIntermediateDirectories: true)
        XCTAssertTrue(Command.sh("cp -a \(shellQuote(w.m + "/c4f302-chk-11")) \(shellQuote(again))/").ok)
        let eleven = try XCTUnwrap(snapshots.first { $0.name == "c4f302-chk-11" }?.directory)
        try checkRelocatable(again + "/c4f302-chk-11", directory: eleven, pathMap: pathMap, truth: truth[eleven]!, "c4f302-chk-11 after the moves")
    }

    /// The second store (job E restored from A's newest checkpoint in CLAIM mode, which left A's older checkpoints and
    /// NATIVE savepoint without files): `cp -a` of every restorable snapshot is relocatable, holding exactly the
    /// files Flink's deserializer named.
    func testCpOfEverySnapshotOfAStoreWithAClaimRestore() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try FlinkFixtures.copy(store: 2), to: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        let truth = try truthOfStore(2)
        let pathMap = PathMap([(from: FlinkFixtures.writtenAt, to: w.s)])
        try w.mount()
        let snapshots = try w.openStore().snapshots()
        XCTAssertEqual(snapshots.count, truth.count)
        let restorable = try verified()
        // A's chk-11, chk-12 and NATIVE savepoint lost files to E's claim (see the fixture's README).
        XCTAssertEqual(restorable.filter { !$0.value }.count, 3, "\(restorable)")
        let copies = w.root.appendingPathComponent("copies").path
        try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true)
        for s in snapshots where restorable[s.name] == true {
            let directory = try XCTUnwrap(s.directory)
            let cp = Command.sh("cp -a \(shellQuote(w.m + "/" + s.name)) \(shellQuote(copies))/")
            XCTAssertTrue(cp.ok, "\(s.name): \(cp.summary)")
            try checkRelocatable(copies + "/" + s.name, directory: directory, pathMap: pathMap, truth: try XCTUnwrap(truth[directory]), s.name)
            XCTAssertEqual(try layout(s.name).layout, "relocatable", s.name)
        }
    }

    /// Every layout Flink 2.3 writes: `cp -a` of every restorable snapshot is relocatable (file-merging checkpoints
    /// too, each segment a file of its own); `mv` out of an older checkpoint of each layout copies and deletes, and the
    /// rest of the store stays as restorable as it was.
    func testCpAndMvOutOfEveryLayout() throws {
        for layout in LayoutFixtures.layouts {
            let truth = try LayoutFixtures.truth(layout)
            w.unmount()
            try FileManager.default.removeItem(at: w.storeDir)
            try FileManager.default.moveItem(at: try LayoutFixtures.copy(layout, under: w.root), to: w.storeDir)
            let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(LayoutFixtures.writtenAt(layout))=\(w.s)"])
            XCTAssertTrue(created.ok, created.summary)
            let pathMap = PathMap([(from: LayoutFixtures.writtenAt(layout), to: w.s)])
            try w.mount()
            let store = try w.openStore()
            let snapshots = try store.snapshots()
            let copies = w.root.appendingPathComponent("copies-\(layout)").path
            try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true)
            var relocatable = 0
            func needed(_ t: LayoutFixtures.Snapshot) -> Set<Needed> {
                Set(t.files.map { Needed(path: $0.path, size: $0.required, exact: $0.rule == .exact) })
            }
            for s in snapshots {
                guard let t = truth.first(where: { $0.directory == s.directory }), t.restorable else { continue }
                let cp = Command.sh("cp -a \(shellQuote(w.m + "/" + s.name)) \(shellQuote(copies))/")
                XCTAssertTrue(cp.ok, "\(layout) \(s.name): \(cp.summary)")
                let shown = try self.layout(s.name)
                XCTAssertEqual(shown.layout, "relocatable", "\(layout) \(s.name): \(shown.detail)")
                try checkRelocatable(copies + "/" + s.name, directory: t.directory, pathMap: pathMap, truth: needed(t), "\(layout) \(s.name)")
                relocatable += 1
            }
            XCTAssertGreaterThan(relocatable, 0, layout)

            // mv out of a restorable checkpoint that is not its job's newest (with no JobManager, the newest is the
            // job's protected recovery point).
            var candidates: [Snapshot] = []
            for (_, checkpoints) in Dictionary(grouping: snapshots.filter { $0.kind == .checkpoint }, by: { $0.job ?? "" }) {
                let ordered = checkpoints.sorted { Int($0.externalID ?? "") ?? 0 < Int($1.externalID ?? "") ?? 0 }
                candidates += ordered.dropLast().filter { c in truth.first { $0.directory == c.directory }?.restorable == true }
            }
            let oldest = try XCTUnwrap(candidates.sorted { $0.name < $1.name }.first, layout)
            let t = try XCTUnwrap(truth.first { $0.directory == oldest.directory })
            let before = try verified()
            let archive = w.root.appendingPathComponent("archive-\(layout)").path
            try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
            let mv = Command.sh("mv \(shellQuote(w.m + "/" + oldest.name)) \(shellQuote(archive))/")
            XCTAssertTrue(mv.ok, "\(layout) \(oldest.name): \(mv.summary)")
            // The tree checked above (its store files are gone now, those only it needed).
            XCTAssertEqual(treeDigest(archive + "/" + oldest.name), treeDigest(copies + "/" + oldest.name), "mv \(layout) \(oldest.name)")
            if !t.files.contains(where: { $0.rule == .atLeast && layout == "file-merging" }) {
                XCTAssertEqual(files(archive + "/" + oldest.name).count, Set(t.files.map(\.path)).count + 1, "mv \(layout) \(oldest.name)")
            }
            XCTAssertThrowsError(try store.snapshot(named: oldest.name))
            var after = try verified()
            XCTAssertNil(after.removeValue(forKey: oldest.name))
            var expected = before
            expected[oldest.name] = nil
            XCTAssertEqual(after, expected, "\(layout): every other snapshot as restorable as before")
        }
    }

    /// The file-merging store: each checkpoint's segments are files of their own in the mount. Their `stat` lengths are
    /// the segments' before any of them is read; `cp -a`, `tar` and `mv` out of the mount give copies whose `_metadata`
    /// holds relative handles only, each file inside the copy holding exactly its segment's bytes; the files are the
    /// physical files Flink's deserializer named, the segments reaching exactly as far as it says.
    func testFileMergingCheckpointsAreRelocatable() throws {
        let layout = "file-merging"
        let truth = try LayoutFixtures.truth(layout)
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try LayoutFixtures.copy(layout, under: w.root), to: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(LayoutFixtures.writtenAt(layout))=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        let pathMap = PathMap([(from: LayoutFixtures.writtenAt(layout), to: w.s)])
        try w.mount()
        let store = try w.openStore()
        let snapshots = try store.snapshots()
        let copies = w.root.appendingPathComponent("cp").path, tars = w.root.appendingPathComponent("tar").path
        for d in [copies, tars] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        var merged: [Snapshot] = []
        var segmentFiles = 0
        for s in snapshots {
            guard let t = truth.first(where: { $0.directory == s.directory }), t.restorable,
                  t.files.contains(where: { $0.rule == .atLeast }) else { continue }
            merged.append(s)
            let dir = w.m + "/" + s.name
            // Only _metadata read so far: every file it names has its handle's length at the first stat.
            let shownMetadata = try MetadataReader.read(try Data(contentsOf: URL(fileURLWithPath: dir + "/_metadata")))
            var handles = 0
            shownMetadata.visitHandles { handle in
                guard case .relativeFile(let relative, let size) = handle else { return }
                handles += 1
                XCTAssertEqual(length(dir + "/" + relative), size, "\(s.name)/\(relative) before any read")
            }
            XCTAssertGreaterThan(handles, 0, s.name)
            let shown = try self.layout(s.name)
            XCTAssertEqual(shown.layout, "relocatable", "\(s.name): \(shown.detail)")
            XCTAssertTrue(shown.detail.contains("file-merging segments"), shown.detail)
            // The store's physical file stays named on each segment's file.
            let name = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0 != "_metadata" })
            XCTAssertTrue(storePathOf(dir + "/" + name)?.hasPrefix("checkpoints/") == true, name)

            let cp = Command.sh("cp -a \(shellQuote(dir)) \(shellQuote(copies))/")
            XCTAssertTrue(cp.ok, "\(s.name): \(cp.summary)")
            let needed = Set(t.files.map { Needed(path: $0.path, size: $0.required, exact: $0.rule == .exact) })
            try checkRelocatable(copies + "/" + s.name, directory: t.directory, pathMap: pathMap, truth: needed, "cp -a \(s.name)")
            let tar = Command.sh("mkdir -p \(shellQuote(tars + "/" + s.name)) && tar -C \(shellQuote(dir)) -cf - . | tar -C \(shellQuote(tars + "/" + s.name)) -xf -")
            XCTAssertTrue(tar.ok, "\(s.name): \(tar.summary)")
            try checkRelocatable(tars + "/" + s.name, directory: t.directory, pathMap: pathMap, truth: needed, "tar \(s.name)")
            segmentFiles += files(copies + "/" + s.name).count - 1
        }
        XCTAssertGreaterThanOrEqual(merged.count, 5, "the store's restorable file-merging checkpoints")

        // mv out of a file-merging checkpoint that is not its job's newest: copied, then deleted through the checked path.
        let ordered = merged.filter { $0.kind == .checkpoint }.sorted { Int($0.externalID ?? "") ?? 0 < Int($1.externalID ?? "") ?? 0 }
        let newest = Set(Dictionary(grouping: ordered, by: { $0.job ?? "" }).values.compactMap { $0.last?.name })
        let moving = try XCTUnwrap(ordered.first { !newest.contains($0.name) })
        let before = try verified()
        let archive = w.root.appendingPathComponent("archive").path
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        let mv = Command.sh("mv \(shellQuote(w.m + "/" + moving.name)) \(shellQuote(archive))/")
        XCTAssertTrue(mv.ok, "\(moving.name): \(mv.summary)")
        XCTAssertEqual(treeDigest(archive + "/" + moving.name), treeDigest(copies + "/" + moving.name), "mv \(moving.name)")
        XCTAssertThrowsError(try store.snapshot(named: moving.name))
        var after = try verified()
        XCTAssertNil(after.removeValue(forKey: moving.name))
        var expected = before
        expected[moving.name] = nil
        XCTAssertEqual(after, expected, "every other snapshot as restorable as before")
        print("file-merging mount: \(merged.count) checkpoints relocatable, \(segmentFiles) segment files copied by cp -a; mv \(moving.name) out")
    }
}
