import Foundation

/// A copy that could not be written as the plan says.
public struct PlanCopyError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let reason: String

    public var description: String { "cannot copy \(source): \(reason)" }
}

extension SelfContainedPlan.Copy {
    /// Writes this copy at `destination`, which must not exist yet: the whole source file, or just the segment's
    /// bytes (`size` of them from `offset`). A source that ends before the segment does fails the copy, so no
    /// shorter file than the new `_metadata` names is ever left.
    public func write(to destination: String) throws {
        let fm = FileManager.default
        guard let offset else { return try fm.copyItem(atPath: source, toPath: destination) }
        guard offset >= 0, size >= 0 else {
            throw PlanCopyError(source: source, reason: "a segment at \(offset) of \(size) bytes")
        }
        let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: source))
        defer { try? input.close() }
        guard !fm.fileExists(atPath: destination), fm.createFile(atPath: destination, contents: nil) else {
            throw PlanCopyError(source: source, reason: "\(destination) exists or cannot be created")
        }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: destination))
        defer { try? output.close() }
        try input.seek(toOffset: UInt64(offset))
        var left = size
        while left > 0 {
            let chunk = try input.read(upToCount: Int(min(left, 1 << 20))) ?? Data()
            guard !chunk.isEmpty else {
                throw PlanCopyError(
                    source: source, reason: "it ends \(left) bytes before the segment at \(offset) of \(size) bytes does")
            }
            try output.write(contentsOf: chunk)
            left -= Int64(chunk.count)
        }
    }
}
