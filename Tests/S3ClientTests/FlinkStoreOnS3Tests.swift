import FlinkFixtures
import FlinkMetadata
import Foundation
import S3Client
import S3TestSupport
import XCTest

/// Both real Flink fixture stores uploaded to a bucket on each server, read back through `S3StoreFiles`: the
/// snapshot directories found from a listing, and each `_metadata` read from S3 and resolved with a path map onto
/// `s3://` (and `s3a://`) locations, equal what Flink's own deserializer printed for the stores; every file each
/// snapshot needs is in the bucket with the length it has on disk.
extension S3ClientTests {
    func testFlinkFixtureStoresReadFromS3MatchFlinksTruth() async throws {
        try await onEachServer { server, s3, bucket in
            for store in [1, 2] {
                let localRoot = FlinkFixtures.directory.appendingPathComponent("store-\(store)")
                let location = try S3Location(bucket: bucket, prefix: "flink/store-\(store)")
                let uploaded = try await upload(localRoot, to: location, with: s3)
                let files = S3StoreFiles(client: s3, location: location)
                let listing = try await files.list(pageSize: 50)
                XCTAssertEqual(Set(listing.files.keys), Set(uploaded.keys), "\(server.kind) store-\(store): listing")
                XCTAssertGreaterThan(listing.requests, 1, "\(server.kind): the listing was paged")

                let truth = try FlinkFixtures.truth(store: store, root: location.description)
                let found = S3StoreFiles.directories(holding: "_metadata", in: listing, maxDepth: 6, skipping: ["shared", "taskowned"])
                XCTAssertEqual(found, truth.map(\.directory).sorted(), "\(server.kind) store-\(store): snapshot directories")

                var restorable = 0, broken = 0
                for (scheme, map) in [("s3", location.description), ("s3a", "s3a://\(location.bucket)/\(location.prefix)")] {
                    let pathMap = PathMap([(from: FlinkFixtures.writtenAt, to: map)])
                    for snapshot in truth {
                        let data = try await files.read(snapshot.directory + "/_metadata", limit: 512 << 20)
                        XCTAssertEqual(data.count, uploaded[snapshot.directory + "/_metadata"].map(\.count), snapshot.directory)
                        let metadata = try MetadataReader.read(data)
                        XCTAssertEqual(metadata.checkpointId, snapshot.checkpointId, snapshot.directory)
                        let refs = metadata.referencedFiles(metadataDirectory: "\(map)/\(snapshot.directory)", pathMap: pathMap)
                        let asS3 = Set(refs.map { "\(scheme == "s3" ? $0.path : "s3" + $0.path.dropFirst(3))\t\($0.size)" })
                        XCTAssertEqual(asS3, snapshot.files, "\(server.kind) store-\(store) \(scheme): file set of \(snapshot.directory)")
                        // Restorable on S3 exactly when restorable on disk: a file Flink removed (the fixtures
                        // hold CLAIM restores that did) is missing from both, and a missing key is asked with HEAD.
                        var restorableHere = true, restorableThere = true
                        for ref in refs {
                            guard let relative = location.relative(ofURI: ref.path) else {
                                XCTFail("\(server.kind): \(ref.path) is not below \(location)"); continue
                            }
                            let onDisk = ((try? FileManager.default.attributesOfItem(atPath: localRoot.appendingPathComponent(relative).path))?[.size] as? NSNumber)?.int64Value
                            let object = try await files.stat(relative, in: listing)
                            XCTAssertEqual(object?.size, onDisk, "\(server.kind): \(relative)")
                            if onDisk.map({ ref.kind.isExact ? $0 == ref.size : $0 >= ref.size }) != true { restorableHere = false }
                            if object.map({ ref.kind.isExact ? $0.size == ref.size : $0.size >= ref.size }) != true { restorableThere = false }
                        }
                        XCTAssertEqual(restorableThere, restorableHere, "\(server.kind) store-\(store): \(snapshot.directory) restorable")
                        if restorableHere { restorable += 1 } else { broken += 1 }
                    }
                }
                XCTAssertGreaterThan(restorable, 0, "store-\(store)")
                print("\(server.kind) store-\(store): \(restorable) snapshot readings restorable, \(broken) not, equal to the local store")
                // A key the listing did not include is still found by asking the server.
                let anyFile = try XCTUnwrap(uploaded.keys.sorted().first)
                let headed = try await files.stat(anyFile, in: S3StoreFiles.Listing())
                XCTAssertEqual(headed?.size, uploaded[anyFile].map { Int64($0.count) }, "\(server.kind): HEAD for a key not listed")
            }
        }
    }

    /// Uploads every file below `root` under `location`, with the 0-byte `…/` markers S3A leaves for `shared/` and
    /// `taskowned/`; returns store-relative path → bytes.
    private func upload(_ root: URL, to location: S3Location, with s3: S3Client) async throws -> [String: Data] {
        var out: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { throw S3ServerError(description: "no fixture at \(root.path)") }
        var markers = Set<String>()
        while let relative = walker.nextObject() as? String {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: root.appendingPathComponent(relative).path, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                let name = (relative as NSString).lastPathComponent
                if name == "shared" || name == "taskowned" { markers.insert(relative + "/") }
                continue
            }
            let data = try Data(contentsOf: root.appendingPathComponent(relative))
            try await s3.put(bucket: location.bucket, key: location.key(relative), data: data)
            out[relative] = data
        }
        for marker in markers { try await s3.put(bucket: location.bucket, key: location.key(marker), data: Data()) }
        XCTAssertFalse(out.isEmpty, "fixture \(root.path) is empty")
        return out
    }
}
