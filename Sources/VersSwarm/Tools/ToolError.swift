/// A tool that ran and could not do its job: reported to MCP clients as an
/// `isError` result, and to plain-method callers as a -32000 error.
public struct ToolError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure, for programs.
    public enum Kind: String, Sendable {
        /// The VM, commit or label does not exist.
        case notFound = "not_found"
        /// The request conflicts with the current state (label taken, VM deleted).
        case conflict
        /// The backend failed; the message says what to do next.
        case backend
        /// The backend is not usable on this machine.
        case unavailable
        /// The call was cancelled.
        case cancelled
        /// A scoped bridge was asked to act outside its session.
        case forbidden
        /// The backend's quota (vCPUs, memory) is used up for now.
        case quota
    }

    /// What kind of failure.
    public var kind: Kind
    /// A message an agent can act on: what failed and the next step.
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func vmNotFound(_ id: String) -> ToolError {
        ToolError(.notFound, "VM \(id) not found: it was deleted or never existed; list_vms shows live VMs")
    }

    static func commitNotFound(_ ref: String) -> ToolError {
        ToolError(.notFound, "commit or label \"\(ref)\" not found, and no VM has that id: the commits tool lists commits and labels, list_vms lists VMs")
    }
}
