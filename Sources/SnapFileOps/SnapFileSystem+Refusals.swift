import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Every refusal in one place: the errno the SPEC names, and the reason in the event log and the daemon's log.
extension SnapFileSystem {
    /// Every refusal goes to the event log and the daemon's log (SPEC §4: never silent); repeated refusals of the
    /// same kind on one snapshot within a few seconds, as `rm -rf` produces, are logged once.
    func refuse(_ error: FSError, snapshot: String?, _ what: String) -> FSError {
        let key = (snapshot ?? "-") + "|" + String(describing: error.errno)
        let t = now()
        let record = state.withLock { s -> Bool in
            if let last = s.lastRefusalLogged[key], t.timeIntervalSince(last) < 5 { return false }
            s.lastRefusalLogged[key] = t
            return true
        }
        if record {
            store.recordEvent("refusal", snapshot: snapshot, "\(what) refused: \(error)")
        } else {
            logger.debug("refused", metadata: ["snapshot": .string(snapshot ?? "-"), "what": .string(what)])
        }
        return error
    }

    func snapshotName(_ id: SnapshotID) -> String? { state.withLock { $0.listing.byID[id]?.name } }

    func readOnly(_ what: String, _ id: SnapshotID?) -> FSError {
        refuse(.readOnly("snapshots are immutable"), snapshot: id.flatMap(snapshotName), what)
    }

    func controlRefusal(_ what: String) -> FSError {
        refuse(.notPermitted("`latest` and `.snapfs` are part of the mount and cannot be changed"), snapshot: nil, what)
    }

    /// `latest` and `.snapfs` stand at the root beside the snapshots; no removal or move may touch them (EPERM).
    func refuseIfControl(_ rootName: String, _ what: String) throws(FSError) {
        if rootName == "latest" || rootName == ".snapfs" { throw controlRefusal(what) }
    }

    /// What kind of place a directory is, for the operations that create or remove names in it.
    enum Place { case root, snapshot(SnapshotID, String), control }

    func place(_ n: Node) throws(FSError) -> Place {
        switch n {
        case .root: return .root
        case .snapshot(let id): return .snapshot(id, "")
        case .directory(let id, let p): return .snapshot(id, p)
        case .controlDir: return .control
        default: throw .notDirectory
        }
    }
}
