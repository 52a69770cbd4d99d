import Foundation
import MCP

/// What a garbage collection did.
public struct GCReport: Sendable {
    /// VMs deleted in the backend.
    public var deleted: [String] = []
    /// Registry rows dropped because the backend no longer has their VM.
    public var droppedRows: [String] = []
    /// Swarms whose owner died, now torn down.
    public var abandonedSwarms: [String] = []
    /// Rows rebuilt from the backend's labels (`--reconcile`).
    public var recovered: [String] = []
    /// VMs the backend holds and the registry records, after collection.
    public var backendVMs = 0
    public var registryVMs = 0

    /// The report as JSON.
    public var json: Value {
        .object([
            "deleted": .array(deleted.map { .string($0) }),
            "dropped_rows": .array(droppedRows.map { .string($0) }),
            "abandoned_swarms": .array(abandonedSwarms.map { .string($0) }),
            "recovered": .array(recovered.map { .string($0) }),
            "backend_vms": .int(backendVMs),
            "registry_vms": .int(registryVMs),
        ])
    }
}

/// Tears down what dead bridges left: swarms whose owner process died
/// (honouring their `keep`), half-made VMs of dead creators, and registry
/// rows of VMs the backend no longer has. Run by `vers-swarm gc` and at
/// every `serve` start.
public struct GarbageCollector: Sendable {
    let context: ToolContext

    public init(bridge: Bridge) {
        context = bridge.context()
    }

    /// Collects; with `reconcile`, first rebuilds rows for every backend VM
    /// that carries vers-swarm's labels but is missing from this registry
    /// (a lost or other machine's state dir), so none stays unseen and billed.
    public func run(reconcile: Bool = false) async throws -> GCReport {
        var report = GCReport()
        let registry = context.registry
        if reconcile {
            for vm in try await context.provider.list() where vm.labels[VMLabel.owner] != nil {
                guard try registry.vm(vm.vmID) == nil else { continue }
                try registry.saveVM(VMRecord(vmID: vm.vmID, provider: context.provider.name,
                                             swarmID: vm.labels[VMLabel.swarm], state: vm.state))
                if let session = vm.labels[VMLabel.session], try registry.session(session) == nil {
                    _ = try? registry.bindSession(session, to: vm.vmID)
                }
                report.recovered.append(vm.vmID)
            }
        }

        for swarm in try registry.runningSwarms() {
            let owner = Owner(pid: Int32(swarm.ownerPID), start: UInt64(swarm.ownerStart))
            guard !owner.isAlive else { continue }
            let finished = Dictionary(try registry.swarmTasks(swarm.swarmID).compactMap { t in t.vmID.map { ($0, t) } },
                                      uniquingKeysWith: { a, _ in a })
            for vm in try registry.vms(swarm: swarm.swarmID) {
                // A VM its task had finished with (and kept) stays under keep; anything in flight goes.
                let keep = finished[vm.vmID].map { t in
                    swarm.keep == "all" || (swarm.keep == "failed" && t.status != "ok")
                } ?? false
                if !keep, (try? await context.deleteVM(vm.vmID)) != nil { report.deleted.append(vm.vmID) }
            }
            var updated = swarm
            updated.state = "abandoned"
            updated.finishedAt = Date()
            try registry.saveSwarm(updated)
            report.abandonedSwarms.append(swarm.swarmID)
        }

        let live = try await context.provider.list()
        let liveIDs = Set(live.map(\.vmID))
        let rows = try registry.vms().filter { $0.provider == context.provider.name }
        for row in rows where !liveIDs.contains(row.vmID) {
            try registry.removeVM(row.vmID)
            report.droppedRows.append(row.vmID)
        }
        let recorded = Set(rows.map(\.vmID))
        for vm in live where !recorded.contains(vm.vmID) {
            guard let creator = vm.creator, !creator.isAlive else { continue }
            if (try? await context.provider.delete(vmID: vm.vmID)) != nil { report.deleted.append(vm.vmID) }
        }
        if let local = context.provider as? LocalProvider { _ = local.sweepCgroups() }
        report.backendVMs = try await context.provider.list().count
        report.registryVMs = try registry.vms().filter { $0.provider == context.provider.name }.count
        return report
    }
}
