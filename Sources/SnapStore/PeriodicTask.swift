import Foundation
import Synchronization

/// Runs a piece of work on its own thread every `interval` seconds until stopped: the checkpoint scheduler, the
/// Flink store watcher and the mount's catalog poller. `stop` wakes the thread at once and returns only after it
/// has left, so nothing runs on a store or a session after its owner let go of it.
public final class PeriodicTask: Sendable {
    public let name: String
    public let interval: TimeInterval
    /// Whether the first run waits one interval (a scheduler) or starts at once (a watcher catching up).
    public let waitsFirst: Bool
    private let body: @Sendable () -> Void
    private let stopped = Mutex(false)
    private let running = Mutex(false)
    /// Set by `wakeNow`, so a wake that comes while the work runs is not lost: the next pause is skipped.
    private let woken = Mutex(false)
    private let wake = NSCondition()

    public init(name: String, interval: TimeInterval, waitsFirst: Bool, body: @escaping @Sendable () -> Void) {
        self.name = name; self.interval = interval; self.waitsFirst = waitsFirst; self.body = body
    }

    public func start() {
        running.withLock { $0 = true }
        let t = Thread { [self] in
            if waitsFirst { pause() }
            while !stopped.withLock({ $0 }) {
                body()
                pause()
            }
            running.withLock { $0 = false }
            wake.lock(); wake.broadcast(); wake.unlock()
        }
        t.name = name
        t.start()
    }

    public func stop() {
        stopped.withLock { $0 = true }
        wake.lock()
        wake.broadcast()
        while running.withLock({ $0 }) { _ = wake.wait(until: Date().addingTimeInterval(0.1)) }
        wake.unlock()
    }

    /// Runs the work again now instead of at the end of the interval (a watcher told of a change).
    public func wakeNow() {
        wake.lock()
        woken.withLock { $0 = true }
        wake.broadcast()
        wake.unlock()
    }

    private func pause() {
        wake.lock()
        let until = Date().addingTimeInterval(interval)
        while !stopped.withLock({ $0 }) && !woken.withLock({ $0 }) && Date() < until {
            _ = wake.wait(until: until)
        }
        woken.withLock { $0 = false }
        wake.unlock()
    }
}
