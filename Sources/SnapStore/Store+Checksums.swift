import Foundation
import Crypto
import GRDB

extension Store {
    /// The SHA-256 of a stored file's bytes, as `sha256sum` prints it; nil for an object recorded without any
    /// checksum (a file an engine wrote itself).
    ///
    /// Most files have theirs from the copy that stored them. A file stored with holes has only its `SparseDigest`
    /// (hashing its holes would cost its length, not its data): its SHA-256 is computed here the first time
    /// something asks, its bytes checked against the digest as they are hashed, and recorded when the store can be
    /// written, so the next ask is one catalog read. Bytes that no longer match the digest are `.corrupt`, and
    /// nothing is recorded.
    public func sha256(of entry: SnapshotEntry) throws(StoreError) -> String? {
        if let s = entry.sha256 { return s }
        guard let id = entry.object, let path = entry.objectPath else { return nil }
        let row: Row?
        do { row = try db.read { try Row.fetchOne($0, sql: "SELECT sha256, sparse_digest FROM objects WHERE id = ?", arguments: [id]) } }
        catch { throw .wrap(error, "cannot read catalog") }
        if let s = row?["sha256"] as String? { return s }
        guard let digest = row?["sparse_digest"] as String? else { return nil }
        let sha = try checkedSHA256(objectPath: path, sparseDigest: digest, what: entry.path)
        recordSHA256(sha, of: id)
        return sha
    }

    /// The SHA-256 of the object at `objectPath`, its bytes checked against `sparseDigest` as they are hashed.
    func checkedSHA256(objectPath path: String, sparseDigest digest: String, what: String) throws(StoreError) -> String {
        var source = FileTreeSource(root: root)
        source.expectedSparse = [path: digest]
        var hasher = SHA256()
        do {
            _ = try source.readExtents(SourceEntry(path: path, type: .file, size: 0, mode: 0, mtimeNanos: 0)) { chunk in
                switch chunk {
                case .data(let bytes): hasher.update(bufferPointer: bytes)
                case .hole(let n): hasher.updateZeros(n)
                }
            }
        } catch SourceProblem.checksumMismatch(_, let want, let got) {
            throw .corrupt("stored bytes of '\(PathBytes.printable(what))' (\(path)) do not match their checksum (expected \(want), found \(got))")
        } catch SourceProblem.vanished {
            throw .corrupt("stored object of '\(PathBytes.printable(what))' is missing (\(path))")
        } catch let SourceProblem.unreadable(p, e) {
            throw .io(path: p, errno: e, what: "cannot read")
        } catch {
            throw .corrupt("cannot checksum the stored object of '\(PathBytes.printable(what))' (\(path)): \(error)")
        }
        return hasher.finalize().hexString
    }

    /// Records a SHA-256 computed after the copy (see `sha256(of:)`); nothing on a read-only store, and a failure
    /// only costs computing it again next time. The catalog's generation does not move: nothing shown changed.
    func recordSHA256(_ sha: String, of id: ObjectID) {
        guard !isReadOnly else { return }
        do {
            try db.write { try $0.execute(sql: "UPDATE objects SET sha256 = ? WHERE id = ? AND sha256 IS NULL", arguments: [sha, id]) }
        } catch {
            logger.notice("cannot record a computed SHA-256: \(error)")
        }
    }
}
