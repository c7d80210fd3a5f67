import S3Client
import XCTest

final class S3LocationTests: XCTestCase {
    func testParsingKeysAndRelativePaths() throws {
        let loc = try S3Location(parsing: "s3://flink/flink-store/")
        XCTAssertEqual(loc.bucket, "flink")
        XCTAssertEqual(loc.prefix, "flink-store")
        XCTAssertEqual(loc.description, "s3://flink/flink-store")
        XCTAssertEqual(loc.key("checkpoints/j/chk-3/_metadata"), "flink-store/checkpoints/j/chk-3/_metadata")
        XCTAssertEqual(loc.relative(ofKey: "flink-store/checkpoints/j/shared/x"), "checkpoints/j/shared/x")
        XCTAssertNil(loc.relative(ofKey: "flink-store-2/x"), "a sibling prefix is not below the store")
        XCTAssertEqual(loc.relative(ofURI: "s3a://flink/flink-store/savepoints/sp-1/_metadata"), "savepoints/sp-1/_metadata")
        XCTAssertEqual(loc.relative(ofURI: "S3://flink/flink-store/a"), "a")
        XCTAssertNil(loc.relative(ofURI: "s3://other/flink-store/a"))
        XCTAssertNil(loc.relative(ofURI: "file:/srv/flink-store/a"))

        let whole = try S3Location(parsing: "s3a://my.bucket-1")
        XCTAssertEqual(whole.prefix, "")
        XCTAssertEqual(whole.listPrefix, "")
        XCTAssertEqual(whole.key("a/b"), "a/b")
    }

    func testBadLocationsAreRefusedNamingWhatIsWrong() {
        for (text, expected) in [("http://flink/x", "not an S3 location"), ("s3://Flink/x", "not a bucket name"),
                                 ("s3://ab/x", "not a bucket name"), ("s3://flink/a/../b", "'..'")] {
            XCTAssertThrowsError(try S3Location(parsing: text), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text): \(error)")
            }
        }
    }
}
