import FlinkMetadata
import FlinkMetadataWriter
import Foundation
import XCTest

/// Pointing handles at new locations: the base of self-contained copies and of repairs.
final class HandleRewriteTests: XCTestCase {
    /// How each file-backed handle of a snapshot names its file, keyed by where it resolves.
    private func originalForms(_ metadata: CheckpointMetadata, directory: String) -> [String: HandleLocation] {
        var forms: [String: HandleLocation] = [:]
        metadata.visitHandles { handle in
            guard let path = handle.resolvedFilePath(metadataDirectory: directory, pathMap: .identity) else { return }
            switch handle {
            case .file(let uri, _): forms[path] = .absolute(uri)
            case .relativeFile(let relative, _): forms[path] = .relative(relative)
            case .fileSegment(let segment): forms[path] = .absolute(segment.physicalPath)
            default: break
            }
        }
        return forms
    }

    /// Every snapshot of every fixture made self-contained: each file a relative handle under the new
    /// directory (segments, which Flink cannot name relatively, an absolute one). The written file reads
    /// back with exactly the mapped files and sizes; mapping those locations back to the original ones gives
    /// the original value, field for field, so nothing else changed.
    func testEveryFixtureSnapshotRewrittenToNewLocationsKeepsEverythingElse() throws {
        var snapshots = 0
        var handles = 0
        for file in try WriterTests.allFixtureFiles() {
            let directory = String(file.path.dropLast("/_metadata".count))
            let original = try MetadataReader.read(file.bytes)
            let references = original.referencedFiles(metadataDirectory: directory, pathMap: .identity)
            let newDirectory = "/archive/\(UUID().uuidString)"
            var mapping: [String: HandleLocation] = [:]
            var expected = Set<FileReference>()
            for (index, reference) in references.enumerated() {
                if reference.kind == .mergedSegments {
                    mapping[reference.path] = .localFile("/archive/merged/\(index)")
                    expected.insert(FileReference(path: "/archive/merged/\(index)", size: reference.size, kind: reference.kind))
                } else {
                    mapping[reference.path] = .relative("files/\(index)")
                    expected.insert(FileReference(path: newDirectory + "/files/\(index)", size: reference.size, kind: reference.kind))
                }
            }
            let (bytes, rewrite) = try HandleRewrite.rewrittenMetadata(
                original, metadataDirectory: directory, mapping: mapping)
            XCTAssertEqual(rewrite.unmappedFiles, [], file.path)
            XCTAssertEqual(rewrite.unusedMappings, [], file.path)

            let decoded = try MetadataReader.read(bytes)
            XCTAssertEqual(decoded.version, original.version)
            XCTAssertEqual(
                Set(decoded.referencedFiles(metadataDirectory: newDirectory, pathMap: .identity)), expected, file.path)
            var absolute = 0
            decoded.visitHandles { if case .file = $0 { absolute += 1 } }
            XCTAssertEqual(absolute, 0, "\(file.path): no file handle names an absolute path any more")

            // Back to where the files were, in the form each handle had: the original value exactly.
            let forms = originalForms(original, directory: directory)
            var back: [String: HandleLocation] = [:]
            for reference in references {
                let now = mapping[reference.path].map { location -> String in
                    switch location {
                    case .relative(let relative): return newDirectory + "/" + relative
                    case .absolute(let uri): return String(uri.dropFirst("file:".count))
                    }
                }
                back[try XCTUnwrap(now)] = try XCTUnwrap(forms[reference.path], reference.path)
            }
            let restored = try HandleRewrite.rewrite(decoded, metadataDirectory: newDirectory, mapping: back)
            XCTAssertEqual(restored.metadata, original, file.path)
            XCTAssertEqual(restored.rewrittenHandles, rewrite.rewrittenHandles)
            snapshots += 1
            handles += rewrite.rewrittenHandles
        }
        XCTAssertEqual(snapshots, 61)
        print("rewrite: \(snapshots) snapshots, \(handles) handles pointed elsewhere and back")
    }

