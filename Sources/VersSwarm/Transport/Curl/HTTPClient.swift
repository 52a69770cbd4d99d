import Foundation
import Synchronization
internal import CCurl

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    /// A full URL.
    public var url: String
    public var headers: [String]
    public var body: Data?

    public init(method: String, url: String, headers: [String] = [], body: Data? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// One HTTP response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: Data

    /// The body as text (lossy), for error messages.
    public var text: String { String(decoding: body, as: UTF8.self) }
    /// True when the body says it is JSON.
    public var isJSON: Bool { (headers["content-type"] ?? "").contains("json") }
}

/// An HTTP client over libcurl: a pool of easy handles reused across calls
/// (so connections are kept alive), connect and total timeouts, TLS
/// verification with an optional CA file. Transfers run on dedicated
/// threads, never on the cooperative pool.
public final class HTTPClient: Sendable {
    private let tls: TLSOptions
    private let connectTimeoutMS: Int
    private let totalTimeoutMS: Int
    private let idle = Mutex<[CurlEasy]>([])
    private let queue = DispatchQueue(label: "vers-swarm.http", attributes: .concurrent)
    /// Transfers started, for tests and benchmarks.
    public let connectionsOpened = Atomic<Int>(0)

    public init(tls: TLSOptions, connectTimeout: Double = 10, totalTimeout: Double = 120) {
        self.tls = tls
        connectTimeoutMS = Int(connectTimeout * 1000)
        totalTimeoutMS = Int(totalTimeout * 1000)
    }

    /// Sends one request (no retries: the caller knows what is idempotent).
    public func send(_ request: HTTPRequest, timeout: Double? = nil) async throws(CurlError) -> HTTPResponse {
        let result: Result<HTTPResponse, CurlError> = await withCheckedContinuation { continuation in
            queue.async { [self] in
                continuation.resume(returning: Result { () throws(CurlError) -> HTTPResponse in
                    try perform(request, timeoutMS: timeout.map { Int($0 * 1000) } ?? totalTimeoutMS)
                })
            }
        }
        return try result.get()
    }

    private func checkout() throws(CurlError) -> CurlEasy {
        if let easy = idle.withLock({ $0.popLast() }) { return easy }
        return try CurlEasy()
    }

    private func perform(_ request: HTTPRequest, timeoutMS: Int) throws(CurlError) -> HTTPResponse {
        let easy = try checkout()
        var reusable = true
        defer { if reusable { idle.withLock { $0.append(easy) } } }
        try easy.reset(tls: tls, connectTimeoutMS: connectTimeoutMS, totalTimeoutMS: timeoutMS)
        try easy.set(CURLOPT_URL, request.url)
        let collector = Collector()
        let box = Unmanaged.passRetained(collector)
        defer { box.release() }
        try easy.set(CURLOPT_WRITEDATA, pointer: box.toOpaque())
        try easy.set(CURLOPT_HEADERDATA, pointer: box.toOpaque())
        _ = vs_curl_setopt_write_function(easy.handle, { ptr, size, count, user in
            guard let ptr, let user else { return 0 }
            Unmanaged<Collector>.fromOpaque(user).takeUnretainedValue().body.append(UnsafeRawPointer(ptr).assumingMemoryBound(to: UInt8.self), count: size * count)
            return size * count
        })
        _ = vs_curl_setopt_header_function(easy.handle, { ptr, size, count, user in
            guard let ptr, let user else { return 0 }
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: size * count), as: UTF8.self)
            Unmanaged<Collector>.fromOpaque(user).takeUnretainedValue().header(line)
            return size * count
        })
        // "Expect:" stops curl's 100-continue; a bodiless POST/DELETE must not claim a form content type.
        var extra = ["Expect:"]
        if request.body == nil && request.method != "GET" { extra.append("Content-Type:") }
        let headers = CurlList(request.headers + extra)
        try easy.set(CURLOPT_HTTPHEADER, headers.list)
        switch request.method {
        case "GET": try easy.set(CURLOPT_HTTPGET, 1)
        case "POST": try easy.set(CURLOPT_POST, 1)
        default: try easy.set(CURLOPT_CUSTOMREQUEST, request.method)
        }
        let body = request.body ?? Data()
        if request.method != "GET" {
            try easy.set(CURLOPT_POSTFIELDSIZE, body.count)
            try easy.set(CURLOPT_COPYPOSTFIELDS, String(decoding: body, as: UTF8.self))
        }
        do {
            try easy.perform("\(request.method) \(Self.redacted(request.url))")
        } catch {
            reusable = false
            throw error
        }
        if easy.info(CURLINFO_NUM_CONNECTS) > 0 { connectionsOpened.add(1, ordering: .relaxed) }
        return HTTPResponse(status: easy.info(CURLINFO_RESPONSE_CODE), headers: collector.headers, body: collector.body)
    }

    /// A URL without its query string (ids and paths only reach messages).
    static func redacted(_ url: String) -> String {
        url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
    }

    /// Gathers one response's body and headers from curl's callbacks.
    private final class Collector {
        var body = Data()
        var headers: [String: String] = [:]

        func header(_ line: String) {
            if line.hasPrefix("HTTP/") { headers = [:]; return }
            guard let colon = line.firstIndex(of: ":") else { return }
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
