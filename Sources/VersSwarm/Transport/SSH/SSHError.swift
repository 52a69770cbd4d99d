/// An SSH failure: which VM, what step, libssh2's code and message.
public struct SSHError: Error, Sendable, CustomStringConvertible {
    public var vmID: String
    public var step: String
    public var code: Int32
    public var message: String
    /// True when the session is unusable and a new one may succeed.
    public var sessionDead: Bool
    /// True once the server accepted the exec request: the command may have
    /// run (in part), so it must not be sent again.
    public var commandStarted = false

    public var description: String {
        "SSH to VM \(vmID) failed at \(step): \(message)\(code != 0 ? " (libssh2 \(code))" : "")"
            + (commandStarted ? "; the command had started, so it was not run again: its outcome is unknown" : "")
    }
}
