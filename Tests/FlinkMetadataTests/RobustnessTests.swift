import FlinkMetadata
import FlinkMetadataFuzzing
import FlinkFixtures
import Foundation
import XCTest

/// Damaged and hostile `_metadata`: always a `MetadataError` naming an offset inside the input,
/// never a trap, a hang or a huge allocation.
final class RobustnessTests: XCTestCase {
    /// Every real `_metadata` of both fixture stores.
    private func corpus() throws -> [(path: String, bytes: [UInt8])] {
        var out: [(String, [UInt8])] = []
        for store in [1, 2] {
            let root = FlinkFixtures.directory.appendingPathComponent("store-\(store)").path
            guard let walker = FileManager.default.enumerator(atPath: root) else { continue }
            while let rel = walker.nextObject() as? String {
                guard rel.hasSuffix("_metadata") else { continue }
                out.append((root + "/" + rel, [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/" + rel)))))
            }
        }
        XCTAssertEqual(out.count, 30, "both fixture stores hold 30 _metadata files")
        return out.sorted { $0.0 < $1.0 }
    }

    /// Every strict prefix of a real file is incomplete, so each must be rejected, at an offset
    /// no further than where the data ends.
    func testEveryTruncationIsRejectedWithAnOffsetInsideTheInput() throws {
        let files = try corpus()
        for file in [files[0], files[files.count - 1]] {
            for length in 0..<file.bytes.count {
                let prefix = Array(file.bytes[..<length])
                do {
                    _ = try MetadataReader.read(prefix)
                    XCTFail("\(file.path) cut to \(length) bytes decoded")
                } catch {
                    XCTAssertLessThanOrEqual(error.offset, length)
                    XCTAssertFalse(error.expected.isEmpty)
                }
            }
        }
    }

    /// A byte-stream length of 2^31-1 must be refused before anything is allocated for it.
    func testHugeInlineLengthIsRejectedWithoutAllocating() throws {
        let file = try corpus()[0].bytes
        let metadata = try MetadataReader.read(file)
        var inlineCount = 0
        metadata.visitHandles { if case .byteStream = $0 { inlineCount += 1 } }
        XCTAssertGreaterThan(inlineCount, 0)
        // Find the first inline handle: type byte 1, a UTF name, then its int32 data length.
        guard let at = firstInlineLengthOffset(in: file) else { return XCTFail("no inline handle found") }
        var forged = file
        forged.replaceSubrange(at..<(at + 4), with: [0x7F, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try MetadataReader.read(forged)) { error in
            guard let error = error as? MetadataError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.offset, at)
            XCTAssertTrue(error.expected.contains("fits"), error.description)
        }
    }

    func testWrongMagicAndVersionAreNamed() throws {
        var file = try corpus()[0].bytes
        file[0] = 0
        XCTAssertThrowsError(try MetadataReader.read(file)) { error in
            XCTAssertEqual((error as? MetadataError)?.offset, 0)
        }
        file = try corpus()[0].bytes
        file[7] = 9
        XCTAssertThrowsError(try MetadataReader.read(file)) { error in
            XCTAssertEqual((error as? MetadataError)?.offset, 4)
            XCTAssertTrue((error as? MetadataError)?.found.contains("newer") == true)
        }
    }

    /// Mutated real files (`SNAPFS_FUZZ_ITERATIONS`, default 2000): each decodes or throws an error
    /// whose offset lies inside the input. Scripts/fuzz-metadata runs far more in release mode.
    func testMutatedFilesDecodeOrFailCleanly() throws {
        let iterations = ProcessInfo.processInfo.environment["SNAPFS_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 2000
        // The real files, plus one holding the handle types they lack (changelog, file merging, channel state).
        let corpus = try corpus().map(\.bytes) + [try HandleLayoutTests.synthetic()]
        var mutator = MetadataMutator(seed: 0x5EED)
        var rejected = 0
        for iteration in 0..<iterations {
            let (input, mutation) = mutator.mutate(corpus)
            do {
                let metadata = try MetadataReader.read(input)
                _ = metadata.referencedFiles(metadataDirectory: "/store/chk-1", pathMap: .identity)
            } catch {
                rejected += 1
                XCTAssertTrue((0...input.count).contains(error.offset), "iteration \(iteration) (\(mutation.rawValue)): \(error)")
                XCTAssertFalse(error.expected.isEmpty)
            }
        }
        XCTAssertGreaterThan(rejected, 0, "mutations that never fail exercise nothing")
    }

    /// Offset of the data length of the first top-level inline handle: found by scanning for a
    /// type byte 1 followed by a plausible UTF name and length, then confirmed by decoding.
    private func firstInlineLengthOffset(in file: [UInt8]) -> Int? {
        var i = 8
        while i + 7 < file.count {
            if file[i] == 1 {
                let nameLength = Int(file[i + 1]) << 8 | Int(file[i + 2])
                let lengthAt = i + 3 + nameLength
                if nameLength > 10, lengthAt + 4 <= file.count,
                    String(decoding: file[(i + 3)..<(i + 3 + min(5, nameLength))], as: UTF8.self) == "file:"
                {
                    return lengthAt
                }
            }
            i += 1
        }
        return nil
    }
}
