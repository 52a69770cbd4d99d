import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension LocalProvider {
    /// Checks what the local backend needs: root, overlayfs, loop devices,
    /// cgroups, the init helper and the store.
    public func doctor() async -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        switch mode {
        case .overlay: checks.append(DoctorCheck("privileges", .ok, "running as root"))
        case .rootless: checks.append(DoctorCheck("privileges", .warn, "not root: " + Self.rootlessWarning.replacingOccurrences(of: "running without root: ", with: "")))
        case .unavailable(let reason): checks.append(DoctorCheck("privileges", .fail, reason))
        }
        if mode == .overlay {
            let filesystems = HostFS.read("/proc/filesystems") ?? ""
            checks.append(filesystems.contains("overlay")
                ? DoctorCheck("overlayfs", .ok, "kernel supports overlay")
                : DoctorCheck("overlayfs", .fail, "the kernel has no overlay file system (modprobe overlay)"))
            checks.append(HostFS.exists("/dev/loop-control")
                ? DoctorCheck("loop devices", .ok, "/dev/loop-control present: the store is an ext4 image")
                : DoctorCheck("loop devices", .warn, "no /dev/loop-control: the store falls back to a tmpfs (lost at reboot)"))
            if let unified = cgroups.unified {
                checks.append(DoctorCheck("cgroups", .ok, "cgroup v2 at \(unified): freeze on commit, tree kill on timeout"))
            } else {
                checks.append(DoctorCheck("cgroups", .warn, "no usable cgroup v2: commit does not freeze, timeouts kill only the command"))
            }
            if cgroups.v2Limits || (cgroups.memoryV1 != nil && cgroups.cpuV1 != nil) {
                checks.append(DoctorCheck("limits", .ok, cgroups.v2Limits ? "memory.max and cpu.max (cgroup v2)" : "memory and cpu cgroups (v1)"))
            } else {
                checks.append(DoctorCheck("limits", .warn, "vcpu_count / mem_size_mib cannot be enforced on this host"))
            }
        } else {
            checks.append(DoctorCheck("store", .ok, "plain directories under \(store.root) (rootless: nothing is mounted)"))
        }
        checks.append(HostFS.exists(initPath) && access(initPath, X_OK) == 0
            ? DoctorCheck("vm init", .ok, initPath)
            : DoctorCheck("vm init", .fail, "vers-swarm-init not found (looked at \(initPath)); set VERS_SWARM_INIT"))
        if mode != .overlay {
            return checks
        }
        if geteuid() == 0 {
            do {
                _ = try await store.prepare()
                checks.append(DoctorCheck("store", .ok, "\(store.root) mounted"))
            } catch {
                checks.append(DoctorCheck("store", .fail, "\(error)"))
            }
        }
        return checks
    }
}
