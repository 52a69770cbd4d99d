import MCP

/// `delete`: removes VMs; idempotent.
struct DeleteTool: ToolHandler {
    let definition = Tool(
        name: "delete",
        title: "Delete VMs",
        description: "Delete VMs: every process and its storage. Pass vm_id, vm_ids, session, swarm_id, or all: true. Idempotent: ids already gone are listed in not_found. Registry rows go only after the backend confirms.",
        inputSchema: Schema.object([
            "vm_id": Schema.string("One VM", minLength: 1),
            "vm_ids": Schema.array(Schema.string("A VM id"), "Several VMs"),
            "session": Schema.string("The VM bound to this session"),
            "swarm_id": Schema.string("Every VM of this swarm"),
            "all": Schema.boolean("Every VM in the registry"),
        ]),
        annotations: .init(title: "Delete VMs", readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true),
        outputSchema: Schema.object([
            "deleted": Schema.array(Schema.string("A VM id"), "VMs deleted now"),
            "not_found": Schema.array(Schema.string("A VM id"), "VMs that did not exist (already deleted)"),
            "failed": Schema.array(Schema.object([
                "vm_id": Schema.string("A VM id"), "error": Schema.string("Why"),
            ], required: ["vm_id", "error"]), "VMs that could not be deleted (still recorded)"),
        ], required: ["deleted", "not_found"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vm_id", "vm_ids", "session", "swarm_id", "all"])
        var ids: [String] = []
        if let one = try arguments.string("vm_id") { ids.append(one) }
        ids += try arguments.strings("vm_ids") ?? []
        if let session = try arguments.string("session") { ids.append(try context.sessionVM(session)) }
        if let swarm = try arguments.string("swarm_id") { ids += try context.registry.vms(swarm: swarm).map(\.vmID) }
        if try arguments.bool("all") == true { ids += try context.registry.vms().map(\.vmID) }
        guard ["vm_id", "vm_ids", "session", "swarm_id", "all"].contains(where: arguments.has) else {
            throw RPCError.invalidParams(arguments.path, "give vm_id, vm_ids, session, swarm_id or all: true")
        }
        var seen = Set<String>()
        ids = ids.filter { seen.insert($0).inserted }
        var deleted: [String] = [], notFound: [String] = [], failed: [Value] = []
        await withTaskGroup(of: (String, Result<DeleteOutcome, any Error>).self) { group in
            for id in ids {
                group.addTask {
                    do { return (id, .success(try await context.deleteVM(id))) } catch { return (id, .failure(error)) }
                }
            }
            for await (id, result) in group {
                switch result {
                case .success(.deleted): deleted.append(id)
                case .success(.notFound): notFound.append(id)
                case .failure(let error): failed.append(.object(["vm_id": .string(id), "error": .string("\(error)")]))
                }
            }
        }
        let order = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        deleted.sort { order[$0, default: 0] < order[$1, default: 0] }
        notFound.sort { order[$0, default: 0] < order[$1, default: 0] }
        return ToolOutcome(.compact([
            "deleted": .array(deleted.map { .string($0) }),
            "not_found": .array(notFound.map { .string($0) }),
            "failed": failed.isEmpty ? nil : .array(failed),
        ]), isError: !failed.isEmpty)
    }
}
