/// A bucket and a key prefix, as a user names an S3 store: `s3://BUCKET/PREFIX` (Flink's Hadoop S3A client writes
/// the same place as `s3a://BUCKET/PREFIX`, so both are taken).
///
/// The prefix is kept without leading or trailing `/`: a "directory" on S3 is only a key prefix, and the store's
/// keys are `PREFIX/` followed by the store-relative path.
public struct S3Location: Sendable, Hashable, CustomStringConvertible {
    public var bucket: String
    public var prefix: String

    public init(bucket: String, prefix: String) throws(S3Error) {
        guard Self.isValidBucket(bucket) else {
            throw .invalidArgument("'\(bucket)' is not a bucket name: 3 to 63 characters, lower-case letters, digits, '.' and '-', starting and ending with a letter or digit")
        }
        let trimmed = prefix.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !trimmed.contains(where: { $0 == "." || $0 == ".." }) else {
            throw .invalidArgument("the prefix '\(prefix)' has a '.' or '..' segment, which S3 keeps as part of the key")
        }
        self.bucket = bucket
        self.prefix = trimmed.joined(separator: "/")
    }

    /// Parses `s3://BUCKET[/PREFIX]` or `s3a://BUCKET[/PREFIX]`.
    public init(parsing text: String) throws(S3Error) {
        let lower = text.lowercased()
        guard let scheme = ["s3://", "s3a://"].first(where: { lower.hasPrefix($0) }) else {
            throw .invalidArgument("'\(text)' is not an S3 location: expected s3://BUCKET/PREFIX")
        }
        let rest = text.dropFirst(scheme.count)
        let bucket = String(rest.prefix { $0 != "/" })
        try self.init(bucket: bucket, prefix: String(rest.dropFirst(bucket.count)))
    }

    /// `s3://BUCKET/PREFIX`, the form Flink's `s3://` paths take under it.
    public var description: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }

    /// The key of a store-relative path (`chk-3/_metadata` → `PREFIX/chk-3/_metadata`).
    public func key(_ relative: String) -> String {
        let r = relative.hasPrefix("/") ? String(relative.drop { $0 == "/" }) : relative
        return prefix.isEmpty ? r : (r.isEmpty ? prefix : "\(prefix)/\(r)")
    }

    /// The prefix to list for everything below the store (`PREFIX/`, or nothing for a whole bucket).
    public var listPrefix: String { prefix.isEmpty ? "" : prefix + "/" }

    /// The store-relative path of a key below the store, nil for a key outside it.
    public func relative(ofKey key: String) -> String? {
        guard !prefix.isEmpty else { return key }
        guard key.hasPrefix(listPrefix) else { return nil }
        return String(key.dropFirst(listPrefix.count))
    }

    /// The store-relative path of a URI Flink wrote (`s3://BUCKET/PREFIX/x`, `s3a://…`, either case of scheme),
    /// nil when it names another bucket or lies outside the prefix.
    public func relative(ofURI uri: String) -> String? {
        guard let other = try? S3Location(parsing: uri), other.bucket == bucket else { return nil }
        if prefix.isEmpty { return other.prefix }
        if other.prefix == prefix { return "" }
        return other.prefix.hasPrefix(listPrefix) ? String(other.prefix.dropFirst(listPrefix.count)) : nil
    }

    static func isValidBucket(_ name: String) -> Bool {
        guard (3...63).contains(name.count), let first = name.first, let last = name.last,
              first.isLetter || first.isNumber, last.isLetter || last.isNumber else { return false }
        return name.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" }
    }
}
