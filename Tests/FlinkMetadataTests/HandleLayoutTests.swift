import FlinkMetadata
import FlinkFixtures
import Foundation
import XCTest

/// Handle types the fixture stores do not contain (changelog, file merging, typed channel state), written
/// byte by byte in the layout of `MetadataV2V3SerializerBase` and `ChannelStateHandleSerializerV2`.
final class HandleLayoutTests: XCTestCase {
    /// `DataOutputStream`, big-endian.
    struct Writer {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func i32(_ v: Int32) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
        mutating func i64(_ v: Int64) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
        mutating func utf(_ s: String) { let b = Array(s.utf8); u8(UInt8(b.count >> 8)); u8(UInt8(b.count & 0xFF)); bytes += b }
        mutating func fileHandle(_ path: String, _ size: Int64) { u8(2); i64(size); utf(path) }
        mutating func relativeHandle(_ path: String, _ size: Int64) { u8(6); utf(path); i64(size) }
        mutating func inline(_ name: String, _ data: [UInt8]) { u8(1); utf(name); i32(Int32(data.count)); bytes += data }
    }

    /// The properties trailer of a real v6 checkpoint, so the synthetic file ends as Flink's do.
    static func realTrailer() throws -> [UInt8] {
        let path = FlinkFixtures.directory.path + "/store-1/checkpoints/c4f302458e6451f29e233030dfe8535c/chk-13/_metadata"
        return try XCTUnwrap(try MetadataReader.read(Data(contentsOf: URL(fileURLWithPath: path))).properties).rawBytes
    }

    func synthetic() throws -> [UInt8] { try Self.synthetic() }

    /// A v6 file holding one of each handle type the fixtures lack.
    static func synthetic() throws -> [UInt8] {
        var w = Writer()
        w.i32(0x4960_672D); w.i32(6)
        w.i64(3)
        // One master state: magic, length, then version, name, payload.
        var master = Writer(); master.i32(1); master.utf("hook"); master.i32(3); master.bytes += [1, 2, 3]
        w.i32(1); w.i32(Int32(bitPattern: 0xC96B_1696)); w.i32(Int32(master.bytes.count)); w.bytes += master.bytes
        w.i32(2)
        // Operator 1: name, uid, id, parallelisms, inline coordinator state, a finished and a live subtask.
        w.utf("op"); w.utf("uid-1"); w.bytes += Array(repeating: 0xAB, count: 16); w.i32(2); w.i32(128)
        w.inline("file:/srv/store/checkpoints/j/chk-3/coord", [9, 9])
        w.i32(2)
        w.i32(-1)  // subtask 0 finished
        w.i32(1)
        // Managed operator state: file-merging handle (17) over a segment (15).
        w.i32(1); w.u8(17); w.i32(1); w.utf("s"); w.u8(1); w.i32(1); w.i64(0)
        w.utf("file:/srv/store/taskowned/job_j_tm_t"); w.utf("file:/srv/store/shared/job_j_op_o_1_2"); w.u8(0)
        w.u8(15); w.i64(10); w.i64(20); w.i32(1); w.utf("file:/srv/store/shared/job_j_op_o_1_2/seg-1"); w.utf("logical-1")
        w.i32(0)  // no raw operator state
        // Managed keyed state: changelog (14) with a materialized incremental handle (11) and a DSTL file part (13).
        w.u8(14); w.i32(0); w.i32(128); w.i64(999)
        w.i32(1)
        w.u8(11); w.i64(2); w.utf("backend-uuid"); w.i32(0); w.i32(128); w.i64(400)
        w.relativeHandle("meta-1", 100)
        w.i32(1); w.utf("000001.sst"); w.fileHandle("file:/srv/store/shared/sst-1", 200)
        w.i32(1); w.utf("MANIFEST-000001"); w.inline("file:/srv/store/shared/manifest", [1, 2, 3, 4])
        w.utf("handle-1")
        w.i32(1)
        w.u8(13); w.i32(0); w.i32(128); w.i32(1); w.i64(0); w.fileHandle("file:/srv/dstl/log-1", 300)
        w.i64(300); w.i64(300); w.utf("handle-2"); w.utf("filesystem")
        w.i64(7); w.i64(3); w.utf("handle-3")
        w.u8(0)  // no raw keyed state
        // Channel state, v6: a merged input handle (3) and a single result-subpartition handle (2).
        w.i32(1); w.u8(3); w.i32(1); w.i64(50); w.relativeHandle("chan-1", 50); w.i32(4); w.bytes += [0, 0, 0, 0]
        w.i32(1); w.u8(2); w.i32(1); w.i32(0); w.i32(0); w.i32(1); w.i64(0); w.i64(0); w.u8(16)
        // Operator 2: fully finished (subtask count -1), no coordinator state.
        w.utf(""); w.utf(""); w.bytes += Array(repeating: 0xCD, count: 16); w.i32(1); w.i32(128); w.u8(0); w.i32(-1)
        w.bytes += try realTrailer()
        return w.bytes
    }

    func testChangelogFileMergingAndChannelHandles() throws {
        let bytes = try synthetic()
        let metadata = try MetadataReader.read(bytes)
        XCTAssertEqual(metadata.checkpointId, 3)
        XCTAssertEqual(metadata.masterStates.map(\.name), ["hook"])
        XCTAssertEqual(metadata.masterStates.map(\.size), [3])
        XCTAssertEqual(metadata.operators.count, 2)
        XCTAssertEqual(metadata.operators[0].name, "op")
        XCTAssertEqual(metadata.operators[0].uid, "uid-1")
        XCTAssertEqual(metadata.operators[0].subtasks.map(\.finished), [true, false])
        XCTAssertTrue(metadata.operators[1].fullyFinished)
        XCTAssertNil(metadata.operators[1].name)
        XCTAssertEqual(metadata.trailingByteCount, 0)
        XCTAssertEqual(metadata.inlineHandleCount, 2)
        XCTAssertEqual(metadata.inlineBytes, 6)
        let files = metadata.referencedFiles(metadataDirectory: "/srv/store/checkpoints/j/chk-3", pathMap: .identity)
        XCTAssertEqual(files, [
            FileReference(path: "/srv/dstl/log-1", size: 300, kind: .changelog),
            FileReference(path: "/srv/store/checkpoints/j/chk-3/chan-1", size: 50),
            FileReference(path: "/srv/store/checkpoints/j/chk-3/meta-1", size: 100),
            FileReference(path: "/srv/store/shared/job_j_op_o_1_2/seg-1", size: 30, kind: .mergedSegments),
            FileReference(path: "/srv/store/shared/sst-1", size: 200),
        ])
        guard case .operatorState(let op)? = metadata.operators[0].subtasks[1].managedOperatorState else { return XCTFail() }
        XCTAssertEqual(op.fileMerging?.sharedDirectory, "file:/srv/store/shared/job_j_op_o_1_2")
    }

    /// Every strict prefix of the synthetic file fails with an offset inside it: each of these code paths
    /// checks its bounds.
    func testEveryPrefixOfTheSyntheticFileIsRejected() throws {
        let bytes = try synthetic()
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try MetadataReader.read(Array(bytes[..<length]))) { error in
                XCTAssertLessThanOrEqual((error as? MetadataError)?.offset ?? .max, length)
            }
        }
    }

    /// Version 5 has no type byte before channel handles: the same bytes read as v5 must be refused, not misread.
    func testChannelLayoutDependsOnVersion() throws {
        var bytes = try synthetic()
        bytes[7] = 5
        XCTAssertThrowsError(try MetadataReader.read(bytes))
    }
}
