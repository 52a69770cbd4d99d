internal import CCurl
internal import CLibSSH2

/// Versions of the C libraries this build links, for `doctor`.
public enum NativeLibraries {
    /// libcurl's version string.
    public static var curl: String { String(cString: vs_curl_version()) }
    /// libssh2's version.
    public static var libssh2: String { vs_libssh2_version().map { String(cString: $0) } ?? "unknown" }
}
