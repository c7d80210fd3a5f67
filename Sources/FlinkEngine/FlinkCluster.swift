import Foundation
import Logging
import SnapStore
import Synchronization

/// What the JobManager said about every job it knows, at one moment.
public struct ClusterAnswer: Sendable {
    public struct Job: Sendable, Hashable {
        /// RUNNING, CANCELED, FINISHED, FAILED, RESTARTING, …
        public var state: String
        var checkpoints: FlinkREST.CheckpointStatistics?
        /// Why the job's checkpoint statistics could not be read, when they could not.
        var checkpointsUnreadable: String?
    }

    public var at: Date
    public var jobs: [String: Job]

    /// The states after which Flink never runs the job again (`JobStatus.isGloballyTerminalState`).
    static let terminalStates: Set<String> = ["FINISHED", "CANCELED", "FAILED"]
}

/// The JobManager's latest answer, asked for away from any request that must not wait (a kernel request, a
/// catalog change): a command asks once when it opens the store, a mount keeps asking on a timer
/// (`FlinkStoreWatcher`). Readers only ever get the latest answer, and none at all once it is older than
/// `maximumAge`: then the rules fall back to protecting every job's newest checkpoint, as when there is no
/// JobManager, since a job may have moved on since.
public final class FlinkClusterMonitor: Sendable {
    public let restURL: String?
    /// Seconds each REST call may take.
    public let timeout: Double
    /// Seconds an answer stays usable.
    public let maximumAge: Double
    private let logger: Logger
    private let state = Mutex<(answer: ClusterAnswer?, failure: String?)>((nil, nil))
    /// One poll at a time: a slow JobManager must not pile up callers.
    private let polling = Mutex(())
    /// What `view` last showed, reduced to what the rules read, and how many times that changed.
    private let shown = Mutex<(key: ViewKey?, generation: Int64)>((nil, 0))

    /// The part of a `View` the rules depend on: not the wording of why there is no answer, nor its age.
    private enum ViewKey: Equatable {
        case none, unknown
        case answered([String: ClusterAnswer.Job])
    }

    public init(restURL: String?, timeout: Double = 3, maximumAge: Double = 30, logger: Logger = Logger(label: "snapfs.flink.cluster")) {
        self.restURL = restURL
        self.timeout = timeout
        self.maximumAge = maximumAge
        self.logger = logger
    }

    /// What the rules may use now.
    public enum View: Sendable {
        /// No JobManager configured.
        case none
        /// Configured, but no usable answer: why.
        case unknown(String)
        case answered(ClusterAnswer)
    }

    public func view(now: Date = Date()) -> View {
        guard let restURL else { return .none }
        return state.withLock { s -> View in
            if let a = s.answer {
                let age = now.timeIntervalSince(a.at)
                if age <= maximumAge, s.failure == nil { return .answered(a) }
                if let why = s.failure { return .unknown("the JobManager at \(restURL) did not answer: \(why)") }
                return .unknown("the JobManager at \(restURL) last answered \(Int(age)) s ago")
            }
            return .unknown(s.failure.map { "the JobManager at \(restURL) did not answer: \($0)" } ?? "the JobManager at \(restURL) has not been asked yet")
        }
    }

    /// A number that moves whenever `view` shows something the rules read differently: a job's state or checkpoint
    /// statistics, or the answer becoming unusable or usable again. Cheap and never waits on REST, so a mount's
    /// poller can ask it several times a second and reread its listing only when it moves.
    public func viewGeneration(now: Date = Date()) -> Int64 {
        let key: ViewKey
        switch view(now: now) {
        case .none: key = .none
        case .unknown: key = .unknown
        case .answered(let a): key = .answered(a.jobs)
        }
        return shown.withLock { s in
            if s.key != key { s.key = key; s.generation += 1 }
            return s.generation
        }
    }

    /// Asks the JobManager for every job's state and checkpoint statistics, and keeps the answer. Blocking (up to a
    /// few timeouts); call it from a command or a background task, never from a request.
    public func poll() {
        guard let restURL else { return }
        polling.withLock { _ in
            do {
                let api = try FlinkREST(baseURL: restURL, timeout: timeout)
                let overview = try api.jobsOverview()
                var jobs: [String: ClusterAnswer.Job] = [:]
                for (id, jobState) in overview {
                    var job = ClusterAnswer.Job(state: jobState)
                    do { job.checkpoints = try api.checkpointStatistics(id) } catch { job.checkpointsUnreadable = "\(error)" }
                    jobs[id] = job
                }
                let answer = ClusterAnswer(at: Date(), jobs: jobs)
                let recovered = state.withLock { s -> Bool in
                    defer { s = (answer, nil) }
                    return s.failure != nil
                }
                if recovered { logger.notice("the JobManager answers again", metadata: ["rest": .string(restURL)]) }
            } catch {
                let first = state.withLock { s -> Bool in
                    defer { s.failure = "\(error)" }
                    return s.failure == nil
                }
                if first {
                    logger.warning("the JobManager does not answer; protecting every job's newest checkpoint until it does",
                                   metadata: ["rest": .string(restURL), "error": .string("\(error)")])
                }
            }
        }
    }
}

extension ClusterAnswer.Job {
    init(state: String) { self.init(state: state, checkpoints: nil, checkpointsUnreadable: nil) }
}
