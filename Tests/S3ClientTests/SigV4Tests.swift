import Foundation
import XCTest
@testable import S3Client

/// The signer against AWS's published Signature Version 4 test suite (the header-signing cases), whose data is
/// under Tests/Fixtures/aws-sig-v4-test-suite: each case's request, and the canonical request, string to sign and
/// signature AWS computed for it. Every step is compared, so a failure says which one went wrong.
final class SigV4Tests: XCTestCase {
    static var suite: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/aws-sig-v4-test-suite")
    }

    struct Case {
        var name: String
        var request: SigV4Signer.Request
        var signer: SigV4Signer
        var date: Date
        var includeToken: Bool
        var canonicalRequest: String
        var stringToSign: String
        var signature: String
    }

    func testEveryPublishedHeaderCase() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.suite.path)
            .filter { FileManager.default.fileExists(atPath: Self.suite.appendingPathComponent("\($0)/request.txt").path) }
            .sorted()
        XCTAssertGreaterThanOrEqual(names.count, 30, "the suite's cases are missing from \(Self.suite.path)")
        for name in names {
            let c = try load(name)
            let signed = c.signer.sign(c.request, date: c.date, includeSessionToken: c.includeToken)
            XCTAssertEqual(signed.canonicalRequest, c.canonicalRequest, "\(name): canonical request")
            XCTAssertEqual(signed.stringToSign, c.stringToSign, "\(name): string to sign")
            XCTAssertEqual(signed.signature, c.signature, "\(name): signature")
            XCTAssertTrue(signed.authorization.hasSuffix("Signature=\(c.signature)"), name)
        }
    }

    /// AWS's own S3 example (GET with a Range, empty payload hash), from the S3 SigV4 documentation.
    func testS3DocumentationExample() {
        let signer = SigV4Signer(accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                 region: "us-east-1")
        let request = SigV4Signer.Request(method: "GET", path: "/test.txt", headers: [
            (name: "Host", value: "examplebucket.s3.amazonaws.com"), (name: "Range", value: "bytes=0-9"),
            (name: "x-amz-content-sha256", value: SigV4Signer.emptyPayloadHash),
        ], payloadHash: SigV4Signer.emptyPayloadHash)
        let date = ISO8601DateFormatter().date(from: "2013-05-24T00:00:00Z")!
        let signed = signer.sign(request, date: date)
        XCTAssertEqual(signed.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    func testKeysAreEncodedOnceAndNotNormalizedForS3() {
        XCTAssertEqual(SigV4Signer.canonicalURI("/b/a b/ü/../x//y", normalize: false), "/b/a%20b/%C3%BC/../x//y")
        XCTAssertEqual(SigV4Signer.uriEncode("a+b=c/~"), "a%2Bb%3Dc%2F~")
    }

    func testCredentialsNeverPrintTheirSecret() throws {
        let creds = try S3Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
                                                            "AWS_SESSION_TOKEN": "tok3n-value"])
        for text in ["\(creds)", String(describing: creds), String(reflecting: creds)] {
            XCTAssertFalse(text.contains("s3cr3t-value"), text)
            XCTAssertFalse(text.contains("tok3n-value"), text)
        }
        XCTAssertEqual(creds.sessionToken, "tok3n-value")
    }

    func testCredentialsFromAProfileFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snapfs-creds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("credentials")
        try "[default]\naws_access_key_id = AK1\naws_secret_access_key = SK1\n\n[ceph]\n# comment\naws_access_key_id=AK2\naws_secret_access_key = SK2\naws_session_token = T2\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let env = ["AWS_SHARED_CREDENTIALS_FILE": file.path, "HOME": dir.path]
        XCTAssertEqual(try S3Credentials.resolve(environment: env).accessKeyId, "AK1")
        let ceph = try S3Credentials.resolve(environment: env.merging(["AWS_PROFILE": "ceph"]) { $1 })
        XCTAssertEqual([ceph.accessKeyId, ceph.secretAccessKey, ceph.sessionToken], ["AK2", "SK2", "T2"])
        XCTAssertThrowsError(try S3Credentials.resolve(profile: "nope", environment: env)) { error in
            XCTAssertTrue("\(error)".contains("[nope]"), "\(error)")
        }
        XCTAssertThrowsError(try S3Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "AK"])) { error in
            XCTAssertTrue("\(error)".contains("AWS_SECRET_ACCESS_KEY"), "\(error)")
        }
    }

    // MARK: - Reading a case

    private func load(_ name: String) throws -> Case {
        let dir = Self.suite.appendingPathComponent(name)
        func text(_ file: String) throws -> String { try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8) }
        let context = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("context.json"))) as! [String: Any]
        let creds = context["credentials"] as! [String: Any]
        let date = ISO8601DateFormatter().date(from: context["timestamp"] as! String)!
        let signer = SigV4Signer(accessKeyId: creds["access_key_id"] as! String, secretAccessKey: creds["secret_access_key"] as! String,
                                 sessionToken: creds["token"] as? String, region: context["region"] as! String,
                                 service: context["service"] as! String, normalizePath: context["normalize"] as? Bool ?? true)

        // request.txt: "METHOD PATH HTTP/1.1", header lines (a line starting with whitespace continues the one
        // before), an empty line, the body.
        let raw = try text("request.txt")
        let headEnd = raw.range(of: "\n\n")
        let head = headEnd.map { String(raw[..<$0.lowerBound]) } ?? raw
        let body = headEnd.map { String(raw[$0.upperBound...]) } ?? ""
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        let requestLine = lines.removeFirst()
        let method = String(requestLine.prefix { $0 != " " })
        let target = String(requestLine.dropFirst(method.count + 1).dropLast(" HTTP/1.1".count))
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var headers: [(name: String, value: String)] = []
        for line in lines {
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces)
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((name: String(line[..<colon]), value: String(line[line.index(after: colon)...])))
            }
        }
        let payloadHash = SigV4Signer.hexSHA256(Data(body.utf8))
        if context["sign_body"] as? Bool == true { headers.append((name: "x-amz-content-sha256", value: payloadHash)) }
        let request = SigV4Signer.Request(method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "",
                                          headers: headers, payloadHash: payloadHash)
        return Case(name: name, request: request, signer: signer, date: date,
                    includeToken: !(context["omit_session_token"] as? Bool ?? false),
                    canonicalRequest: try text("header-canonical-request.txt"), stringToSign: try text("header-string-to-sign.txt"),
                    signature: try text("header-signature.txt").trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
