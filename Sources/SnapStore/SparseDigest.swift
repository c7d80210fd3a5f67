import Foundation
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// The checksum of a file stored with holes, computed in time proportional to its data, not its length.
///
/// A whole-content SHA-256 (what `sha256sum` prints) must hash every byte, holes included: for an 8 GiB file holding
/// 10 KiB that is 8 GiB of zeros and seconds of CPU, in every snapshot of it. This digest hashes only the 4 KiB
/// blocks that are not all zeros, each with its offset and length, and then the file's length; every skipped block
/// is zeros by construction, so two files have the same digest exactly when they have the same bytes, however
/// their holes are allocated on disk (a source's holes, the store's, an export's). The input starts with a tag of
/// its own, so no file's digest can equal a plain SHA-256 of any content, and the catalog keeps it in a column of
/// its own (`objects.sparse_digest`), never where a SHA-256 is expected.
///
/// Fed in file order: `update` with bytes, `skip` for a hole (bytes known to be zero, never looked at).
struct SparseDigest {
    static let tag = Array("snapfs sparse-sha256 v1\0".utf8)
    static let block = SparseWriter.block

    private var hasher = SHA256()
    /// Bytes seen so far (data and holes).
    private(set) var length: Int64 = 0
    /// The block `length` is inside, when it does not end on a block boundary: its first `fill` bytes.
    private var partial = [UInt8](repeating: 0, count: SparseDigest.block)
    private var fill = 0

    init() { hasher.update(data: Self.tag) }

    mutating func update(_ chunk: UnsafeRawBufferPointer) {
        guard var p = chunk.baseAddress else { return }
        var n = chunk.count
        if fill > 0 {
            let take = min(Self.block - fill, n), at = fill
            partial.withUnsafeMutableBytes { ($0.baseAddress! + at).copyMemory(from: p, byteCount: take) }
            fill += take; length += Int64(take); p += take; n -= take
            if fill == Self.block { emitPartial() }
        }
        while n >= Self.block {
            Self.emit(&hasher, p, Self.block, at: length)
            length += Int64(Self.block); p += Self.block; n -= Self.block
        }
        if n > 0 {
            partial.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            fill = n; length += Int64(n)
        }
    }

    /// `count` bytes of zeros: whole blocks cost nothing.
    mutating func skip(_ count: Int64) {
        var n = count
        if fill > 0, n > 0 {
            let take = Int(min(Int64(Self.block - fill), n)), at = fill
            partial.withUnsafeMutableBytes { _ = ($0.baseAddress! + at).initializeMemory(as: UInt8.self, repeating: 0, count: take) }
            fill += take; length += Int64(take); n -= Int64(take)
            if fill == Self.block { emitPartial() }
        }
        let whole = n / Int64(Self.block) * Int64(Self.block)
        length += whole; n -= whole
        if n > 0 {
            partial.withUnsafeMutableBytes { _ = $0.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(n)) }
            fill = Int(n); length += n
        }
    }

    /// The digest, as lowercase hex.
    mutating func finalize() -> String {
        if fill > 0 { emitPartial() }
        var h = hasher
        withUnsafeBytes(of: UInt64(length).littleEndian) { h.update(bufferPointer: $0) }
        return h.finalize().hexString
    }

    private mutating func emitPartial() {
        let n = fill, at = length - Int64(fill)
        fill = 0
        var h = hasher
        partial.withUnsafeBytes { Self.emit(&h, $0.baseAddress!, n, at: at) }
        hasher = h
    }

    /// One block (the last may be short): hashed with where it is and how long, unless it is all zeros.
    private static func emit(_ hasher: inout SHA256, _ p: UnsafeRawPointer, _ n: Int, at offset: Int64) {
        if memcmp(p, SparseWriter.zeros.baseAddress!, n) == 0 { return }
        withUnsafeBytes(of: UInt64(offset).littleEndian) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: UInt64(n).littleEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: p, count: n))
    }
}

extension SHA256 {
    /// Hashes `count` zero bytes (a hole, where a whole-content SHA-256 is needed).
    mutating func updateZeros(_ count: Int64) {
        var left = count
        while left > 0 {
            let k = Int(min(Int64(SparseWriter.zeros.count), left))
            update(bufferPointer: UnsafeRawBufferPointer(rebasing: SparseWriter.zeros[0..<k]))
            left -= Int64(k)
        }
    }
}
