import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cgroups that hold each local VM: a cgroup v2 group per VM (freeze,
/// kill) with one child group per exec (so a timeout kills exactly that
/// command's process tree), and memory/CPU limits where the host allows.
struct Cgroups: Sendable {
    /// The vers-swarm group in the cgroup v2 hierarchy, when usable.
    let unified: String?
    /// v1 memory and cpu hierarchies (hybrid hosts), when usable.
    let memoryV1: String?
    let cpuV1: String?
    /// Whether memory/cpu limits go through cgroup v2 files.
    let v2Limits: Bool

    private init(unified: String?, memoryV1: String?, cpuV1: String?, v2Limits: Bool) {
        self.unified = unified
        self.memoryV1 = memoryV1
        self.cpuV1 = cpuV1
        self.v2Limits = v2Limits
    }

    /// No cgroups at all (rootless VMs).
    static let none = Cgroups(unified: nil, memoryV1: nil, cpuV1: nil, v2Limits: false)

    init(namespace: String = "vers-swarm") {
        var unified: String? = nil
        var v2Limits = false
        if let root = HostFS.mountPoint(ofType: "cgroup2"), HostFS.exists(root + "/cgroup.procs") {
            let base = root + "/" + namespace
            try? HostFS.mkdirs(base)
            if HostFS.exists(base + "/cgroup.kill") && HostFS.exists(base + "/cgroup.freeze") {
                unified = base
                let controllers = HostFS.read(root + "/cgroup.controllers") ?? ""
                if controllers.contains("memory") && controllers.contains("cpu") {
                    v2Limits = (try? HostFS.writeControl(root + "/cgroup.subtree_control", "+memory +cpu")) != nil
                        && (try? HostFS.writeControl(base + "/cgroup.subtree_control", "+memory +cpu")) != nil
                }
            }
        }
        func v1(_ name: String) -> String? {
            let root = "/sys/fs/cgroup/" + name
            guard !v2Limits, HostFS.exists(root + "/cgroup.procs"), HostFS.exists(root + "/tasks") else { return nil }
            let base = root + "/" + namespace
            return (try? HostFS.mkdirs(base)) != nil ? base : nil
        }
        self.unified = unified
        self.v2Limits = v2Limits
        self.memoryV1 = v1("memory")
        self.cpuV1 = v1("cpu")
    }

    /// Creates the VM's groups and applies limits; returns the groups init
    /// must join and a warning for each limit that could not be applied.
    func createVM(_ id: String, vcpus: Int?, memMiB: Int?) -> (groups: [String], warnings: [String]) {
        var groups: [String] = []
        var warnings: [String] = []
        if let unified {
            let dir = unified + "/" + id
            if (try? HostFS.mkdirs(dir)) != nil { groups.append(dir) }
        } else {
            warnings.append("cgroup v2 is not available: commit cannot freeze processes and timeouts kill only the command's own process")
        }
        if let memMiB {
            if v2Limits, let dir = groups.first {
                if (try? HostFS.writeControl(dir + "/memory.max", "\(memMiB << 20)")) == nil { warnings.append("mem_size_mib not applied: memory.max refused") }
            } else if let memoryV1 {
                let dir = memoryV1 + "/" + id
                if (try? HostFS.mkdirs(dir)) != nil,
                   (try? HostFS.writeControl(dir + "/memory.limit_in_bytes", "\(memMiB << 20)")) != nil {
                    groups.append(dir)
                } else {
                    warnings.append("mem_size_mib not applied: the memory cgroup refused the limit")
                }
            } else {
                warnings.append("mem_size_mib not applied: no memory cgroup controller on this host")
            }
        }
        if let vcpus {
            let quota = vcpus * 100_000
            if v2Limits, let dir = groups.first {
                if (try? HostFS.writeControl(dir + "/cpu.max", "\(quota) 100000")) == nil { warnings.append("vcpu_count not applied: cpu.max refused") }
            } else if let cpuV1 {
                let dir = cpuV1 + "/" + id
                if (try? HostFS.mkdirs(dir)) != nil,
                   (try? HostFS.writeControl(dir + "/cpu.cfs_period_us", "100000")) != nil,
                   (try? HostFS.writeControl(dir + "/cpu.cfs_quota_us", "\(quota)")) != nil {
                    groups.append(dir)
                } else {
                    warnings.append("vcpu_count not applied: the cpu cgroup refused the quota")
                }
            } else {
                warnings.append("vcpu_count not applied: no cpu cgroup controller on this host")
            }
        }
        return (groups, warnings)
    }

    /// The v2 group of a VM, if any.
    func vmGroup(_ id: String) -> String? {
        guard let unified, HostFS.exists(unified + "/" + id) else { return nil }
        return unified + "/" + id
    }

    /// A fresh child group for one exec.
    func execGroup(_ id: String) -> String? {
        guard let vm = vmGroup(id) else { return nil }
        let dir = vm + "/x-" + UUID().uuidString.prefix(8).lowercased()
        return (try? HostFS.mkdirs(dir)) != nil ? dir : nil
    }

    /// Kills every process in `group` and its descendants.
    func kill(_ group: String) {
        try? HostFS.writeControl(group + "/cgroup.kill", "1")
    }

    /// Removes an exec group; after a kill, first waits (up to 2 s) until
    /// the kernel reports it empty. Background processes keep a group alive.
    func release(_ group: String, afterKill: Bool) async {
        if afterKill {
            for _ in 0..<400 where (HostFS.read(group + "/cgroup.events") ?? "").contains("populated 1") {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        rmdir(group)
    }

    /// Freezes or thaws the whole VM; waits until the kernel reports it done.
    func setFrozen(_ id: String, _ frozen: Bool) async {
        guard let vm = vmGroup(id) else { return }
        try? HostFS.writeControl(vm + "/cgroup.freeze", frozen ? "1" : "0")
        for _ in 0..<500 {
            if (HostFS.read(vm + "/cgroup.events") ?? "").contains("frozen \(frozen ? 1 : 0)") { return }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Removes VM groups that hold no process any more and are older than a
    /// minute (a VM being created is given time to start its init); returns how many.
    func sweepEmpty() -> Int {
        guard let unified else { return 0 }
        var removed = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: unified)) ?? [] where LocalProvider.isSafeID(name) {
            let dir = unified + "/" + name
            guard (HostFS.read(dir + "/cgroup.events") ?? "").contains("populated 0"),
                  let modified = (try? FileManager.default.attributesOfItem(atPath: dir))?[.modificationDate] as? Date,
                  Date().timeIntervalSince(modified) > 60 else { continue }
            for child in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []) where child.hasPrefix("x-") {
                rmdir(dir + "/" + child)
            }
            if rmdir(dir) == 0 { removed += 1 }
        }
        return removed
    }

    /// Kills every process of the VM and removes its groups.
    func destroyVM(_ id: String) async {
        if let vm = vmGroup(id) {
            try? HostFS.writeControl(vm + "/cgroup.freeze", "0")
            kill(vm)
            // cgroup.procs lists live processes only; a zombie can keep the
            // group busy until its parent reaps it, so removal is retried.
            for _ in 0..<400 {
                let children = ((try? FileManager.default.contentsOfDirectory(atPath: vm)) ?? []).filter { $0.hasPrefix("x-") }
                for child in children { rmdir(vm + "/" + child) }
                if rmdir(vm) == 0 || errno == ENOENT { break }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        for base in [memoryV1, cpuV1].compactMap({ $0 }) { rmdir(base + "/" + id) }
    }
}
