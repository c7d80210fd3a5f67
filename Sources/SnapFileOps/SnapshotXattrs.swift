import Foundation
import SnapStore

/// Snapshot metadata as extended attributes on a snapshot's directory, so `getfattr -d -m user.snapfs` shows what
/// `snapfs show` shows without leaving the mount.
enum SnapshotXattrs {
    static let names = [
        "user.snapfs.id", "user.snapfs.name", "user.snapfs.kind", "user.snapfs.format", "user.snapfs.state",
        "user.snapfs.created", "user.snapfs.files", "user.snapfs.size", "user.snapfs.references",
        "user.snapfs.referenced-by", "user.snapfs.recovery-point", "user.snapfs.deletable",
    ]

    static func value(_ name: String, _ r: SnapshotReport) -> String? {
        switch name {
        case "user.snapfs.id": return String(r.id)
        case "user.snapfs.name": return r.name
        case "user.snapfs.kind": return r.kind.rawValue
        case "user.snapfs.format": return r.format.rawValue
        case "user.snapfs.state": return r.state.rawValue
        case "user.snapfs.created":
            let f = ISO8601DateFormatter()
            return f.string(from: Date(timeIntervalSince1970: r.createdAt))
        case "user.snapfs.files": return String(r.files)
        case "user.snapfs.size": return String(r.size)
        case "user.snapfs.references": return r.references.joined(separator: ",")
        case "user.snapfs.referenced-by": return r.referencedBy.joined(separator: ",")
        case "user.snapfs.recovery-point": return r.recoveryPoint ? "yes" : "no"
        case "user.snapfs.deletable": return r.deletable ? "yes" : "no: " + (r.notDeletableBecause ?? "")
        default: return nil
        }
    }
}
