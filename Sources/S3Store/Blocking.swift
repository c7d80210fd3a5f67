import Foundation
import Synchronization

/// Runs async S3 calls from the store's synchronous code (the catalog's transactions, the importer, kernel
/// requests): the calling thread waits while a detached task does the work.
///
/// The waiting thread is the caller's own (a command's main thread, a FUSE worker, a periodic task's thread); the
/// task runs on the shared concurrency pool and the HTTP client's event loops. A caller already on the concurrency
/// pool (an async REST handler) should not call in here for long work: it would hold one of the pool's threads.
enum Blocking {
    private final class Outcome<T: Sendable>: Sendable {
        let value = Mutex<Result<T, any Error>?>(nil)
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            outcome.value.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try outcome.value.withLock { $0! }.get()
    }
}
