import FlinkEngine
import FlinkFixtures
import FlinkMetadata
import Foundation
import SnapFileOps
import SnapStore
import Synchronization
import XCTest

/// Counts how often the engine is asked for each snapshot's view.
final class CountingPresenter: SnapshotPresenter {
    let inner: any SnapshotPresenter
    let asked = Mutex<[SnapshotID: Int]>([:])

    init(_ inner: any SnapshotPresenter) { self.inner = inner }

    func view(of snapshot: Snapshot, entries: [SnapshotEntry]) -> SnapshotView? {
        asked.withLock { $0[snapshot.id, default: 0] += 1 }
        return inner.view(of: snapshot, entries: entries)
    }
}

/// Flink snapshots shown as Flink's relocatable savepoint layout, through the file operations (no kernel).
final class RelocatableViewTests: XCTestCase {
    /// `_metadata`'s length is known to `stat` before any read and is the length every read gives; its bytes are the
    /// same each time and decode to handles that are all relative, each naming a file beside it with the bytes of the
    /// store file the original handle named. The view is made once per snapshot, however often its index is dropped.
    func testMetadataIsRelativeSizedBeforeReadAndMadeOncePerSnapshot() throws {
        let f = try FlinkFixture()
        let engine = try FlinkEngine.forStore(f.store)
        let presenter = CountingPresenter(FlinkRelocatableView(engine: engine))
        f.fs.setPresenter(presenter)
        let snapshots = try f.store.snapshots()
        XCTAssertEqual(snapshots.count, 14)
        for s in snapshots {
            let attr = try f.paths.resolve(s.name + "/_metadata").attr
            let bytes = try f.paths.read(s.name + "/_metadata")
            XCTAssertEqual(Int64(bytes.count), attr.size, s.name)
            XCTAssertEqual(try f.paths.read(s.name + "/_metadata"), bytes, s.name)
            let copied = try MetadataReader.read(bytes)
            let directory = f.root.path + "/" + s.directory!
            let original = try MetadataReader.read(try Data(contentsOf: URL(fileURLWithPath: directory + "/_metadata")))
            XCTAssertEqual(copied.version, original.version, s.name)
            var a: [StateHandle] = [], b: [StateHandle] = []
            copied.visitHandles { if $0.isFileBacked { a.append($0) } }
            original.visitHandles { if $0.isFileBacked { b.append($0) } }
            XCTAssertEqual(a.count, b.count, s.name)
            let names = Set(try f.paths.names(s.name))
            for (c, o) in zip(a, b) {
                guard case .relativeFile(let name, let size) = c else { XCTFail("\(s.name): \(c) is not relative"); continue }
                XCTAssertTrue(names.contains(name), "\(s.name): \(name) is beside _metadata")
                let stored = try XCTUnwrap(o.resolvedFilePath(metadataDirectory: directory, pathMap: PathMap([(from: FlinkFixtures.writtenAt, to: f.root.path)])))
                guard FileManager.default.fileExists(atPath: stored) else {
                    // A file Flink removed (the fixture's one savepoint that is not restorable): not read.
                    XCTAssertThrowsError(try f.paths.read(s.name + "/" + name), "\(s.name)/\(name)")
                    continue
                }
                let shown = try f.paths.read(s.name + "/" + name)
                XCTAssertEqual(Int64(shown.count), size, "\(s.name)/\(name)")
                XCTAssertEqual(shown, try Data(contentsOf: URL(fileURLWithPath: stored)), "\(s.name)/\(name)")
            }
        }
        // A snapshot going drops every index (link counts move): the views are kept, not made again.
        let gone = try XCTUnwrap(snapshots.first { $0.name == "c4f302-chk-11" })
        _ = try f.store.delete(gone.name, reason: "test")
        f.fs.refresh()
        for s in snapshots where s.id != gone.id { _ = try f.paths.tree(s.name) }
        let asked = presenter.asked.withLock { $0 }
        XCTAssertEqual(Set(asked.keys), Set(snapshots.map(\.id)))
        XCTAssertTrue(asked.values.allSatisfy { $0 == 1 }, "\(asked)")
    }

    /// Without a presenter (the local engine, a test harness) every snapshot shows its catalog entries.
    func testWithoutAPresenterTheStorePathsAreShown() throws {
        let f = try FlinkFixture()
        XCTAssertEqual(try f.paths.names("c4f302-chk-12"), ["checkpoints"])
    }
}
