import Foundation
internal import CCurl

/// A raw byte stream to a server, opened by libcurl with CONNECT_ONLY: plain
/// TCP, or TLS with SNI and certificate verification. SSH runs on top of it
/// (libssh2's send/recv callbacks call `send`/`receive`).
final class CurlStream: @unchecked Sendable {
    private let easy: CurlEasy
    /// The connected socket, for polling.
    let socket: Int32

    /// Connects to `host:port` — dialling `connectTo` ("ip:port") instead when
    /// given, while still using `host` for SNI and certificate checks.
    init(host: String, port: Int, tls: TLSOptions?, connectTo: String?, timeout: Double) throws(CurlError) {
        easy = try CurlEasy()
        try easy.reset(tls: tls ?? TLSOptions(), connectTimeoutMS: Int(timeout * 1000), totalTimeoutMS: 0)
        try easy.set(CURLOPT_URL, "\(tls == nil ? "http" : "https")://\(host):\(port)/")
        try easy.set(CURLOPT_CONNECT_ONLY, 1)
        let route = CurlList(connectTo.map { ["\(host):\(port):\($0)"] } ?? [])
        if connectTo != nil { try easy.set(CURLOPT_CONNECT_TO, route.list) }
        try easy.perform("connect to \(host):\(port)\(connectTo.map { " via \($0)" } ?? "")")
        socket = easy.activeSocket
    }

    /// Bytes sent, 0 when the stream would block, or a CurlError.
    func send(_ buffer: UnsafeRawPointer, _ length: Int) -> Result<Int, CurlError> {
        var sent = 0
        let code = curl_easy_send(easy.handle, buffer, length, &sent)
        if code == CURLE_AGAIN { return .success(0) }
        if let error = CurlError.check(code, "send") { return .failure(error) }
        return .success(sent)
    }

    /// Bytes received; nil when the stream would block; 0 at end of stream.
    func receive(_ buffer: UnsafeMutableRawPointer, _ length: Int) -> Result<Int?, CurlError> {
        var received = 0
        let code = curl_easy_recv(easy.handle, buffer, length, &received)
        if code == CURLE_AGAIN { return .success(nil) }
        if let error = CurlError.check(code, "receive") { return .failure(error) }
        return .success(received)
    }
}
