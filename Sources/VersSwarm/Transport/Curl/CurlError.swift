internal import CCurl

/// A libcurl failure: the call that failed, curl's code and its message.
/// Never carries request headers (they hold the API key).
public struct CurlError: Error, Sendable, CustomStringConvertible {
    /// curl's CURLcode.
    public var code: Int
    /// What failed, in words.
    public var message: String
    /// True when nothing reached the server (connect/resolve failures): safe to retry any request.
    public var beforeSend: Bool

    public var description: String { message }

    /// Turns a CURLcode into an error, or nil for CURLE_OK.
    static func check(_ code: CURLcode, _ what: @autoclosure () -> String, detail: String = "") -> CurlError? {
        guard code != CURLE_OK else { return nil }
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let early: Set<CURLcode> = [CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_PROXY]
        return CurlError(code: Int(code.rawValue), message: "\(what()): \(text)", beforeSend: early.contains(code))
    }
}
