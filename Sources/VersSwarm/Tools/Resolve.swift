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
        let commitID = try await provider.commit(vmID: vmID)
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
    func recordVMs(_ ids: [String], parentCommit: String?, label: String? = nil, session: String? = nil) throws {
        for id in ids {
            try registry.saveVM(VMRecord(vmID: id, provider: provider.name, parentCommit: parentCommit, session: session,
                                         label: label, ownerPID: Int(getpid())))
        }
    }

    /// Deletes a VM in the backend, then forgets it; `.notFound` when neither had it.
    func deleteVM(_ id: String) async throws -> DeleteOutcome {
        let known = try registry.vm(id) != nil
        let outcome = try await provider.delete(vmID: id)
        if known { try registry.removeVM(id) }
        return known ? .deleted : outcome
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
