import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import OpenAPIHummingbird
import OpenAPIRuntime
import Prometheus
import SnapStore

/// Where the REST server listens, as `--listen HOST:PORT` gives it. Only loopback unless remote access is asked for
/// explicitly: the API deletes snapshots, and a port open to the network by accident must not be possible.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(parsing text: String, allowRemote: Bool) throws(StoreError) {
        let host: String, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .badInput("--listen '\(text)' is not HOST:PORT (an IPv6 address goes in brackets: [::1]:8080)")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw .badInput("--listen '\(text)' is not HOST:PORT, e.g. 127.0.0.1:8080")
            }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw .badInput("--listen '\(text)' is not HOST:PORT with a port from 0 to 65535")
        }
        if !allowRemote && !Self.isLoopback(host) {
            throw .badInput("--listen \(text) is not a loopback address: the API can delete snapshots; pass --allow-remote to serve \(host) anyway")
        }
        self.host = host
        self.port = port
    }

    /// 127.0.0.0/8, ::1 and `localhost`.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { b in b.prefix(15).allSatisfy { $0 == 0 } && b[15] == 1 }
        }
        return false
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The REST server: the generated routes of `openapi.yaml` over `SnapshotAPI`, behind the token check and the
/// request metrics, served by Hummingbird on its own threads beside whatever the process does (the FUSE loop, or
/// nothing for `snapfs serve`).
public final class APIServer: Sendable {
    /// `snapfs_api_requests_total{method,path,status}` and `snapfs_api_request_seconds{method,path}`.
    public static let requestsMetric = "snapfs_api_requests_total"
    public static let latencyMetric = "snapfs_api_request_seconds"

    /// The address actually bound (with port 0 in `--listen`, the port the system chose).
    public let bound: ListenAddress
    private let task: Task<Void, any Error>

    private init(bound: ListenAddress, task: Task<Void, any Error>) {
        self.bound = bound
        self.task = task
    }

    /// The process's metrics registry, bootstrapped once: every counter the store, the engine and the server record
    /// from then on appears at `/metrics`.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        StoreMetrics.register()
        return registry
    }

    /// Reads a token file: its first line, without surrounding blanks; an empty one is refused, since it would let
    /// anyone in who sends an empty token.
    public static func readToken(_ path: String) throws(StoreError) -> String {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) }
        catch { throw .badInput("cannot read token file \(path): \(error.localizedDescription)") }
        let token = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !token.isEmpty else { throw .badInput("token file \(path) is empty") }
        return token
    }

    /// Binds and starts serving; returns once the socket is bound, or throws why it could not be.
    public static func start(access: StoreAccess, listen: ListenAddress, token: String?, registry: PrometheusCollectorRegistry,
                             logger: Logger) throws(StoreError) -> APIServer {
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware())
        router.add(middleware: TokenMiddleware(token: token))
        router.get("/openapi.yaml") { _, _ -> Response in
            guard let text = OpenAPIDocument.text else { throw HTTPError(.notFound, message: "openapi.yaml is not installed beside snapfs") }
            return Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        let api = SnapshotAPI(access: access, registry: registry)
        do { try api.registerHandlers(on: router, middlewares: [UnreadableRequestMiddleware()]) }
        catch { throw .badInput("cannot register the API's routes: \(error)") }

        let started = StartSignal()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "snapfs"),
            onServerRunning: { channel in started.signal(.success(channel.localAddress?.port ?? listen.port)) },
            logger: logger)
        let task = Task.detached {
            do { try await app.runService(gracefulShutdownSignals: []) }
            catch { started.signal(.failure(error)); throw error }
        }
        switch started.wait() {
        case .success(let port):
            let bound: ListenAddress
            do { bound = try ListenAddress(parsing: "\(ListenAddress.bracketed(listen.host)):\(port)", allowRemote: true) }
            catch { bound = listen }
            return APIServer(bound: bound, task: task)
        case .failure(let error):
            task.cancel()
            throw .io(path: "", errno: (error as? IOError)?.errnoCode ?? EADDRINUSE, what: "cannot listen on \(listen)")
        }
    }

    /// Stops serving; requests in flight are cut off.
    public func stop() { task.cancel() }
}

extension ListenAddress {
    static func bracketed(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }
}

