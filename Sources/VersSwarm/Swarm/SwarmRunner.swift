import Foundation
import MCP

/// Runs `body` to completion even when the calling task is cancelled: used
/// for teardown, which must finish exactly when a call is being cancelled.
func uncancellable<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await Task.detached { await body() }.value
}

/// Fans a swarm plan out over branches of one commit: branches lazily as
/// slots free up, retries on fresh branches, races in first_success mode,
/// and deletes what `keep` does not keep — also when cancelled.
struct SwarmRunner: Sendable {
    /// The outcome of one task.
    struct Result: Sendable {
        var index: Int
        var status: String
        var exitCode: Int?
        var stdout = ""
        var stderr = ""
        var durationMS = 0
        var attempts = 0
        var vmID: String?
        var commitID: String?
        var error: String?
    }

    let context: ToolContext
    let plan: SwarmPlan
    let swarmID: String
    let commitID: String

    /// VMs branched ahead in one call, handed to tasks as they start.
    actor Prebranched {
        private var ready: [String] = []
        func fill(_ ids: [String]) { ready += ids }
        func take() -> String? { ready.popLast() }
        func drain() -> [String] {
            defer { ready = [] }
            return ready
        }
    }

    private let prebranched = Prebranched()

    /// Runs every task; results come back in task order.
    func run() async -> [Result] {
        let total = plan.tasks.count
        var results = [Result?](repeating: nil, count: total)
        var done = 0
        // The first wave in one branch call (Vers makes N VMs per request); later tasks
        // branch as slots free up. What a part-way failure made is still used.
        let wave = min(plan.concurrency, total)
        if wave > 1 {
            let outcome = await context.provider.branch(commitID: commitID, count: wave)
            try? context.recordVMs(outcome.vmIDs, parentCommit: commitID, swarmID: swarmID)
            await prebranched.fill(outcome.vmIDs)
        }
        await withTaskGroup(of: Result.self) { group in
            var next = 0
            var stopped = false
            func startNext() {
                guard !stopped, next < total else { return }
                let task = plan.tasks[next]
                next += 1
                group.addTask { await runTask(task) }
            }
            for _ in 0..<plan.concurrency { startNext() }
            while let result = await group.next() {
                results[result.index] = result
                done += 1
                context.progress?(done, total, "task \(result.index): \(result.status)")
                if plan.mode == .firstSuccess, result.status == "ok", !stopped {
                    stopped = true
                    group.cancelAll()
                }
                if Task.isCancelled { stopped = true }
                startNext()
            }
        }
        // VMs of the first wave no task got to use (the swarm stopped first).
        for vm in await prebranched.drain() { await discard(vm) }
        if Task.isCancelled {
            // notifications/cancelled: nothing of the swarm survives, kept VMs included.
            for vm in (try? context.registry.vms(swarm: swarmID)) ?? [] { await discard(vm.vmID) }
        }
        return (0..<total).map { i in
            results[i] ?? Result(index: i, status: "cancelled", exitCode: nil, error: "not started: the swarm stopped first")
        }
    }

    private func runTask(_ task: SwarmPlan.Task) async -> Result {
        var result = Result(index: task.index, status: "error")
        let started = ContinuousClock.now
        while result.attempts <= plan.retries {
            if Task.isCancelled {
                result.status = "cancelled"
                return result
            }
            result.attempts += 1
            let outcome: BranchOutcome
            if let ready = await prebranched.take() {
                outcome = BranchOutcome(vmIDs: [ready], failure: nil)
            } else {
                outcome = await branchWithinQuota()
                try? context.recordVMs(outcome.vmIDs, parentCommit: commitID, swarmID: swarmID)
            }
            guard outcome.failure == nil, let vm = outcome.vmIDs.first else {
                for id in outcome.vmIDs { await discard(id) }
                result.status = Task.isCancelled ? "cancelled" : "error"
                result.error = outcome.failure?.message ?? "the backend made no VM"
                continue
            }
            await context.provider.tag(vmID: vm, session: task.session, swarm: swarmID)
            if let session = task.session {
                do {
                    _ = try context.registry.bindSession(session, to: vm)
                } catch {
                    await discard(vm)
                    result.error = "\(error)"
                    return result
                }
            }
            do {
                let exec = try await context.provider.exec(vmID: vm, task.request)
                result.exitCode = exec.exitCode
                result.stdout = exec.stdout
                result.stderr = exec.stderr
                result.durationMS = exec.durationMS
                result.error = nil
                result.status = Task.isCancelled ? "cancelled" : exec.timedOut ? "timeout" : exec.exitCode == 0 ? "ok" : "failed"
            } catch {
                result.status = Task.isCancelled ? "cancelled" : "error"
                result.error = "\(error)"
            }
            let finished = result.status == "ok" || result.status == "failed"
            let retry = result.status != "ok" && result.status != "cancelled" && result.attempts <= plan.retries
            if retry {
                await discard(vm)
                continue
            }
            if plan.commitResults, finished, !Task.isCancelled {
                let label = "\(swarmID)/\(task.index)"
                result.commitID = try? await context.commitVM(vm, label: label, description: "swarm \(swarmID) task \(task.index)").commitID
            }
            let keep = !Task.isCancelled && (plan.keep == .all || (plan.keep == .failed && result.status != "ok"))
            if keep {
                result.vmID = vm
            } else {
                await discard(vm)
            }
            break
        }
        let elapsed = ContinuousClock.now - started
        if result.durationMS == 0 { result.durationMS = elapsed.milliseconds }
        try? context.registry.saveSwarmTask(SwarmTaskRecord(
            swarmID: swarmID, index: task.index, status: result.status, exitCode: result.exitCode,
            vmID: result.vmID, commitID: result.commitID))
        return result
    }

    /// The longest a task waits for quota to free up before it fails.
    static let quotaPatience: Duration = .seconds(600)

    /// Branches one VM; when the backend's quota is used up, waits (with
    /// backoff) for other VMs to go away instead of failing: a swarm queues
    /// within the quota.
    private func branchWithinQuota() async -> BranchOutcome {
        let giveUp = ContinuousClock.now + Self.quotaPatience
        var pause = 0.25
        while true {
            let outcome = await context.provider.branch(commitID: commitID, count: 1)
            guard outcome.failure?.kind == .quota, outcome.vmIDs.isEmpty, ContinuousClock.now < giveUp, !Task.isCancelled else {
                return outcome
            }
            try? await Task.sleep(for: .seconds(pause * Double.random(in: 0.75...1.25)))
            pause = min(pause * 2, 4)
        }
    }

    /// Deletes a VM of the swarm, whatever happens to the calling task.
    private func discard(_ vm: String) async {
        let context = self.context
        await uncancellable {
            do { _ = try await context.deleteVM(vm) } catch {
                context.logger.error("could not delete swarm VM", metadata: ["vm_id": "\(vm)", "error": "\(error)"])
            }
        }
    }
}
