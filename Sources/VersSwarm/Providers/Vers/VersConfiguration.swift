import Foundation

/// How to reach Vers: the API, the SSH proxy, TLS trust. Read from the
/// environment; the key is kept here and never printed.
public struct VersConfiguration: Sendable {
    /// The API key: a 36-character owner id followed by 64 hex digits.
    let apiKey: String
    /// e.g. https://api.vers.sh/api/v1
    public var baseURL: String
    /// The SSH host name for a VM, `{vm_id}` replaced (SNI and certificate name).
    public var sshHostTemplate: String
    /// Dial this "host:port" instead of the SSH host name's port 443 (tests).
    public var sshConnectTo: String?
    public var tls: TLSOptions
    /// true: exec through `POST /vm/{id}/exec` instead of SSH.
    public var execOverAPI: Bool

    /// The owner id: the key's first 36 characters.
    public var ownerID: String { String(apiKey.prefix(36)) }

    /// Reads VERS_API_KEY, VERS_BASE_URL, VERS_SSH_HOST_TEMPLATE,
    /// VERS_SSH_CONNECT_TO, VERS_CA_FILE, VERS_TLS_INSECURE, VERS_SWARM_EXEC.
    public static func fromEnvironment() throws(ProviderError) -> VersConfiguration {
        let env = ProcessInfo.processInfo.environment
        guard let key = env["VERS_API_KEY"], !key.isEmpty else {
            throw ProviderError(.unavailable, "the Vers backend needs VERS_API_KEY (or use the local backend: VERS_SWARM_BACKEND=local)")
        }
        guard key.count >= 36, !key.contains(where: { $0.isWhitespace || $0 == "\n" }) else {
            throw ProviderError(.unavailable, "VERS_API_KEY does not look like a Vers API key (an owner id followed by 64 hex digits)")
        }
        var base = env["VERS_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.vers.sh/api/v1"
        while base.hasSuffix("/") { base.removeLast() }
        return VersConfiguration(
            apiKey: key, baseURL: base,
            sshHostTemplate: env["VERS_SSH_HOST_TEMPLATE"].flatMap { $0.isEmpty ? nil : $0 } ?? "{vm_id}.vm.vers.sh",
            sshConnectTo: env["VERS_SSH_CONNECT_TO"].flatMap { $0.isEmpty ? nil : $0 },
            tls: TLSOptions(caFile: env["VERS_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }, insecure: env["VERS_TLS_INSECURE"] == "1"),
            execOverAPI: env["VERS_SWARM_EXEC"] == "api")
    }

    /// The SSH host name of a VM.
    func sshHost(_ vmID: String) -> String {
        sshHostTemplate.replacingOccurrences(of: "{vm_id}", with: vmID)
    }

    /// `text` with the API key removed, for anything that may be shown.
    func redact(_ text: String) -> String {
        guard !apiKey.isEmpty else { return text }
        return text.replacingOccurrences(of: apiKey, with: "[redacted]")
            .replacingOccurrences(of: String(apiKey.dropFirst(36)), with: "[redacted]")
    }
}
