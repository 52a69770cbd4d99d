import Foundation
import MCP

/// One line read from the client, classified per JSON-RPC 2.0.
enum Incoming {
    /// A request that must be answered; `id` is a string or number value.
    case request(id: Value, method: String, params: Value?)
    /// A notification: never answered.
    case notification(method: String, params: Value?)
    /// A response to something we sent (we send no requests; ignored).
    case response
    /// Not a valid message; answered with `error` using `id` (null when unknown).
    case invalid(id: Value, error: RPCError)

    /// Classifies one line of input.
    init(line: Data) {
        let value: Value
        do {
            value = try JSONCoding.parse(line)
        } catch {
            self = .invalid(id: .null, error: .parseError("the line is not valid JSON"))
            return
        }
        guard case .object(let object) = value else {
            let detail = value.arrayValue != nil
                ? "batches are not supported; send one request object per line"
                : "expected a request object, got \(value.jsonTypeName)"
            self = .invalid(id: .null, error: .invalidRequest(detail))
            return
        }
        var id: Value = .null
        let hasID = object.keys.contains("id")
        if let raw = object["id"] {
            switch raw {
            case .string, .int: id = raw
            case .double(let d) where d.isFinite: id = raw  // JSON-RPC: fractions are discouraged, not invalid
            case .null: break
            default:
                self = .invalid(id: .null, error: .invalidRequest("id must be a string or a number"))
                return
            }
        }
        guard object["jsonrpc"] == .string("2.0") else {
            self = .invalid(id: id, error: .invalidRequest("jsonrpc must be \"2.0\""))
            return
        }
        if object["method"] == nil, object["result"] != nil || object["error"] != nil {
            self = .response
            return
        }
        guard case .string(let method) = object["method"] ?? .null else {
            self = .invalid(id: id, error: .invalidRequest("method must be a string"))
            return
        }
        let params = object["params"]
        if let params, params.objectValue == nil, params.arrayValue == nil {
            self = .invalid(id: id, error: .invalidRequest("params must be an object or an array"))
            return
        }
        if hasID && id == .null {
            self = .invalid(id: .null, error: .invalidRequest("id must not be null"))
            return
        }
        self = hasID ? .request(id: id, method: method, params: params) : .notification(method: method, params: params)
    }
}
