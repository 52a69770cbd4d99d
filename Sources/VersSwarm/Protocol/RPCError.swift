import MCP

/// A JSON-RPC 2.0 error object, sent as the `error` member of a response.
public struct RPCError: Error, Sendable, CustomStringConvertible {
    /// The JSON-RPC error code.
    public var code: Int
    /// A one-sentence message an agent can act on.
    public var message: String
    /// Structured detail (the offending field's path, the tool's error kind).
    public var data: Value?

    public init(code: Int, message: String, data: Value? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(code): \(message)" }

    var json: Value {
        .compact(["code": .int(code), "message": .string(message), "data": data])
    }

    // MARK: - Standard codes

    /// -32700: the line is not JSON.
    public static func parseError(_ detail: String) -> RPCError {
        RPCError(code: -32700, message: "Parse error: \(detail)")
    }

    /// -32600: JSON, but not a valid request object.
    public static func invalidRequest(_ detail: String) -> RPCError {
        RPCError(code: -32600, message: "Invalid Request: \(detail)")
    }

    /// -32601: no such method.
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(code: -32601, message: "Method not found: \(method)", data: .object(["method": .string(method)]))
    }

    /// -32602: the params (or one field of them) are wrong; `path` names the field.
    public static func invalidParams(_ path: String, _ detail: String) -> RPCError {
        let prefix = path.isEmpty ? "params" : path
        return RPCError(code: -32602, message: "Invalid params: \(prefix): \(detail)", data: .object(["path": .string(path)]))
    }

    /// -32603: a fault inside the server.
    public static func internalError(_ detail: String) -> RPCError {
        RPCError(code: -32603, message: "Internal error: \(detail)")
    }

    /// -32800: the request was cancelled by the client.
    public static let cancelled = RPCError(code: -32800, message: "Request cancelled")

    /// -32000: a tool called as a plain method failed; `data` carries the tool's error.
    static func toolFailed(_ tool: String, _ error: ToolError) -> RPCError {
        RPCError(code: -32000, message: error.message, data: .object([
            "tool": .string(tool), "kind": .string(error.kind.rawValue),
        ]))
    }
}
