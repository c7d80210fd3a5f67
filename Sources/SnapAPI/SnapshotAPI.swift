import Foundation
import OpenAPIRuntime
import Prometheus
import SnapStore

/// The operations of `openapi.yaml`, each a thin call into the store: the same calls `snapfs list`, `show`,
/// `delete`, `trigger` and `verify` make. Store errors become answers in `APIError` only.
struct SnapshotAPI: APIProtocol {
    let access: StoreAccess
    let registry: PrometheusCollectorRegistry

    private var store: Store { access.store }

    func health(_ input: Operations.health.Input) async throws -> Operations.health.Output {
        let store = self.store
        switch await Blocking.run({ () throws(StoreError) in try store.meta("engine") }) {
        case .success(let engine): return .ok(.init(body: .json(.init(status: .ok, engine: engine ?? "local"))))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func metrics(_ input: Operations.metrics.Input) async throws -> Operations.metrics.Output {
        .ok(.init(body: .plainText(HTTPBody(registry.emitToString()))))
    }

    func status(_ input: Operations.status.Input) async throws -> Operations.status.Output {
        let store = self.store
        switch await Blocking.run({ () throws(StoreError) in try store.status() }) {
        case .success(let st):
            let jobs = st.job.jobs.map {
                Components.Schemas.JobRecovery(job: $0.job, state: $0.state, protected: $0.protected, recoveryPoint: $0.recoveryPoint,
                                               newest: $0.newest, detail: $0.detail)
            }
            return .ok(.init(body: .json(.init(engine: st.engine, running: st.job.running, detail: st.job.detail,
                                               recoveryPoint: st.recoveryPoint, snapshots: st.snapshots, held: st.held, jobs: jobs))))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func listSnapshots(_ input: Operations.listSnapshots.Input) async throws -> Operations.listSnapshots.Output {
        let store = self.store, all = input.query.all ?? false
        switch await Blocking.run({ () throws(StoreError) in try Self.convert(try store.summaries(includingWriting: all), to: [Components.Schemas.SnapshotSummary].self) }) {
        case .success(let rows): return .ok(.init(body: .json(rows)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func showSnapshot(_ input: Operations.showSnapshot.Input) async throws -> Operations.showSnapshot.Output {
        let store = self.store, name = input.path.name
        switch await Blocking.run({ () throws(StoreError) in try Self.convert(try store.report(name), to: Components.Schemas.SnapshotReport.self) }) {
        case .success(let r): return .ok(.init(body: .json(r)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func deleteSnapshot(_ input: Operations.deleteSnapshot.Input) async throws -> Operations.deleteSnapshot.Output {
        let store = self.store, name = input.path.name
        switch await Blocking.run({ () throws(StoreError) in try store.delete(name) }) {
        case .success(let d):
            return .ok(.init(body: .json(.init(snapshot: d.snapshot, removedObjects: d.removedObjects, removedBytes: d.removedBytes,
                                               keptShared: d.keptShared))))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func triggerSnapshot(_ input: Operations.triggerSnapshot.Input) async throws -> Operations.triggerSnapshot.Output {
        var request: Components.Schemas.TriggerRequest?
        if case .json(let body) = input.body { request = body }
        // The document's enum is the same list as `TriggerFormat`; an unknown word never reaches here.
        let format = TriggerFormat(rawValue: request?.format?.rawValue ?? "default") ?? .default
        let label = request?.label
        let store = self.store, engine = access.engine
        let outcome = await Blocking.run { () throws(StoreError) -> Components.Schemas.SnapshotSummary in
            let (_, result) = try store.requestSnapshot(engine: engine, format: format, label: label, source: "rest")
            let taken = try result.get()
            guard let row = try store.summaries(includingWriting: true).first(where: { $0.id == taken.id }) else {
                throw .noSuchSnapshot(taken.name)
            }
            return try Self.convert(row, to: Components.Schemas.SnapshotSummary.self)
        }
        switch outcome {
        case .success(let row): return .created(.init(body: .json(row)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func jobStatus(_ input: Operations.jobStatus.Input) async throws -> Operations.jobStatus.Output {
        let provider = access.jobStatus, engine = store.engineName, job = input.path.job
        let outcome = await Blocking.run { () throws(StoreError) -> Components.Schemas.JobStatus in
            guard let provider else { throw .notPermitted("this store's engine (\(engine)) runs no jobs: job status applies to Flink stores") }
            do { return try JSONDecoder().decode(Components.Schemas.JobStatus.self, from: try provider(job)) }
            catch let e as StoreError { throw e }
            catch { throw .corrupt("cannot express the job's status as the API's JobStatus: \(error)") }
        }
        switch outcome {
        case .success(let s): return .ok(.init(body: .json(s)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func rescaleJob(_ input: Operations.rescaleJob.Input) async throws -> Operations.rescaleJob.Output {
        let b: Components.Schemas.RescaleRequest
        switch input.body { case .json(let v): b = v }
        switch await intent(input.path.job, .rescale(parallelism: b.parallelism, jar: b.jar, entryClass: b.entryClass)) {
        case .success(let r): return .ok(.init(body: .json(r)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func restartJob(_ input: Operations.restartJob.Input) async throws -> Operations.restartJob.Output {
        let b: Components.Schemas.RestartRequest
        switch input.body { case .json(let v): b = v }
        switch await intent(input.path.job, .restart(from: b.from, parallelism: b.parallelism, claimMode: b.claimMode?.rawValue,
                                                     jar: b.jar, entryClass: b.entryClass)) {
        case .success(let r): return .ok(.init(body: .json(r)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func stopJob(_ input: Operations.stopJob.Input) async throws -> Operations.stopJob.Output {
        var format: String?
        if case .json(let b)? = input.body { format = b.format?.rawValue }
        switch await intent(input.path.job, .stop(format: format)) {
        case .success(let r): return .ok(.init(body: .json(r)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    func upgradeJob(_ input: Operations.upgradeJob.Input) async throws -> Operations.upgradeJob.Output {
        let b: Components.Schemas.UpgradeRequest
        switch input.body { case .json(let v): b = v }
        switch await intent(input.path.job, .upgrade(jar: b.jar, entryClass: b.entryClass, parallelism: b.parallelism)) {
        case .success(let r): return .ok(.init(body: .json(r)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    /// Runs an intent through the engine, as the command line does, and reads its record as the document's type.
    private func intent(_ job: String, _ request: StoreAccess.JobIntentRequest) async -> Result<Components.Schemas.IntentRecord, StoreError> {
        let provider = access.jobIntent, engine = store.engineName
        return await Blocking.run { () throws(StoreError) -> Components.Schemas.IntentRecord in
            guard let provider else { throw .notPermitted("this store's engine (\(engine)) runs no jobs: job intents apply to Flink stores") }
            do { return try JSONDecoder().decode(Components.Schemas.IntentRecord.self, from: try provider(job, request)) }
            catch let e as StoreError { throw e }
            catch { throw .corrupt("cannot express the intent's record as the API's IntentRecord: \(error)") }
        }
    }

    func verifyStore(_ input: Operations.verifyStore.Input) async throws -> Operations.verifyStore.Output {
        let verify = access.verify, checksums = input.query.checksums ?? true
        let outcome = await Blocking.run { () throws(StoreError) -> Components.Schemas.VerifyResult in
            let v = try verify(checksums)
            let report: OpenAPIObjectContainer
            do { report = try JSONDecoder().decode(OpenAPIObjectContainer.self, from: v.reportJSON) }
            catch { throw .corrupt("verify report is not a JSON object: \(error)") }
            return .init(clean: v.clean, snapshots: v.snapshots, problems: v.problems, unreferenced: v.unreferenced,
                         report: .init(additionalProperties: report))
        }
        switch outcome {
        case .success(let r): return .ok(.init(body: .json(r)))
        case .failure(let e): let a = APIError(e); return .default(statusCode: a.status, Self.errorBody(a))
        }
    }

    static func errorBody(_ e: APIError) -> Components.Responses._Error { .init(body: .json(e.body)) }

    /// A store value as the document's type of the same shape: both are the JSON `snapfs … --json` prints, so the
    /// REST answer and the command line's never drift apart, and a field the document requires but the store no
    /// longer gives fails here, loudly, rather than on a client.
    static func convert<From: Encodable, To: Decodable>(_ value: From, to: To.Type) throws(StoreError) -> To {
        do { return try JSONDecoder().decode(To.self, from: try JSONEncoder().encode(value)) }
        catch { throw .corrupt("cannot express \(From.self) as the API's \(To.self): \(error)") }
    }
}
