import Foundation
internal import CCurl

/// Owns one libcurl easy handle: configured per request, reset between
/// requests (which keeps its live connections for reuse), freed in deinit.
/// Used by one thread at a time: HTTPClient hands handles out from a pool.
final class CurlEasy: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init() throws(CurlError) {
        _ = Self.globalInit
        guard let h = curl_easy_init() else {
            throw CurlError(code: -1, message: "curl_easy_init failed", beforeSend: true)
        }
        handle = h
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Clears options (not connections) and sets the ones every request shares.
    func reset(tls: TLSOptions, connectTimeoutMS: Int, totalTimeoutMS: Int) throws(CurlError) {
        curl_easy_reset(handle)
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_TCP_NODELAY, 1)
        try set(CURLOPT_TCP_KEEPALIVE, 1)
        try set(CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMS)
        try set(CURLOPT_TIMEOUT_MS, totalTimeoutMS)
        try set(CURLOPT_SSL_VERIFYPEER, tls.insecure ? 0 : 1)
        try set(CURLOPT_SSL_VERIFYHOST, tls.insecure ? 0 : 2)
        if let ca = tls.caFile { try set(CURLOPT_CAINFO, ca) }
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code = vs_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        if let error = CurlError.check(code, "curl option ERRORBUFFER") { throw error }
    }

    func set(_ option: CURLoption, _ value: Int) throws(CurlError) {
        if let error = CurlError.check(vs_curl_setopt_long(handle, option, value), "curl option \(option.rawValue)") { throw error }
    }

    func set(_ option: CURLoption, _ value: String) throws(CurlError) {
        if let error = CurlError.check(vs_curl_setopt_string(handle, option, value), "curl option \(option.rawValue)") { throw error }
    }

    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) throws(CurlError) {
        if let error = CurlError.check(vs_curl_setopt_pointer(handle, option, pointer), "curl option \(option.rawValue)") { throw error }
    }

    func set(_ option: CURLoption, _ list: OpaquePointer?) throws(CurlError) {
        let raw = UnsafeMutablePointer<curl_slist>(list)
        if let error = CurlError.check(vs_curl_setopt_slist(handle, option, raw), "curl option \(option.rawValue)") { throw error }
    }

    /// The message curl wrote for the last failure, if any.
    var lastErrorDetail: String {
        String(cString: errorBuffer)
    }

    /// Runs the configured transfer.
    func perform(_ what: String) throws(CurlError) {
        let code = curl_easy_perform(handle)
        if let error = CurlError.check(code, what, detail: lastErrorDetail) { throw error }
    }

    func info(_ what: CURLINFO) -> Int {
        var value = 0
        _ = vs_curl_getinfo_long(handle, what, &value)
        return value
    }

    /// The socket of the connection (CONNECT_ONLY transfers).
    var activeSocket: Int32 {
        var socket: curl_socket_t = -1
        _ = vs_curl_getinfo_socket(handle, &socket)
        return socket
    }
}

/// How TLS peers are verified.
public struct TLSOptions: Sendable {
    /// A CA bundle to trust instead of the system's.
    public var caFile: String?
    /// Skip certificate verification (VERS_TLS_INSECURE=1), as the official clients do.
    public var insecure: Bool

    public init(caFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.insecure = insecure
    }
}

/// A curl string list (headers, CONNECT_TO entries), freed in deinit.
final class CurlList {
    private(set) var list: OpaquePointer?

    init(_ items: [String]) {
        for item in items { list = OpaquePointer(curl_slist_append(UnsafeMutablePointer(list), item)) }
    }

    deinit {
        curl_slist_free_all(UnsafeMutablePointer(list))
    }
}
