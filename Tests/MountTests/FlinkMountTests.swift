import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// A Flink store through the mount: changelog files (longer than Flink's handles say) reach a backup whole, and a
/// file-merging checkpoint's segments each as a file of its own.
final class FlinkMountTests: MountTestCase {
    /// `tar` of every snapshot through the mount extracts byte-identical to the store's own files, changelog files
    /// (one byte longer than their handles) included; a segment of a shared physical file (longer than any snapshot's
    /// segments) extracts as exactly its range of the physical file.
    func testTarOfEverySnapshotIsByteIdenticalToTheStore() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.createDirectory(at: w.storeDir, withIntermediateDirectories: true)
        let truth = try SyntheticFlinkStore.write(at: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(SyntheticFlinkStore.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        try w.mount()

        // Every snapshot is shown as Flink's relocatable layout (every file beside `_metadata`); a file-merging
        // checkpoint's segments each as `<physical file>-<start>-<length>`.
        let dstl = "0a0a0a-chk-1/dstl-1"
        let st = try FileManager.default.attributesOfItem(atPath: w.m + "/" + dstl)
        XCTAssertEqual(st[.size] as? Int, 101, "a changelog file is served at its own length, not its handle's (100)")
        let physical = "checkpoints/\(SyntheticFlinkStore.mergingJob)/shared/physical-1"
        let segments = ["0b0b0b-chk-1": ("physical-1-0-50", 0..<50), "0b0b0b-chk-2": ("physical-1-50-70", 50..<120)]
        for (name, (file, range)) in segments {
            let size = try FileManager.default.attributesOfItem(atPath: w.m + "/" + name + "/" + file)[.size] as? Int
            XCTAssertEqual(size, range.count, "\(name)/\(file): the segment's length at the first stat")
        }

        let names = w.rootNames().filter { $0 != "latest" && $0 != "by-job" }
        XCTAssertEqual(names, ["0a0a0a-chk-1", "0a0a0a-chk-2", "0b0b0b-chk-1", "0b0b0b-chk-2"])
        let whole = try Data(contentsOf: URL(fileURLWithPath: w.s + "/" + physical))
        for name in names {
            let out = w.root.appendingPathComponent("restored/\(name)").path
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let tar = Command.sh("tar -C \(shellQuote(w.m + "/" + name)) -cf - . | tar -C \(shellQuote(out)) -xf -")
            XCTAssertTrue(tar.ok, tar.summary)
            let restored = treeDigest(out).filter { !$0.value.hasPrefix("dir") }
            let directory = truth[["0a0a0a-chk-1", "0a0a0a-chk-2", "0b0b0b-chk-1", "0b0b0b-chk-2"].firstIndex(of: name)!].directory
            if let (file, range) = segments[name] {
                XCTAssertEqual(Set(restored.keys), [file, "_metadata"], name)
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/" + file)), whole.subdata(in: range), "\(name)/\(file)")
            } else {
                // Each file under its own name (these have no two of one name).
                let needed = truth.first { $0.directory == directory }!.files.map(\.path)
                let shownAt = Dictionary(uniqueKeysWithValues: needed.map { (String($0.split(separator: "/").last!), $0) })
                XCTAssertEqual(Set(restored.keys), Set(shownAt.keys).union(["_metadata"]), name)
                for (shown, path) in shownAt.sorted(by: { $0.key < $1.key }) {
                    let original = w.s + "/" + path
                    let size = (try FileManager.default.attributesOfItem(atPath: original)[.size] as? Int) ?? -1
                    XCTAssertEqual(restored[shown], "\(size):" + (Store.sha256(ofFile: original) ?? "?"), "\(name)/\(path)")
                }
            }
            XCTAssertFalse(Store.sha256(ofFile: out + "/_metadata") == Store.sha256(ofFile: w.s + "/" + directory + "/_metadata"),
                           "\(name): _metadata names its files relative to the snapshot's directory")
        }

        // A later checkpoint appends segments to the shared physical file: a segment shown as a file of its own keeps
        // its length and bytes, though the file it is read from grew.
        let through = w.m + "/0b0b0b-chk-1/physical-1-0-50"
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: through)), whole.prefix(50))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: w.s + "/" + physical))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
        try handle.close()
        usleep(1_500_000)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: through)[.size] as? Int, 50)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: through)), whole.prefix(50))
        // Read from inside the segment: the kernel asks at offsets within it, the mount reads at the physical file's.
        let tail = Command.sh("dd if=\(shellQuote(w.m + "/0b0b0b-chk-2/physical-1-50-70")) bs=1 skip=60 2>/dev/null | od -An -tu1")
        XCTAssertEqual(tail.out.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt8($0) }, Array(whole.subdata(in: 110..<120)))
    }
}

