import Foundation
import Logging
import MCP

/// The Vers REST API as vers-api.md describes it, over one HTTPClient:
/// errors dispatched on status then Content-Type, retries with jittered
/// backoff for idempotent calls only, and no message ever holding the key.
struct VersAPI: Sendable {
    let configuration: VersConfiguration
    let http: HTTPClient
    let logger: Logger

    /// Whether a request may be sent again after a failure.
    enum Retry { case idempotent, never }

    /// The outcome of a call the caller may inspect (status and body).
    struct Reply {
        var status: Int
        var json: Value?
        /// The body as text, shortened and redacted (for messages).
        var text: String
        /// The whole body (for answers that are not one JSON document).
        var body = Data()
    }

    static let maxAttempts = 5

    /// Sends a request; 2xx comes back, everything else throws a ProviderError
    /// (except statuses listed in `accept`, returned for the caller to read).
    func call(_ method: String, _ path: String, query: [String: String] = [:], body: Value? = nil,
              retry: Retry, accept: Set<Int> = [], timeout: Double? = nil, json expectJSON: Bool = true) async throws -> Reply {
        var url = configuration.baseURL + path
        if !query.isEmpty {
            url += "?" + query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        }
        var headers = ["Authorization: Bearer \(configuration.apiKey)", "Accept: application/json"]
        let data = body.map { JSONCoding.encode($0) }
        if data != nil { headers.append("Content-Type: application/json") }
        let request = HTTPRequest(method: method, url: url, headers: headers, body: data)
        let what = "\(method) \(path)"
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPResponse
            do {
                response = try await http.send(request, timeout: timeout)
            } catch {
                logger.debug("vers api transfer failed", metadata: ["request": "\(what)", "error": "\(configuration.redact(error.message))", "attempt": "\(attempt)"])
                let canRetry = (retry == .idempotent || error.beforeSend) && attempt < Self.maxAttempts
                if canRetry {
                    try await backoff(attempt, retryAfter: nil)
                    continue
                }
                throw ProviderError(.backend, configuration.redact("cannot reach the Vers API (\(what)): \(error.message)"))
            }
            logger.debug("vers api", metadata: ["request": "\(what)", "status": "\(response.status)", "attempt": "\(attempt)"])
            let text = configuration.redact(String(decoding: response.body.prefix(2000), as: UTF8.self))
            if (200..<300).contains(response.status) {
                if response.body.isEmpty || !expectJSON { return Reply(status: response.status, json: nil, text: text, body: response.body) }
                if let json = try? JSONCoding.parse(response.body) { return Reply(status: response.status, json: json, text: text) }
                if retry == .idempotent, attempt < Self.maxAttempts {
                    try await backoff(attempt, retryAfter: nil)
                    continue
                }
                throw ProviderError(.backend, "the Vers API answered \(what) with HTTP \(response.status) but a body that is not JSON: \(Self.snippet(text))")
            }
            let json = response.isJSON ? try? JSONCoding.parse(response.body) : nil
            if accept.contains(response.status) { return Reply(status: response.status, json: json, text: text) }
            if [429, 502, 503, 504].contains(response.status), retry == .idempotent, attempt < Self.maxAttempts {
                try await backoff(attempt, retryAfter: response.headers["retry-after"].flatMap(Double.init))
                continue
            }
            throw error(for: response, json: json, text: text, what: what)
        }
    }

    private func error(for response: HTTPResponse, json: Value?, text: String, what: String) -> ProviderError {
        let message = json?["error"]?.stringValue.map(configuration.redact) ?? Self.snippet(text)
        switch response.status {
        case 401:
            return ProviderError(.unavailable, "the Vers API refused the API key (401) for \(what): check VERS_API_KEY")
        case 403 where json == nil:
            return ProviderError(.unavailable, "the Vers API refused the API key (\(response.status) \(Self.snippet(text))) for \(what): check VERS_API_KEY")
        case 403 where message.lowercased().contains("limit"):
            return ProviderError(.quota, "the Vers organisation's quota is used up (\(message)): delete VMs or wait for running ones to finish")
        case 403, 404:
            return ProviderError(.notFound, "the Vers API answered \(what) with \(response.status): \(message)")
        case 409:
            return ProviderError(.conflict, "the Vers API refused \(what) (409): \(message)")
        case 429, 502, 503, 504:
            return ProviderError(.backend, "the Vers API is unavailable (\(what) answered \(response.status): \(message)); try again shortly")
        default:
            return ProviderError(.backend, "the Vers API answered \(what) with \(response.status): \(message)")
        }
    }

    /// Waits 0.5 s · 2ⁿ with jitter, or what Retry-After says (at most 60 s).
    private func backoff(_ attempt: Int, retryAfter: Double?) async throws {
        let base = retryAfter.map { min(max($0, 0), 60) } ?? 0.5 * pow(2, Double(attempt - 1))
        let jitter = retryAfter == nil ? Double.random(in: 0.5...1.0) : 1.0
        try await Task.sleep(for: .seconds(base * jitter))
    }

    static func snippet(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        return flat.count > 200 ? String(flat.prefix(200)) + "…" : (flat.isEmpty ? "(empty body)" : flat)
    }
}
