/// Why a `_metadata` file could not be decoded.
///
/// Every failure names the byte offset where decoding stopped and what the format required there,
/// so an operator looking at a corrupt or foreign file can open it in a hex viewer and see the
/// problem, instead of getting a bare "invalid data".
public struct MetadataError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Offset, from the start of the file, of the first byte that could not be accepted.
    public let offset: Int
    /// What the format requires at `offset`, e.g. "a state handle type byte (0–17)".
    public let expected: String
    /// What was there instead, e.g. "0x7f" or "end of data (3 bytes left)".
    public let found: String
    /// Where in the structure the reader was, outermost first (e.g. `["operator 2 \"Map\"", "subtask 1"]`).
    /// Kept separate from `expected` so tests and callers can match on the stable part.
    public let context: [String]

    public init(offset: Int, expected: String, found: String, context: [String] = []) {
        self.offset = offset
        self.expected = expected
        self.found = found
        self.context = context
    }

    public var description: String {
        let location = context.isEmpty ? "" : " (in \(context.joined(separator: ", ")))"
        return "at byte \(offset)\(location): expected \(expected), found \(found)"
    }

    /// The same error, annotated with one more enclosing structure.
    /// Added on the way out so the happy path pays nothing for breadcrumbs.
    func within(_ label: String) -> MetadataError {
        MetadataError(offset: offset, expected: expected, found: found, context: [label] + context)
    }
}