/// The real stores of each state layout through the mount.
final class FlinkLayoutMountTests: MountTestCase {
    /// `tar` of every restorable snapshot through the mount extracts byte-identical to the store's own files: the
    /// files Flink's deserializer named, under the names the relocatable `_metadata` gives them (their store paths
    /// in `user.snapfs.object`); a file-merging checkpoint's segments each under a name of its own.
    func testTarOfEverySnapshotOfEveryLayoutIsByteIdentical() throws {
        for layout in LayoutFixtures.layouts {
            let truth = try LayoutFixtures.truth(layout)
            w.unmount()
            try FileManager.default.removeItem(at: w.storeDir)
            try FileManager.default.moveItem(at: try LayoutFixtures.copy(layout, under: w.root), to: w.storeDir)
            let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(LayoutFixtures.writtenAt(layout))=\(w.s)"])
            XCTAssertTrue(created.ok, created.summary)
            try w.mount()
            let listed = w.snapfs(["list", w.s, "--json"])
            let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [[String: Any]], listed.summary)
            XCTAssertEqual(rows.count, truth.count, layout)
            let store = try w.openStore()
            var compared = 0
            for s in try store.snapshots() {
                guard let t = truth.first(where: { $0.directory == s.directory }), t.restorable else { continue }
                let out = w.root.appendingPathComponent("restored/\(layout)/\(s.name)").path
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                let tar = Command.sh("tar -C \(shellQuote(w.m + "/" + s.name)) -cf - . | tar -C \(shellQuote(out)) -xf -")
                XCTAssertTrue(tar.ok, "\(layout) \(s.name): \(tar.summary)")
                let restored = treeDigest(out).filter { $0.value != "dir" }
                // Where each file shown is in the store: `user.snapfs.object` (every snapshot is shown in the
                // relocatable view; a file-merging checkpoint's segments each as a file of its own).
                var storePath: [String: String] = [:]
                for shown in restored.keys where shown != "_metadata" {
                    storePath[shown] = storePathOf(w.m + "/" + s.name + "/" + shown) ?? "?"
                }
                XCTAssertNotNil(restored["_metadata"], "\(layout) \(s.name)")
                XCTAssertEqual(Set(storePath.values), Set(t.files.map(\.path)), "\(layout) \(s.name)")
                let merged = t.files.contains { $0.rule == .atLeast } && layout == "file-merging"
                if merged {
                    // Segments: several files per physical file, each holding its range (checked byte for byte in
                    // FlinkRelocatableMountTests); none as long as Flink says the physical file must be.
                    XCTAssertGreaterThanOrEqual(storePath.count, Set(t.files.map(\.path)).count, "\(layout) \(s.name)")
                } else {
                    XCTAssertEqual(storePath.count, Set(t.files.map(\.path)).count, "\(layout) \(s.name): one name per file")
                }
                for (shown, path) in storePath where !merged {
                    let original = w.s + "/" + path
                    let size = (try? FileManager.default.attributesOfItem(atPath: original)[.size] as? Int) ?? -1
                    XCTAssertEqual(restored[shown], "\(size):" + (Store.sha256(ofFile: original) ?? "?"), "\(layout) \(s.name)/\(path)")
                }
                compared += 1
            }
            XCTAssertEqual(compared, truth.filter(\.restorable).count, layout)
            try FileManager.default.removeItem(atPath: w.root.appendingPathComponent("restored").path)
        }
    }
}

