import Foundation
import GRDB
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A file with holes is checksummed by its data (`SparseDigest`), not by a SHA-256 of every byte: the native formats
/// record only the digest, everything that reads the object checks it, and the SHA-256 is computed when asked for,
/// checked against the digest and recorded.
final class SparseDigestTests: XCTestCase {
    /// Writes `data` at each offset of a file of `length` bytes that is otherwise a hole; `allocatedZeros` writes
    /// that many zero bytes (allocated, not a hole) right after the first run.
    private func writeSparse(_ url: URL, length: Int64, runs: [(Int64, [UInt8])], allocatedZeros: Int = 0) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(ftruncate(fd, off_t(length)), 0)
        for (at, bytes) in runs { XCTAssertEqual(pwrite(fd, bytes, bytes.count, off_t(at)), bytes.count) }
        if allocatedZeros > 0, let first = runs.first {
            let zeros = [UInt8](repeating: 0, count: allocatedZeros)
            XCTAssertEqual(pwrite(fd, zeros, zeros.count, off_t(first.0) + off_t(first.1.count)), zeros.count)
        }
    }

    private func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 1...255) } }

    private func entry(_ w: Workspace, _ snapshot: Snapshot, _ path: String) throws -> SnapshotEntry {
        try XCTUnwrap(try w.store.entries(of: snapshot.id).first { $0.path == path })
    }

    func testASparseFileIsRecordedByItsDigestAndItsSHA256ComputedWhenAsked() throws {
        let w = try Workspace()
        let file = w.state.appendingPathComponent("sparse")
        try writeSparse(file, length: 64 << 20, runs: [(0, random(5000)), (40 << 20, random(7000))], allocatedZeros: 1 << 20)
        try w.write("dense", "dense bytes")
        let want = try XCTUnwrap(Store.sha256(ofFile: file.path))

        let one = try w.snapshot(label: "one")
        let e = try entry(w, one, "sparse")
        XCTAssertNil(e.sha256, "no SHA-256 of 64 MiB is computed for a file with holes")
        XCTAssertNotNil(e.sparseDigest)
        XCTAssertNotEqual(e.sparseDigest, want)
        let dense = try entry(w, one, "dense")
        XCTAssertNotNil(dense.sha256, "a file without holes has its SHA-256")
        XCTAssertNil(dense.sparseDigest)
        XCTAssertTrue(try w.store.verify().clean)

        // Unchanged: the next native-incremental snapshot reuses the object.
        let two = try w.snapshot(label: "two")
        XCTAssertEqual(try entry(w, two, "sparse").object, e.object)

        // A native-full conversion reads the object (its holes are not where the state's were: the store left the
        // allocated zeros a hole) and checks it against the digest: the copy has the same digest.
        let full = try w.store.convert("one", to: .nativeFull, label: "full")
        let copy = try entry(w, full, "sparse")
        XCTAssertNotEqual(copy.object, e.object)
        XCTAssertEqual(copy.sparseDigest, e.sparseDigest, "the digest is of the bytes, not of how their holes are allocated")
        XCTAssertNil(copy.sha256)

        // Asked for: computed, equal to the state's, and recorded.
        XCTAssertEqual(try w.store.sha256(of: e), want)
        XCTAssertEqual(try entry(w, two, "sparse").sha256, want)

        // A canonical snapshot needs every SHA-256 (SHA256SUMS): it computes it, holes and all.
        let canonical = try w.snapshot(.canonical, label: "canonical")
        XCTAssertEqual(try entry(w, canonical, "sparse").sha256, want)
        let sums = try String(contentsOf: w.storeURL.appendingPathComponent("canonical/\(canonical.id)/SHA256SUMS"), encoding: .utf8)
        XCTAssertTrue(sums.contains(want), sums)

        // An export of a snapshot whose object has only its digest computes the SHA-256 for SHA256SUMS.
        let out = w.root.appendingPathComponent("export")
        _ = try w.store.export("full", to: out)
        let exported = try String(contentsOf: out.appendingPathComponent("SHA256SUMS"), encoding: .utf8)
        XCTAssertTrue(exported.contains(want), exported)
        XCTAssertEqual(Store.sha256(ofFile: out.appendingPathComponent("files/sparse").path), want)
        XCTAssertEqual(try entry(w, full, "sparse").sha256, want, "recorded by the export")
    }

    func testDamageToASparseObjectIsFoundInItsDataAndInItsHoles() throws {
        let w = try Workspace()
        let file = w.state.appendingPathComponent("sparse")
        try writeSparse(file, length: 32 << 20, runs: [(8192, random(4096))])
        let s = try w.snapshot(label: "one")
        let e = try entry(w, s, "sparse")
        let object = w.storeURL.appendingPathComponent(try XCTUnwrap(e.objectPath))
        XCTAssertTrue(try w.store.verify().clean)

        // One byte written into a hole (the length unchanged).
        let fd = open(object.path, O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(pwrite(fd, [0x01], 1, off_t(20 << 20)), 1)
        close(fd)
        let report = try w.store.verify()
        XCTAssertEqual(report.problems.count, 1, "\(report.problems)")
        XCTAssertTrue(report.problems.first?.problem.contains("checksum") ?? false, "\(report.problems)")
        XCTAssertThrowsStoreError(try w.store.sha256(of: e)) { if case .corrupt = $0 { return true }; return false }
        XCTAssertNil(try entry(w, s, "sparse").sha256, "nothing is recorded for bytes that do not match")
        XCTAssertThrowsError(try w.store.export("one", to: w.root.appendingPathComponent("export")))

        // Put back, then one byte of the data changed.
        let fd2 = open(object.path, O_WRONLY)
        XCTAssertEqual(pwrite(fd2, [0x00], 1, off_t(20 << 20)), 1)
        XCTAssertTrue(try w.store.verify().clean)
        var b: UInt8 = 0
        let rfd = open(object.path, O_RDONLY)
        XCTAssertEqual(pread(rfd, &b, 1, 8192 + 100), 1)
        close(rfd)
        XCTAssertEqual(pwrite(fd2, [b ^ 0xff], 1, off_t(8192 + 100)), 1)
        close(fd2)
        XCTAssertFalse(try w.store.verify().clean)
    }
}
