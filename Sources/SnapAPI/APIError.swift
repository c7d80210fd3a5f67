import CoreMetrics
import Foundation
import SnapStore

/// The one place a store error becomes an HTTP answer: the status, and a JSON body with the store's own message and
/// the errno the mount reports for the same refusal, so a script can act on `errno` whichever interface it uses.
/// Every refusal is counted in `snapfs_refusals_total{errno}`, as the mount's are.
struct APIError: Sendable {
    let status: Int
    let body: Components.Schemas._Error


    init(_ error: StoreError) {
        status = Self.status(for: error)
        let name = Self.errnoName(error.errno)
        body = .init(error: error.description, errno: name)
        StoreMetrics.refused(errno: error.errno)
    }

    /// A request the server could not read (a malformed body or parameter): 400, EINVAL.
    init(badRequest message: String) {
        status = 400
        body = .init(error: message, errno: "EINVAL")
        StoreMetrics.refused(errno: EINVAL)
    }

    /// 409 for what may work later or once something else changes (busy, held, recovery point, already exists);
    /// 404 for a name that is not there; 4xx for what the caller asked wrongly; 5xx only for the store's or the
    /// machine's failures.
    static func status(for error: StoreError) -> Int {
        switch error {
        case .noSuchSnapshot: return 404
        case .alreadyExists: return 409
        case .badInput: return 400
        case .busy, .locked: return 409
        case .notPermitted, .readOnly: return 403
        case .corrupt: return 500
        case .snapshotFailed, .operationFailed: return 502
        case .io(_, let e, _): return e == ENOSPC || e == EDQUOT ? 507 : 500
        }
    }

    static func errnoName(_ e: Int32) -> String { StoreMetrics.errnoSymbol(e) }
}
