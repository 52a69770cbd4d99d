import Foundation

extension ToolContext {
    /// The registry row of a VM, or a not-found error an agent can act on.
    func requireVM(_ id: String) throws -> VMRecord {
        guard let vm = try registry.vm(id) else { throw ToolError.vmNotFound(id) }
        return vm
    }

    /// Resolves `from` (a commit id, a label, or a VM id) to a commit id;
    /// a VM is committed first (labelled `label` when given).
    func resolveCommit(_ from: String, label: String? = nil) async throws -> (commitID: String, committedVM: String?) {
        if let commit = try registry.commit(label: from) { return (commit.commitID, nil) }
        if let commit = try registry.commit(from) { return (commit.commitID, nil) }
        if try registry.vm(from) != nil {
            let record = try await commitVM(from, label: label, description: nil)
            return (record.commitID, from)
        }
        if await provider.hasCommit(from) { return (from, nil) }
        throw ToolError.commitNotFound(from)
    }

    /// Commits a VM and records the commit (and its label) in the registry.
    func commitVM(_ vmID: String, label: String?, description: String?) async throws -> CommitRecord {
        let vm = try requireVM(vmID)
        if let label, let other = try registry.commit(label: label) {
            throw ToolError(.conflict, "label \"\(label)\" already names commit \(other.commitID): pick another label")
        }
        let commitID = try await provider.commit(vmID: vmID, name: label, description: description)
        var record = CommitRecord(commitID: commitID, provider: provider.name, label: label, description: description,
                                  vmID: vmID, parentCommit: vm.parentCommit)
        do {
            try registry.saveCommit(record)
        } catch {
            record.label = nil
            try registry.saveCommit(record)
            throw ToolError(.conflict, "commit \(commitID) was made but its label could not be set: \(error)")
        }
        return record
    }

    /// Records freshly made VMs before anything else can fail.
    func recordVMs(_ ids: [String], parentCommit: String?, label: String? = nil, swarmID: String? = nil) throws {
        for id in ids {
            try registry.saveVM(VMRecord(vmID: id, provider: provider.name, parentCommit: parentCommit,
                                         swarmID: swarmID, label: label, owner: .current))
        }
    }

    /// The VM a call acts on: `vm_id`, or the VM bound to `session`; a scoped
    /// bridge defaults to its session's VM and refuses every other VM.
    func targetVM(_ arguments: ToolArguments) async throws -> String {
        let vmID = try arguments.string("vm_id")
        let session = try arguments.string("session")
        if vmID != nil && session != nil {
            throw RPCError.invalidParams(arguments.path(of: "session"), "give vm_id or session, not both")
        }
        if let scope {
            if let session, session != scope {
                throw ToolError(.forbidden, "this bridge is scoped to session \"\(scope)\"; it cannot act for session \"\(session)\"")
            }
            let own = try sessionVM(scope)
            if let vmID, vmID != own {
                throw ToolError(.forbidden, "this bridge is scoped to session \"\(scope)\" (VM \(own)); it cannot act on VM \(vmID)")
            }
            return own
        }
        if let session { return try sessionVM(session) }
        guard let vmID, !vmID.isEmpty else {
            throw RPCError.invalidParams(arguments.path(of: "vm_id"), "required: give vm_id or session")
        }
        _ = try requireVM(vmID)
        return vmID
    }

    /// The VM bound to a session.
    func sessionVM(_ name: String) throws -> String {
        guard let record = try registry.session(name) else {
            throw ToolError(.notFound, "session \"\(name)\" is not bound to a VM: bind_session binds it, sessions lists bindings")
        }
        return record.vmID
    }

    /// Deletes a VM in the backend, then forgets it. `.notFound` when the
    /// backend no longer had it (never made, or deleted behind our back):
    /// its registry row goes either way.
    func deleteVM(_ id: String) async throws -> DeleteOutcome {
        let outcome = try await provider.delete(vmID: id)
        if try registry.vm(id) != nil { try registry.removeVM(id) }
        return outcome
    }
}

extension Date {
    /// ISO 8601 with fractional seconds, as tools report times.
    var iso8601: String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: self)
    }
}
