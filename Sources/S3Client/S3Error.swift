/// What went wrong talking to S3, as values a caller can branch on. Messages name the operation, the bucket and
/// key, and the server's own error code; never a credential.
public enum S3Error: Error, Equatable, CustomStringConvertible {
    /// 403: the server refused these credentials or this operation. Not retried.
    case accessDenied(operation: String, resource: String, code: String, message: String)
    /// 404 on a key or a bucket.
    case notFound(operation: String, resource: String, code: String)
    /// 412: a conditional write found the key already there (`If-None-Match: *`).
    case preconditionFailed(operation: String, resource: String)
    /// Any other answer that is not a success, after retries where the status allows them.
    case http(operation: String, resource: String, status: Int, code: String, message: String)
    /// The connection failed or broke (refused, reset, timed out), after retries where the request allows them.
    case transport(operation: String, resource: String, underlying: String)
    /// A success whose body did not parse as the operation's answer.
    case invalidResponse(operation: String, detail: String)
    /// No usable credentials.
    case credentials(String)
    /// A location or argument that cannot name an S3 object.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .accessDenied(op, resource, code, message):
            return "S3 refused \(op) on \(resource) (403 \(code)\(message.isEmpty ? "" : ": \(message)")); check the access key and secret (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile in ~/.aws/credentials) and the bucket's permissions"
        case let .notFound(op, resource, code):
            return "S3 \(op): \(resource) not found (404 \(code))"
        case let .preconditionFailed(op, resource):
            return "S3 \(op): \(resource) already exists (412 PreconditionFailed)"
        case let .http(op, resource, status, code, message):
            return "S3 \(op) on \(resource) failed: HTTP \(status) \(code)\(message.isEmpty ? "" : ": \(message)")"
        case let .transport(op, resource, underlying):
            return "S3 \(op) on \(resource) failed: connection error: \(underlying)"
        case let .invalidResponse(op, detail):
            return "S3 \(op): the server's answer did not parse: \(detail)"
        case let .credentials(message):
            return "S3 credentials: \(message)"
        case let .invalidArgument(message):
            return message
        }
    }
}
