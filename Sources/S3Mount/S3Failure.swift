import Foundation
import S3Client
import SnapFileOps
import Synchronization

/// How the S3 side of a read fails, as the mount's `FSError`: every failure of a request or of the cache is EIO with
/// a message naming the file and the server's reason. The one place S3 errors become file-system errors.
enum S3Failure: Error {
    /// Writing fetched bytes into a cache file failed.
    case cacheWrite(String)

    static let changedReason = "the object changed on the server since this mount first read it (another ETag); its cached copy is not served"

    static func readFailed(_ relative: String, _ location: S3Location, _ reason: String) -> FSError {
        .io("cannot read \(relative) from \(location): \(reason)")
    }

    static func changed(_ relative: String, _ location: S3Location) -> FSError {
        readFailed(relative, location, changedReason)
    }

    /// A request's error as one line (S3's own messages never hold a credential).
    static func describe(_ error: any Error) -> String {
        switch error {
        case let e as S3Error: return e.description
        case S3Failure.cacheWrite(let why): return "cannot write the cache: \(why)"
        default: return "\(error)"
        }
    }

    /// Runs an S3 request from a kernel worker thread (which is not part of Swift's concurrency pool, so it may block)
    /// and returns its answer; any failure is EIO naming `what`.
    static func blocking<T: Sendable>(_ what: String, _ request: @escaping @Sendable () async throws -> T) throws(FSError) -> T {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<T, any Error>?>(nil)
        Task.detached {
            do {
                let value = try await request()
                result.withLock { $0 = .success(value) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        switch result.withLock({ $0 })! {
        case .success(let value): return value
        case .failure(let error): throw .io("S3 \(what): \(describe(error))")
        }
    }
}
