/// Where the mount reads stored objects from: a readable descriptor for a store-relative path, whose bytes in a
/// given range can be read at their own offsets (so the kernel adapter can splice straight from it).
///
/// The default is the store's own directory (`ObjectDescriptors`); a store whose files live elsewhere (on S3)
/// brings a source that fetches what a read needs into local files first. Every failure is an `FSError`, so the
/// adapter's one errno table covers sources too.
public protocol ObjectSource: Sendable {
    /// Runs `body` with a descriptor of the object at `relativePath` on which the bytes in `range` (cut at the
    /// object's end) are present. An empty range asks for no bytes, only for the descriptor (`fstat` of its length).
    func withDescriptor<R>(_ relativePath: String, covering range: Range<Int64>,
                           _ body: (Int32) throws(FSError) -> R) throws(FSError) -> R

    /// Closes idle descriptors of objects a delete removed from under the store; returns how many.
    @discardableResult
    func closeRemoved() -> Int

    /// Counters shown in `.snapfs/status` under `objectSource` (requests made, bytes fetched, cache use); empty for a
    /// source with nothing to count.
    var counters: [String: Int64] { get }
}

extension ObjectSource {
    public var counters: [String: Int64] { [:] }
}

/// The range every byte of an object lies in, for operations that need the whole object (SEEK_DATA, SEEK_HOLE).
public let wholeObject: Range<Int64> = 0..<Int64.max