/// Hands the bound port (or the failure to bind) from the server's task to the thread that started it.
private final class StartSignal: @unchecked Sendable {
    private let lock = NSCondition()
    private var result: Result<Int, any Error>?

    func signal(_ r: Result<Int, any Error>) {
        lock.lock(); defer { lock.unlock() }
        if result == nil { result = r; lock.broadcast() }
    }

    func wait() -> Result<Int, any Error> {
        lock.lock(); defer { lock.unlock() }
        while result == nil { lock.wait() }
        return result!
    }
}

/// With a token, every request but `/healthz` needs `Authorization: Bearer <token>`; without one, 401 and a JSON
/// error in the document's shape.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path != "/healthz" else { return try await next(request, context) }
        let given = request.headers[.authorization] ?? ""
        guard Self.matches(given, "Bearer " + token) else {
            StoreMetrics.refused(errno: EACCES)
            return Self.json(.unauthorized, error: given.isEmpty ? "this server needs Authorization: Bearer <token>" : "wrong token",
                             errno: "EACCES", extra: [.wwwAuthenticate: "Bearer"])
        }
        return try await next(request, context)
    }

    /// Compares in time that does not depend on where the first difference is.
    static func matches(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = x.count ^ y.count
        for i in 0..<max(x.count, y.count) { diff |= Int((i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)) }
        return diff == 0
    }

    static func json(_ status: HTTPResponse.Status, error: String, errno: String, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        let body = (try? JSONEncoder().encode(Components.Schemas._Error(error: error, errno: errno))) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Counts every request by method, route and status, and times it.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let status: Int
        defer {
            let path = context.endpointPath ?? "unmatched"
            Counter(label: APIServer.requestsMetric, dimensions: [("method", request.method.rawValue), ("path", path), ("status", String(status))]).increment()
            Timer(label: APIServer.latencyMetric, dimensions: [("method", request.method.rawValue), ("path", path)])
                .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        }
        do {
            let response = try await next(request, context)
            status = response.status.code
            return response
        } catch let e as any HTTPResponseError {
            status = e.status.code
            throw e
        } catch {
            status = 500
            throw error
        }
    }
}

/// A request the generated code could not read (a body that is not the document's JSON, a parameter of the wrong
/// type) fails inside the runtime before any handler runs; it is the caller's mistake, answered 400 with the
/// document's error body. The handlers themselves never throw: they answer every store error through `APIError`.
struct UnreadableRequestMiddleware: ServerMiddleware {
    /// The API's requests are a few dozen bytes; anything past this is refused unread.
    static let maximumBody = 1 << 20

    func intercept(_ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
                   next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?))
        async throws -> (HTTPResponse, HTTPBody?) {
        do {
            // An empty body is no body: `POST /v1/snapshots` with nothing after it takes a default snapshot, as the
            // document's optional request body says, instead of failing to decode zero bytes as JSON.
            var body = body
            if let given = body {
                let bytes = try await Data(collecting: given, upTo: Self.maximumBody)
                body = bytes.isEmpty ? nil : HTTPBody(bytes)
                // No field of the document is nullable, but the generated decoder reads `null` as absent: a client
                // that sends `"label": null` gets told, instead of a snapshot with a name it did not ask for.
                if let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any],
                   let field = object.first(where: { $0.value is NSNull })?.key {
                    throw RequestRefused(message: "'\(field)' must not be null: leave it out instead")
                }
            }
            return try await next(request, body, metadata)
        } catch {
            let why = (error as? RequestRefused)?.message ?? (error as? ServerError).map { "\($0.underlyingError)" } ?? "\(error)"
            let e = APIError(badRequest: "cannot read the \(operationID) request: \(why)")
            let data = (try? JSONEncoder().encode(e.body)) ?? Data()
            return (HTTPResponse(status: .init(code: e.status), headerFields: [.contentType: "application/json"]), HTTPBody(data))
        }
    }
}

struct RequestRefused: Error { let message: String }

/// The OpenAPI document, installed beside the binary as the module's resource; nil if it is not there (the API
/// still works, only `/openapi.yaml` answers 404).
enum OpenAPIDocument {
    static let text: String? = {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for dir in [Bundle.main.bundleURL, exe] {
            let url = dir.appendingPathComponent("SnapFS_SnapAPI.resources/openapi.yaml")
            if let t = try? String(contentsOf: url, encoding: .utf8) { return t }
        }
        return nil
    }()
}
