import Crypto
import Foundation

/// AWS Signature Version 4, header form, for one request.
///
/// Plain SigV4 only: the payload's hash (or `UNSIGNED-PAYLOAD`) goes in `x-amz-content-sha256`. The chunked
/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` form is left out on purpose: Ceph RGW rejects some clients' chunked
/// signatures, and every object this client writes is small enough to hash first.
public struct SigV4Signer: Sendable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public var region: String
    public var service: String
    /// Remove `.`/`..` segments and repeated slashes from the path before signing. Every AWS service but S3 does;
    /// S3 signs the key as it is (a key may well contain `//` or `..`).
    public var normalizePath: Bool

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, region: String,
                service: String = "s3", normalizePath: Bool = false) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.region = region
        self.service = service
        self.normalizePath = normalizePath
    }

    /// The request as the signer sees it. `path` is decoded (a key as it is, `/` between segments);
    /// `query` is the raw query string, percent-encoded or not (it is decoded and encoded anew).
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: String
        /// Header names in any case; a name given twice has its values joined with `,` in order.
        public var headers: [(name: String, value: String)]
        /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
        public var payloadHash: String

        public init(method: String, path: String, query: String = "", headers: [(name: String, value: String)],
                    payloadHash: String) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    /// What signing produced: the headers to add to the request, and the intermediate strings, which the
    /// test vectors check one by one.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var authorization: String
        /// `X-Amz-Date` and, with a session token, `X-Amz-Security-Token`, then `Authorization`.
        public var headersToAdd: [(name: String, value: String)]
    }

    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadHash = hexSHA256(Data())

    public static func hexSHA256<D: DataProtocol>(_ data: D) -> String {
        hex(SHA256.hash(data: data))
    }

    /// Signs `request` at `date`. `includeSessionToken: false` leaves the token out of the signature (it is then
    /// added unsigned), which only the test vectors need.
    public func sign(_ request: Request, date: Date, includeSessionToken: Bool = true) -> Signature {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        var headers = request.headers
        headers.append((name: "x-amz-date", value: amzDate))
        if let token = sessionToken, includeSessionToken { headers.append((name: "x-amz-security-token", value: token)) }

        let canonicalHeaders = Self.canonicalHeaders(headers)
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        let canonicalRequest = [
            request.method.uppercased(),
            Self.canonicalURI(request.path, normalize: normalizePath),
            Self.canonicalQuery(request.query),
            canonicalHeaders.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hexSHA256(Data(canonicalRequest.utf8))]
            .joined(separator: "\n")

        var key = SymmetricKey(data: Data("AWS4\(secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"

        var add: [(name: String, value: String)] = [(name: "X-Amz-Date", value: amzDate)]
        if let token = sessionToken { add.append((name: "X-Amz-Security-Token", value: token)) }
        add.append((name: "Authorization", value: authorization))
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                         authorization: authorization, headersToAdd: add)
    }

    // MARK: - Canonical parts

    static func amzDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// Lower-case names, sorted; values trimmed with inner runs of spaces collapsed; repeated names joined by `,`.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            byName[name.lowercased(), default: []].append(collapsed)
        }
        return byName.keys.sorted().map { (name: $0, value: byName[$0]!.joined(separator: ",")) }
    }

    static func canonicalURI(_ path: String, normalize: Bool) -> String {
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if normalize {
            var kept: [String] = []
            for s in segments.dropFirst() {
                if s == "." || s.isEmpty { continue }
                if s == ".." { _ = kept.popLast(); continue }
                kept.append(s)
            }
            let trailing = path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..")
            segments = [""] + kept + (trailing && !kept.isEmpty ? [""] : [])
        }
        let joined = segments.map { uriEncode($0) }.joined(separator: "/")
        return joined.isEmpty ? "/" : joined
    }

    /// Pairs decoded, encoded the SigV4 way, sorted by name then value; a pair without `=` gets an empty value.
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs: [(String, String)] = query.split(separator: "&").map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecode(String(parts[0]))
            let value = parts.count > 1 ? percentDecode(String(parts[1])) : ""
            return (uriEncode(name), uriEncode(value))
        }
        return pairs.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 unreserved characters stay; every other byte of the UTF-8 is `%XX`, upper-case hex.
    public static func uriEncode(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func percentDecode(_ s: String) -> String {
        s.removingPercentEncoding ?? s
    }

    static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
