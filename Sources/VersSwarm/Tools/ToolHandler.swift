import Logging
import MCP

/// What a tool returns: the structured output (matching its outputSchema)
/// and whether the call counts as failed (a non-zero exit, a timeout).
public struct ToolOutcome: Sendable {
    /// The structured result.
    public var structured: Value
    /// True when the tool ran but its work failed.
    public var isError: Bool

    public init(_ structured: Value, isError: Bool = false) {
        self.structured = structured
        self.isError = isError
    }
}

/// Reports progress of a long call: (done, total, message).
public typealias ProgressReporter = @Sendable (_ done: Int, _ total: Int, _ message: String) -> Void

/// Everything a tool may use while it runs.
public struct ToolContext: Sendable {
    /// The registry shared by every bridge process.
    public let registry: Registry
    /// The VM backend.
    public let provider: any VMProvider
    /// Logs to stderr.
    public let logger: Logger
    /// The session a scoped bridge (`serve --session NAME`) is confined to.
    public let scope: String?
    /// Set when the caller asked for progress notifications.
    public var progress: ProgressReporter?
}

/// One tool: its MCP definition and its handler.
public protocol ToolHandler: Sendable {
    /// The name, description, schemas and annotations shown in tools/list.
    var definition: Tool { get }
    /// Runs the tool. Throws `RPCError` for bad arguments, `ToolError` when the work failed.
    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome
}
