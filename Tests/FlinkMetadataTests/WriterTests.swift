import FlinkFixtures
import FlinkMetadata
import FlinkMetadataFuzzing
import FlinkMetadataWriter
import Foundation
import XCTest

/// The writer against every real `_metadata` there is, older layouts derived from them, synthetic files of
/// the handle types Flink 2.3 no longer writes, and the reader's fuzz mutants.
final class WriterTests: XCTestCase {
    /// Every `_metadata` under both fixture roots (the two shared stores and the four layout stores).
    static func allFixtureFiles() throws -> [(path: String, bytes: [UInt8])] {
        var out: [(String, [UInt8])] = []
        for root in [FlinkFixtures.directory.path, LayoutFixtures.directory.path] {
            guard let walker = FileManager.default.enumerator(atPath: root) else { continue }
            while let rel = walker.nextObject() as? String {
                guard rel.hasSuffix("_metadata") else { continue }
                let path = root + "/" + rel
                out.append((path, [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    func testEveryFixtureFileIsWrittenBackByteForByte() throws {
        let files = try Self.allFixtureFiles()
        // 30 in the shared stores, 31 in the layout stores: none may be missed silently.
        XCTAssertEqual(files.count, 61, "fixture _metadata files found")
        var kinds = Set<String>()
        for file in files {
            let metadata = try MetadataReader.read(file.bytes)
            let written = try MetadataWriter.encode(metadata)
            XCTAssertEqual(written.count, file.bytes.count, file.path)
            XCTAssertTrue(written == file.bytes, "\(file.path): first difference at byte \(firstDifference(written, file.bytes))")
            metadata.visitHandles { kinds.insert(Self.kindName($0)) }
        }
        // The round trip covered the handle kinds real Flink writes, not just one of them (in-memory changelog
        // state is only in the synthetic files below: no snapshot of these stores holds it).
        for kind in ["file", "relative", "inline", "segment", "keyGroups", "incremental", "changelog", "changelogFiles",
                     "operator", "channel"] {
            XCTAssertTrue(kinds.contains(kind), "no fixture holds a \(kind) handle; kinds seen: \(kinds.sorted())")
        }
        print("writer: \(files.count) fixture files written back byte for byte; handle kinds: \(kinds.sorted())")
    }

    /// Versions 3, 4 and 5 of real files, derived byte by byte from the v6 files (no name and uid before 5, no
    /// properties trailer before 4), each written back identically and as the version it was.
    func testOlderVersionsOfRealFilesAreWrittenBackByteForByteAsTheSameVersion() throws {
        var checked = 0
        for file in try Self.allFixtureFiles() {
            let original = try MetadataReader.read(file.bytes)
            // Channel handles carry a type byte only in v6; files with them have no older layout.
            var hasChannel = false
            original.visitHandles { if case .channel = $0 { hasChannel = true } }
            if hasChannel { continue }

            let v5 = withVersion(file.bytes, 5)
            let v4 = withVersion(try withoutOperatorNames(file.bytes, original), 4)
            let trailer = try XCTUnwrap(original.properties).rawBytes
            let v3 = withVersion(Array(v4.dropLast(trailer.count)), 3)
            for (version, bytes) in [(5, v5), (4, v4), (3, v3)] {
                let decoded = try MetadataReader.read(bytes)
                XCTAssertEqual(decoded.version, version)
                let written = try MetadataWriter.encode(decoded)
                XCTAssertTrue(written == bytes, "\(file.path) as v\(version): first difference at \(firstDifference(written, bytes))")
                XCTAssertEqual(try MetadataReader.version(of: written), version, "the writer keeps the version")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 40)
        print("writer: \(checked) real files checked as versions 3, 4 and 5")
    }

    /// The synthetic v6 file of the reader's tests (changelog, file merging, merged channel state, master
    /// state), and a v4 file of the legacy codes (3, 5, 7, 8, 9, 10) Flink 2.3 no longer writes.
    func testSyntheticFilesOfEveryHandleCodeAreWrittenBackByteForByte() throws {
        for (name, bytes) in [("v6 synthetic", try HandleLayoutTests.synthetic()), ("v4 legacy", try Self.legacySynthetic())] {
            let metadata = try MetadataReader.read(bytes)
            let written = try MetadataWriter.encode(metadata)
            XCTAssertTrue(written == bytes, "\(name): first difference at \(firstDifference(written, bytes))")
        }
        let legacy = try MetadataReader.read(try Self.legacySynthetic())
        XCTAssertEqual(legacy.masterStates.first?.payload, [7, 7])
        XCTAssertEqual(legacy.trailingBytes, [0xEE, 0xFF], "trailing bytes are kept")
        guard case .changelog(let changelog)? = legacy.operators[0].subtasks[0].managedKeyedState else {
            return XCTFail("\(legacy.operators[0].subtasks[0])")
        }
        XCTAssertEqual(changelog.encoding, .legacy)
        guard case .changelogInMemory(let inMemory) = changelog.nonMaterialized[0] else { return XCTFail() }
        XCTAssertEqual(inMemory.changes, [.init(keyGroup: 4, data: [1, 2, 3])])
    }

    /// A v4 file (no operator names, properties trailer) holding the legacy handle codes and inline state.
    static func legacySynthetic() throws -> [UInt8] {
        var w = HandleLayoutTests.Writer()
        w.i32(0x4960_672D); w.i32(4)
        w.i64(42)
        var master = HandleLayoutTests.Writer(); master.i32(2); master.utf("hook-é"); master.i32(2); master.bytes += [7, 7]
        w.i32(1); w.i32(Int32(bitPattern: 0xC96B_1696)); w.i32(Int32(master.bytes.count)); w.bytes += master.bytes
        w.i32(1)
        w.bytes += Array(0..<16); w.i32(1); w.i32(128)
        w.u8(0)  // no coordinator state
        w.i32(1)
        w.i32(0)
        // Managed operator state (4) over a relative file; raw operator state (4) inline.
        w.i32(1); w.u8(4); w.i32(2)
        w.utf("union-state"); w.u8(1); w.i32(2); w.i64(0); w.i64(8)
        w.utf("broadcast"); w.u8(2); w.i32(0)
        w.relativeHandle("op-state", 16)
        w.i32(1); w.u8(4); w.i32(0); w.inline("file:/srv/x/chk-42/inline-uuid", [5, 5, 5])
        // Managed keyed: legacy changelog (8): materialized = legacy incremental (5) and legacy key groups (3)
        // nesting a key-groups stream handle; tail = in-memory (9) and legacy file changelog (10).
        w.u8(8); w.i32(0); w.i32(2); w.i64(77)
        w.i32(2)
        w.u8(5); w.i64(40); w.utf("backend"); w.i32(0); w.i32(2)
        w.fileHandle("file:/srv/x/shared/meta", 10)
        w.i32(1); w.utf("000009.sst"); w.fileHandle("file:/srv/x/shared/sst-9", 90)
        w.i32(0)
        w.u8(3); w.i32(0); w.i32(2); w.i64(0); w.i64(4)
        w.u8(3); w.i32(0); w.i32(1); w.i64(0); w.fileHandle("file:/srv/x/nested", 4)
        w.i32(2)
        w.u8(9); w.i32(0); w.i32(2); w.i64(1); w.i64(2); w.i32(1); w.i32(4); w.i32(3); w.bytes += [1, 2, 3]; w.utf("mem-id")
        w.u8(10); w.i32(0); w.i32(2); w.i32(1); w.i64(3); w.fileHandle("file:/srv/dstl/a", 30); w.i64(30); w.i64(30)
        w.utf("dstl-id")
        w.i64(5); w.utf("changelog-id")
        // Raw keyed: savepoint key groups (7) over an inline stream.
        w.u8(7); w.i32(0); w.i32(1); w.i64(0); w.inline("file:/srv/x/raw", [9])
        // Channel state in the untyped (v3–v5) layout.
        w.i32(1); w.i32(0); w.i32(0); w.i32(1); w.i32(1); w.i64(0); w.i64(12); w.relativeHandle("channel", 12)
        w.i32(0)
        w.bytes += try HandleLayoutTests.realTrailer()
        w.bytes += [0xEE, 0xFF]
        return w.bytes
    }

    /// Mutants of real files (`SNAPFS_FUZZ_ITERATIONS`, default 2000): every one the reader accepts is written,
    /// and the written bytes read back as the same value.
    func testEveryAcceptedMutantReadsBackAsTheSameValue() throws {
        let iterations = ProcessInfo.processInfo.environment["SNAPFS_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 2000
        let corpus = try Self.allFixtureFiles().map(\.bytes) + [try HandleLayoutTests.synthetic(), try Self.legacySynthetic()]
        var mutator = MetadataMutator(seed: 0x5EED)
        var accepted = 0
        var byMutation: [String: Int] = [:]
        for iteration in 0..<iterations {
            let (input, mutation) = mutator.mutate(corpus)
            guard let metadata = try? MetadataReader.read(input) else { continue }
            accepted += 1
            byMutation[mutation.rawValue, default: 0] += 1
            do {
                let written = try MetadataWriter.encode(metadata)
                let again = try MetadataReader.read(written)
                XCTAssertEqual(again, metadata, "iteration \(iteration) (\(mutation.rawValue))")
                XCTAssertEqual(again.version, metadata.version)
            } catch {
                XCTFail("iteration \(iteration) (\(mutation.rawValue)): accepted by the reader, but \(error)")
            }
        }
        // Mutations that all fail to decode would test nothing here.
        XCTAssertGreaterThan(accepted, iterations / 20, "accepted mutants")
        print("writer: \(accepted) of \(iterations) mutants accepted by the reader, each read back equal: \(byMutation.sorted { $0.key < $1.key })")
    }

    // MARK: - Never upgrading, never writing what does not read back

    func testTheWriterRefusesToChangeTheVersion() throws {
        let bytes = try HandleLayoutTests.synthetic()
        var metadata = try MetadataReader.read(bytes)

        var asV5 = metadata
        asV5.version = 5
        XCTAssertThrowsError(try MetadataWriter.encode(asV5)) { error in
            XCTAssertTrue("\(error)".contains("merged channel handle in version 5"), "\(error)")
        }

        let real = try MetadataReader.read(try Self.allFixtureFiles()[0].bytes)
        var asV4 = real
        asV4.version = 4
        XCTAssertThrowsError(try MetadataWriter.encode(asV4)) { error in
            XCTAssertTrue("\(error)".contains("no operator name or uid"), "\(error)")
        }
        var asV3 = real
        asV3.version = 3
        asV3.operators = asV3.operators.map { var o = $0; o.name = nil; o.uid = nil; return o }
        XCTAssertThrowsError(try MetadataWriter.encode(asV3)) { error in
            XCTAssertTrue("\(error)".contains("version 3 has no trailer"), "\(error)")
        }
        var v4WithoutTrailer = asV3
        v4WithoutTrailer.version = 4
        v4WithoutTrailer.properties = nil
        XCTAssertThrowsError(try MetadataWriter.encode(v4WithoutTrailer))
        metadata.version = 7
        XCTAssertThrowsError(try MetadataWriter.encode(metadata)) { error in
            XCTAssertTrue("\(error)".contains("version 7"), "\(error)")
        }
    }

    func testValuesTheFormatCannotCarryAreRefusedWithTheirPlace() throws {
        let metadata = try MetadataReader.read(try HandleLayoutTests.synthetic())

        // A file handle where Flink only accepts inline coordinator state.
        var coordinator = metadata
        coordinator.operators[0].coordinatorState = .file(path: "file:/x", size: 1)
        XCTAssertThrowsError(try MetadataWriter.encode(coordinator)) { error in
            XCTAssertTrue("\(error)".contains("coordinator"), "\(error)")
            XCTAssertEqual((error as? MetadataWriteError)?.context, ["operator 0"])
        }

        // A keyed handle in an operator-state slot.
        var misplaced = metadata
        misplaced.operators[0].subtasks[1].managedOperatorState = .file(path: "file:/x", size: 1)
        XCTAssertThrowsError(try MetadataWriter.encode(misplaced)) { error in
            XCTAssertEqual((error as? MetadataWriteError)?.context, ["operator 0", "subtask 1"], "\(error)")
        }

        // "" reads back as "no name": writing it would change the value.
        var emptyName = metadata
        emptyName.operators[0].name = ""
        XCTAssertThrowsError(try MetadataWriter.encode(emptyName)) { error in
            XCTAssertTrue("\(error)".contains("name or uid"), "\(error)")
        }

        // A path longer than writeUTF can carry.
        var longPath = metadata
        longPath.operators[0].coordinatorState = .byteStream(name: String(repeating: "é", count: 40_000), data: [])
        XCTAssertThrowsError(try MetadataWriter.encode(longPath)) { error in
            XCTAssertTrue("\(error)".contains("65535"), "\(error)")
        }

        var badID = metadata
        badID.operators[1].operatorID = "not-hex"
        XCTAssertThrowsError(try MetadataWriter.encode(badID))
    }

    /// Java's modified UTF-8: NUL as two bytes, supplementary characters as two 3-byte surrogates.
    func testStringsAreWrittenAsJavaWritesThem() throws {
        var metadata = try MetadataReader.read(try HandleLayoutTests.synthetic())
        metadata.operators[0].name = "a\u{0}b😀é"
        let written = try MetadataWriter.encode(metadata)
        let expected: [UInt8] = [0, 12, 0x61, 0xC0, 0x80, 0x62, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80, 0xC3, 0xA9]
        XCTAssertNotNil(find(expected, in: written), "the name is in Java's modified UTF-8")
        XCTAssertEqual(try MetadataReader.read(written).operators[0].name, "a\u{0}b😀é")
    }

    // MARK: - Helpers

    private static func kindName(_ handle: StateHandle) -> String {
        switch handle {
        case .file: "file"
        case .relativeFile: "relative"
        case .byteStream: "inline"
        case .fileSegment, .emptyFileSegment: "segment"
        case .keyGroups: "keyGroups"
        case .incrementalRemote: "incremental"
        case .changelog: "changelog"
        case .changelogInMemory: "changelogInMemory"
        case .changelogFiles: "changelogFiles"
        case .operatorState: "operator"
        case .channel: "channel"
        }
    }

    private func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }

    private func withVersion(_ bytes: [UInt8], _ version: UInt8) -> [UInt8] {
        var out = bytes
        out[4...7] = [0, 0, 0, version]
        return out
    }

    /// Removes each operator's UTF name and uid, found as the exact bytes before its 16-byte id.
    private func withoutOperatorNames(_ bytes: [UInt8], _ metadata: CheckpointMetadata) throws -> [UInt8] {
        var out = bytes
        var searchFrom = 8
        for op in metadata.operators {
            let prefix = utf(op.name ?? "") + utf(op.uid ?? "")
            let hex = Array(op.operatorID.utf8)
            let id = stride(from: 0, to: 32, by: 2).map { UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
            let at = try XCTUnwrap(find(prefix + id, in: out, from: searchFrom), "operator \(op.operatorID)")
            out.removeSubrange(at..<(at + prefix.count))
            searchFrom = at + id.count
        }
        return out
    }

    private func utf(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [UInt8(b.count >> 8), UInt8(b.count & 0xFF)] + b
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8], from: Int = 0) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var i = from
        while i + needle.count <= haystack.count {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
