import MCP

/// `branch`: N copy-on-write VMs from a commit, a label or a live VM.
struct BranchTool: ToolHandler {
    static let maxCount = 255

    let definition = Tool(
        name: "branch",
        title: "Branch VMs",
        description: "Make `count` copy-on-write VMs from a commit id, a commit label or a VM id (a VM is committed first). Each branch starts with the commit's files and changes only its own copy.",
        inputSchema: Schema.object([
            "from": Schema.string("A commit id, a commit label or a VM id", minLength: 1),
            "count": Schema.integer("How many VMs (default 1, or the number of sessions)", minimum: 1, maximum: BranchTool.maxCount),
            "sessions": Schema.array(Schema.string("A session name", minLength: 1), "Bind each new VM to one of these sessions, in order"),
            "label": Schema.string("When `from` is a VM: a label for the commit made first", minLength: 1),
        ], required: ["from"]),
        annotations: .init(title: "Branch VMs", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true),
        outputSchema: Schema.object([
            "vms": Schema.array(Schema.object([
                "vm_id": Schema.string("A new VM"), "session": Schema.string("The session bound to it"),
            ], required: ["vm_id"]), "The new VMs"),
            "from_commit": Schema.string("The commit they were made from"),
        ], required: ["vms", "from_commit"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["from", "count", "sessions", "label"])
        let from = try arguments.requiredString("from")
        let sessions = try arguments.strings("sessions") ?? []
        let count = try arguments.int("count", in: 1...Self.maxCount) ?? max(sessions.count, 1)
        if !sessions.isEmpty {
            guard sessions.count == count else {
                throw arguments.fail("sessions", "gives \(sessions.count) names for \(count) VMs")
            }
            guard Set(sessions).count == sessions.count, !sessions.contains("") else {
                throw arguments.fail("sessions", "names must be non-empty and distinct")
            }
            for name in sessions {
                if let bound = try context.registry.session(name) {
                    throw ToolError(.conflict, "session \"\(name)\" is already bound to VM \(bound.vmID): unbind_session it first")
                }
            }
        }
        let (commitID, _) = try await context.resolveCommit(from, label: try arguments.string("label"))
        var outcome = await context.provider.branch(commitID: commitID, count: count)
        try context.recordVMs(outcome.vmIDs, parentCommit: commitID)
        if outcome.failure == nil {
            do {
                for (name, id) in zip(sessions, outcome.vmIDs) {
                    _ = try context.registry.bindSession(name, to: id)
                    await context.provider.tag(vmID: id, session: name, swarm: nil)
                }
            } catch let error as RegistryError {
                outcome.failure = ProviderError(error.kind, error.message)
            }
        }
        if let failure = outcome.failure {
            // Never leave half a branch behind: delete what was made.
            var leftovers: [String] = []
            for id in outcome.vmIDs where (try? await context.deleteVM(id)) == nil { leftovers.append(id) }
            let tail = leftovers.isEmpty ? "the \(outcome.vmIDs.count) VM(s) made were deleted"
                : "VMs \(leftovers.joined(separator: ", ")) could not be deleted: delete them by hand"
            throw ToolError(failure.kind, "branch stopped after \(outcome.vmIDs.count) of \(count) VM(s): \(failure.message); \(tail)")
        }
        let named = Dictionary(uniqueKeysWithValues: zip(outcome.vmIDs, sessions))
        return ToolOutcome(.object([
            "vms": .array(outcome.vmIDs.map { .compact(["vm_id": .string($0), "session": named[$0].map { .string($0) }]) }),
            "from_commit": .string(commitID),
        ]))
    }
}