    /// A partial mapping changes exactly the mapped handles and reports the rest.
    func testOnlyMappedHandlesChangeAndTheRestIsReported() throws {
        let file = try XCTUnwrap(try WriterTests.allFixtureFiles().first { $0.path.contains("store-1/checkpoints") })
        let directory = String(file.path.dropLast("/_metadata".count))
        let original = try MetadataReader.read(file.bytes)
        let references = original.referencedFiles(metadataDirectory: directory, pathMap: .identity)
        XCTAssertGreaterThan(references.count, 1)
        let target = references[0]
        let rewrite = try HandleRewrite.rewrite(
            original, metadataDirectory: directory,
            mapping: [target.path: .localFile("/elsewhere/one"), "/not/named/anywhere": .relative("x")])
        XCTAssertEqual(rewrite.unusedMappings, ["/not/named/anywhere"])
        XCTAssertEqual(Set(rewrite.unmappedFiles), Set(references.dropFirst().map(\.path)))
        let after = rewrite.metadata.referencedFiles(metadataDirectory: directory, pathMap: .identity)
        XCTAssertEqual(
            Set(after), Set(references.dropFirst() + [FileReference(path: "/elsewhere/one", size: target.size, kind: target.kind)]))
    }

    /// The repair case (FLINK-39964): a relative handle that resolves in the wrong directory, pointed at the
    /// absolute path where the file is. The version of the file is kept.
    func testRelativeHandlePointedAtAnAbsolutePathKeepsTheVersion() throws {
        let legacy = try WriterTests.legacySynthetic()
        let metadata = try MetadataReader.read(legacy)
        XCTAssertEqual(metadata.version, 4)
        let (bytes, rewrite) = try HandleRewrite.rewrittenMetadata(
            metadata, metadataDirectory: "/store/chk-42",
            mapping: ["/store/chk-42/op-state": .localFile("/store/savepoint-1/op-state")])
        XCTAssertEqual(rewrite.rewrittenHandles, 1)
        XCTAssertEqual(try MetadataReader.version(of: bytes), 4)
        let decoded = try MetadataReader.read(bytes)
        guard case .operatorState(let state)? = decoded.operators[0].subtasks[0].managedOperatorState else { return XCTFail() }
        XCTAssertEqual(state.delegate, .file(path: "file:/store/savepoint-1/op-state", size: 16))
        // Inline state whose name looks like a path is not a file and is left alone.
        guard case .operatorState(let raw)? = decoded.operators[0].subtasks[0].rawOperatorState else { return XCTFail() }
        XCTAssertEqual(raw.delegate, .byteStream(name: "file:/srv/x/chk-42/inline-uuid", data: [5, 5, 5]))
    }

    func testLocationsFlinkCannotResolveAreRefused() throws {
        let synthetic = try MetadataReader.read(try HandleLayoutTests.synthetic())
        let directory = "/srv/store/checkpoints/j/chk-3"
        // A segment has no relative form.
        XCTAssertThrowsError(
            try HandleRewrite.rewrite(
                synthetic, metadataDirectory: directory,
                mapping: ["/srv/store/shared/job_j_op_o_1_2/seg-1": .relative("seg-1")])
        ) { error in
            XCTAssertEqual((error as? HandleRewriteError)?.file, "/srv/store/shared/job_j_op_o_1_2/seg-1")
        }
        for bad in ["", "/abs", "../up", "a/../b", "s3:x", "a//b", "./a", "a\\b"] {
            XCTAssertThrowsError(
                try HandleRewrite.rewrite(synthetic, metadataDirectory: directory, mapping: [directory + "/meta-1": .relative(bad)]),
                "\"\(bad)\"")
        }
        // A relative name below the directory is fine, nested or not.
        let ok = try HandleRewrite.rewrite(
            synthetic, metadataDirectory: directory, mapping: [directory + "/meta-1": .relative("sub/meta-1")])
        XCTAssertEqual(ok.rewrittenHandles, 1)
    }
}
