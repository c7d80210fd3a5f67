/// Why a `CheckpointMetadata` value could not be written.
///
/// The writer refuses any value whose bytes Flink (and this package's reader) would not read back as the
/// same value: a field that does not fit its wire type, a handle in a position that does not accept it,
/// or a feature the value's format version does not have. Writing such a value would either fail on
/// restore or silently turn into a different snapshot, so the error names the field and where it is.
public struct MetadataWriteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What the format requires, e.g. "a string of at most 65535 modified UTF-8 bytes".
    public let expected: String
    /// What the value holds instead.
    public let found: String
    /// Where in the structure the writer was, outermost first (e.g. `["operator 2", "subtask 1"]`).
    public let context: [String]

    public init(expected: String, found: String, context: [String] = []) {
        self.expected = expected
        self.found = found
        self.context = context
    }

    public var description: String {
        let location = context.isEmpty ? "" : " (in \(context.joined(separator: ", ")))"
        return "cannot write _metadata\(location): expected \(expected), found \(found)"
    }

    /// The same error, annotated with one more enclosing structure (added on the way out).
    func within(_ label: String) -> MetadataWriteError {
        MetadataWriteError(expected: expected, found: found, context: [label] + context)
    }
}