/// A whole cluster's store through the mount: `rm -rf` of any job's recovery point is refused with EBUSY, decided
/// from the JobManager's latest answer (polled in the background) or, without one, from each job's newest
/// checkpoint.
final class FlinkClusterMountTests: MountTestCase {
    private let jobs = ["4b913385afc25f46a0551aee1c033ec6": "4b9133-chk-5", "c4f302458e6451f29e233030dfe8535c": "c4f302-chk-13",
                        "dd758ebfe2c5e0335122d7ddaf752ba0": "dd758e-chk-17", "e9201ce7019c330de1f0d46a06815e2d": "e9201c-chk-13"]

    private func useStore1(rest: String?) throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try FlinkFixtures.copy(store: 1), to: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(w.s)"] + (rest.map { ["--rest", $0] } ?? []))
        XCTAssertTrue(created.ok, created.summary)
        try w.mount()
    }

    private func rmrf(_ name: String) -> Run { Command.sh("rm -rf \(shellQuote(w.m + "/" + name))") }

    /// Waits (up to a deadline, not a timing assertion) until the mount reports `name` deletable or not.
    private func waitDeletable(_ name: String, _ deletable: Bool) -> Bool {
        for _ in 0..<100 {
            let v = Command.run("/usr/bin/getfattr", ["--only-values", "-n", "user.snapfs.deletable", w.m + "/" + name]).out
            if v.hasPrefix(deletable ? "yes" : "no") { return true }
            usleep(200_000)
        }
        return false
    }

    func testNoJobManagerEveryJobsNewestCheckpointIsBusy() throws {
        try useStore1(rest: nil)
        for (job, newest) in jobs {
            let r = rmrf(newest)
            XCTAssertFalse(r.ok, newest)
            XCTAssertTrue(r.err.contains("Device or resource busy"), r.summary)
            XCTAssertTrue(FileManager.default.fileExists(atPath: w.s + "/checkpoints/\(job)/\(newest.split(separator: "-").last.map { "chk-\($0)" }!)/_metadata"))
            XCTAssertEqual(w.errnoOf("os.rmdir('\(w.m)/\(newest)')"), "EBUSY", newest)
        }
        XCTAssertTrue(rmrf("c4f302-chk-11").ok, "an older checkpoint is nobody's recovery point")
        let events = w.snapfs(["events", w.s]).out
        XCTAssertTrue(events.contains("recovery point of job dd758ebfe2c5e0335122d7ddaf752ba0"), events)
    }

    /// A (fake) JobManager says one job was cancelled: its checkpoints may go; the running job's recovery point
    /// and the newest checkpoints of jobs it does not know stay. It stops answering: the mount falls back to
    /// protecting every job's newest checkpoint without a request ever waiting on it.
    func testCancelledJobLosesProtectionAndAStoppedJobManagerRestoresIt() throws {
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [
            "c4f302458e6451f29e233030dfe8535c": .init(state: "CANCELED"),
            "dd758ebfe2c5e0335122d7ddaf752ba0": .init(state: "RUNNING", latest: (16, "checkpoints/dd758ebfe2c5e0335122d7ddaf752ba0/chk-16")),
        ])
        let fake = try cluster.serve()
        defer { fake.stop() }
        try useStore1(rest: fake.url)
        XCTAssertTrue(waitDeletable("c4f302-chk-13", true))
        XCTAssertTrue(rmrf("c4f302-chk-13").ok, "the cluster says CANCELED")
        for busy in ["dd758e-chk-17", "4b9133-chk-5", "e9201c-chk-13"] {
            XCTAssertEqual(w.errnoOf("os.rmdir('\(w.m)/\(busy)')"), "EBUSY", busy)
        }
        XCTAssertTrue(rmrf("dd758e-chk-15").ok)
        let status = w.snapfs(["status", w.s, "--json"])
        XCTAssertTrue(status.out.contains("\"CANCELED\""), status.summary)

        fake.stop()
        XCTAssertTrue(waitDeletable("c4f302-chk-12", false), "JobManager gone: the cancelled job's newest checkpoint is protected again")
        XCTAssertEqual(w.errnoOf("os.rmdir('\(w.m)/c4f302-chk-12')"), "EBUSY")
    }
}
