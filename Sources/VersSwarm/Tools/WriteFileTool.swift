import Foundation
import MCP

/// `write_file`: puts bytes into a file on a VM.
struct WriteFileTool: ToolHandler {
    static let limit = 16 << 20

    let definition = Tool(
        name: "write_file",
        title: "Write a file on a VM",
        description: "Write a file on a VM without shell quoting: content as UTF-8 text, or base64 with encoding \"base64\". Replaces the file; create_dirs makes missing parent directories; mode is octal text such as \"0755\".",
        inputSchema: Schema.object([
            "vm_id": Schema.string("The VM", minLength: 1),
            "session": Schema.string("Or: the session whose VM to write", minLength: 1),
            "path": Schema.string("Absolute path inside the VM", minLength: 1),
            "content": Schema.string("The bytes to write"),
            "encoding": .object(["type": "string", "enum": ["utf8", "base64"], "description": "How content is given"]),
            "mode": .object(["type": "string", "pattern": "^0?[0-7]{3,4}$", "description": "Permissions, e.g. \"0644\""]),
            "create_dirs": Schema.boolean("Create missing parent directories"),
        ], required: ["path", "content"]),
        annotations: .init(title: "Write a file", readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true),
        outputSchema: Schema.object([
            "path": Schema.string("The file"),
            "size": Schema.integer("Bytes written", minimum: 0),
        ], required: ["path", "size"])
    )

    static let script = #"f=$1; m=$2; d=$3; if [ "$d" = 1 ]; then mkdir -p -- "$(dirname -- "$f")" || exit 2; fi; cat > "$f" || exit 2; if [ -n "$m" ]; then chmod "$m" -- "$f" || exit 2; fi"#

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vm_id", "session", "path", "content", "encoding", "mode", "create_dirs"])
        let path = try arguments.requiredString("path")
        guard path.hasPrefix("/") else { throw arguments.fail("path", "must be an absolute path") }
        guard let content = try arguments.string("content") else { throw arguments.fail("content", "required") }
        let encoding = try arguments.string("encoding") ?? "utf8"
        let bytes: [UInt8]
        switch encoding {
        case "utf8": bytes = Array(content.utf8)
        case "base64":
            guard let data = Base64.strictDecode(content) else { throw arguments.fail("content", "is not valid base64") }
            bytes = Array(data)
        default: throw arguments.fail("encoding", "must be utf8 or base64")
        }
        guard bytes.count <= Self.limit else { throw arguments.fail("content", "is \(bytes.count) bytes; the limit is \(Self.limit)") }
        let mode = try arguments.string("mode") ?? ""
        if !mode.isEmpty, !(3...5).contains(mode.count) || !mode.allSatisfy({ ("0"..."7").contains($0) }) {
            throw arguments.fail("mode", "must be octal permissions such as \"0644\"")
        }
        let createDirs = try arguments.bool("create_dirs") ?? false
        let vmID = try await context.targetVM(arguments)
        let result = try await context.provider.exec(vmID: vmID, ExecRequest(
            argv: ["/bin/sh", "-c", Self.script, "write_file", path, mode, createDirs ? "1" : "0"],
            stdin: bytes, timeout: 120, maxOutputBytes: 1 << 16))
        guard result.exitCode == 0 else {
            let reason = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ToolError(.backend, "cannot write \(path) on VM \(vmID): \(reason.isEmpty ? "exit \(result.exitCode)" : reason)")
        }
        return ToolOutcome(.object(["path": .string(path), "size": .int(bytes.count)]))
    }
}
