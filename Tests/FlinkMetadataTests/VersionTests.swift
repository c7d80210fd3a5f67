import FlinkMetadata
import FlinkFixtures
import Foundation
import XCTest

/// Versions 3–5 differ from 6 only in layout details (no operator name and uid before 5, no properties
/// trailer before 4; typed channel handles from 6, absent in these stores). Rewriting a real v6 file into
/// each older layout must give the same snapshot: same checkpoint, operators and file set.
final class VersionTests: XCTestCase {
    func testOlderLayoutsOfARealFileDecodeToTheSameState() throws {
        let root = FlinkFixtures.directory.appendingPathComponent("store-1").path
        for dir in ["checkpoints/c4f302458e6451f29e233030dfe8535c/chk-12", "savepoints/savepoint-c4f302-a3c72ffbb47e",
                    "checkpoints/4b913385afc25f46a0551aee1c033ec6/chk-5"] {
            let v6 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/" + dir + "/_metadata")))
            let original = try MetadataReader.read(v6)
            let files = original.referencedFiles(metadataDirectory: root + "/" + dir, pathMap: .identity)

            let v5 = withVersion(v6, 5)
            let decoded5 = try MetadataReader.read(v5)
            XCTAssertEqual(decoded5.operators, original.operators, dir)

            let v4 = withVersion(try withoutOperatorNames(v6, original), 4)
            let decoded4 = try MetadataReader.read(v4)
            XCTAssertEqual(decoded4.operators.map(\.operatorID), original.operators.map(\.operatorID), dir)
            XCTAssertTrue(decoded4.operators.allSatisfy { $0.name == nil && $0.uid == nil })
            XCTAssertEqual(decoded4.properties, original.properties, dir)
            XCTAssertEqual(decoded4.referencedFiles(metadataDirectory: root + "/" + dir, pathMap: .identity), files, dir)

            let trailer = try XCTUnwrap(original.properties).rawBytes
            let v3 = withVersion(Array(v4.dropLast(trailer.count)), 3)
            let decoded3 = try MetadataReader.read(v3)
            XCTAssertNil(decoded3.properties)
            XCTAssertEqual(decoded3.trailingByteCount, 0)
            XCTAssertEqual(decoded3.referencedFiles(metadataDirectory: root + "/" + dir, pathMap: .identity), files, dir)

            // Read as the wrong version, the same bytes must fail cleanly, not decode into something else.
            XCTAssertThrowsError(try MetadataReader.read(withVersion(v6, 4)), dir)
        }
    }

    private func withVersion(_ bytes: [UInt8], _ version: UInt8) -> [UInt8] {
        var out = bytes
        out[4...7] = [0, 0, 0, version]
        return out
    }

    /// Removes each operator's UTF name and uid, found as the exact bytes that precede its 16-byte id.
    private func withoutOperatorNames(_ bytes: [UInt8], _ metadata: CheckpointMetadata) throws -> [UInt8] {
        var out = bytes
        var searchFrom = 8
        for op in metadata.operators {
            let prefix = utf(op.name ?? "") + utf(op.uid ?? "")
            let id = stride(from: 0, to: 32, by: 2).map { i -> UInt8 in
                let s = op.operatorID.index(op.operatorID.startIndex, offsetBy: i)
                return UInt8(op.operatorID[s..<op.operatorID.index(s, offsetBy: 2)], radix: 16) ?? 0
            }
            let pattern = prefix + id
            guard let at = find(pattern, in: out, from: searchFrom) else { throw XCTSkip("operator \(op.operatorID) not found") }
            out.removeSubrange(at..<(at + prefix.count))
            searchFrom = at + id.count
        }
        return out
    }

    private func utf(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [UInt8(b.count >> 8), UInt8(b.count & 0xFF)] + b
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var i = from
        while i + needle.count <= haystack.count {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
