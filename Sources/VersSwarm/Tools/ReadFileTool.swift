import Foundation
import MCP

/// `read_file`: a file's bytes from a VM, as UTF-8 text or base64.
struct ReadFileTool: ToolHandler {
    static let defaultMax = 1 << 20
    static let limit = 16 << 20

    let definition = Tool(
        name: "read_file",
        title: "Read a file from a VM",
        description: "Read a regular file from a VM without shell quoting. encoding \"utf8\" (default) or \"base64\" for binary. At most max_bytes are returned (truncated is set when the file is longer).",
        inputSchema: Schema.object([
            "vm_id": Schema.string("The VM", minLength: 1),
            "session": Schema.string("Or: the session whose VM to read", minLength: 1),
            "path": Schema.string("Absolute path inside the VM", minLength: 1),
            "encoding": .object(["type": "string", "enum": ["utf8", "base64"], "description": "How content is returned"]),
            "max_bytes": Schema.integer("Bytes returned at most (default 1 MiB)", minimum: 1, maximum: ReadFileTool.limit),
        ], required: ["path"]),
        annotations: .init(title: "Read a file", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true),
        outputSchema: Schema.object([
            "path": Schema.string("The file"),
            "content": Schema.string("Its bytes, as encoding says"),
            "encoding": Schema.string("utf8 or base64"),
            "size": Schema.integer("The file's full size in bytes", minimum: 0),
            "truncated": Schema.boolean("True when only the first max_bytes are returned"),
        ], required: ["path", "content", "encoding", "size", "truncated"])
    )

    /// Reads inside the VM, so the VM's own symlinks resolve in the VM.
    static let script = #"f=$1; n=$2; [ -f "$f" ] || { [ -e "$f" ] && echo "$f is not a regular file" >&2 || echo "$f: no such file" >&2; exit 2; }; wc -c < "$f" && head -c "$n" -- "$f" | base64 -w 0"#

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vm_id", "session", "path", "encoding", "max_bytes"])
        let path = try arguments.requiredString("path")
        guard path.hasPrefix("/") else { throw arguments.fail("path", "must be an absolute path") }
        let encoding = try arguments.string("encoding") ?? "utf8"
        guard ["utf8", "base64"].contains(encoding) else { throw arguments.fail("encoding", "must be utf8 or base64") }
        let max = try arguments.int("max_bytes", in: 1...Self.limit) ?? Self.defaultMax
        let vmID = try await context.targetVM(arguments)
        let result = try await context.provider.exec(vmID: vmID, ExecRequest(
            argv: ["/bin/sh", "-c", Self.script, "read_file", path, String(max)], timeout: 120,
            maxOutputBytes: max * 4 / 3 + 4096))
        guard result.exitCode == 0 else {
            let reason = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ToolError(.notFound, "cannot read \(path) on VM \(vmID): \(reason.isEmpty ? "exit \(result.exitCode)" : reason)")
        }
        let lines = result.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        guard lines.count == 2, let size = Int(lines[0].trimmingCharacters(in: .whitespaces)),
              let data = Data(base64Encoded: String(lines[1])) else {
            throw ToolError(.backend, "read_file got an unexpected answer from VM \(vmID)")
        }
        let content: String
        if encoding == "base64" {
            content = data.base64EncodedString()
        } else {
            guard let text = String(data: data, encoding: .utf8) else {
                throw ToolError(.conflict, "\(path) is not valid UTF-8: read it with encoding \"base64\"")
            }
            content = text
        }
        return ToolOutcome(.object([
            "path": .string(path), "content": .string(content), "encoding": .string(encoding),
            "size": .int(size), "truncated": .bool(size > data.count),
        ]))
    }
}
