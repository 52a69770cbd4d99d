import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The embedded local backend: a VM is a process tree in its own
/// mount/pid/uts/ipc namespaces, held by `vers-swarm-init`, whose root is an
/// overlayfs of immutable layers (host OS, mask, one per commit) under a
/// private writable upper. See DESIGN.md "LocalProvider".
///
/// Without root it falls back to rootless VMs: a user namespace of their
/// own, the host OS bind-mounted read-only, the VM's writable directories
/// (/root, /home, /tmp, /srv, /mnt, /media, /run) kept as plain directories
/// that commit and branch copy — cost grows with the VM's files — and no
/// cgroups. create_vm's warnings and `doctor` say so.
public final class LocalProvider: VMProvider {
    /// How this process can make VMs.
    enum Mode: Equatable, Sendable {
        /// Root: overlayfs layers on the store, cgroups.
        case overlay
        /// No root: user namespaces and directory copies.
        case rootless
        /// Neither is possible here.
        case unavailable(String)
    }

    public let name = "local"
    public let defaultConcurrency = 32
    let store: LocalStore
    let cgroups: Cgroups
    let initPath: String
    let logger: Logger
    let mode: Mode

    /// Creates the backend rooted at the state dir `home`.
    public init(home: String, logger: Logger) {
        store = LocalStore(home: home)
        mode = Self.detectMode()
        cgroups = mode == .overlay ? Cgroups() : Cgroups.none
        initPath = Self.locateInit()
        self.logger = logger
    }

    public var isolation: String { mode == .rootless ? "user-namespaces+copies" : "namespaces+overlayfs" }

    static func detectMode() -> Mode {
        if geteuid() == 0 { return .overlay }
        let limit = Int(HostFS.read("/proc/sys/user/max_user_namespaces")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
        let allowed = HostFS.read("/proc/sys/kernel/unprivileged_userns_clone")?.trimmingCharacters(in: .whitespacesAndNewlines) != "0"
        if limit > 0 && allowed { return .rootless }
        return .unavailable("the local backend needs root, or unprivileged user namespaces (they are disabled here: kernel.unprivileged_userns_clone / user.max_user_namespaces); run as root, or set VERS_API_KEY to use Vers")
    }

    /// What a rootless VM cannot do, said once per create.
    static let rootlessWarning = "running without root: rootless VM (user namespace; the host OS is read-only, /root /home /tmp /srv /mnt /media /run are the VM's own; commit and branch copy those files, so their cost grows with them; no cgroups: no freezing on commit, no CPU or memory limits)"

    /// `VERS_SWARM_INIT`, else `vers-swarm-init` beside the running executable, else on PATH.
    static func locateInit() -> String {
        if let path = ProcessInfo.processInfo.environment["VERS_SWARM_INIT"], !path.isEmpty { return path }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let sibling = (exe as NSString).deletingLastPathComponent + "/vers-swarm-init"
            if HostFS.exists(sibling) { return sibling }
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin").split(separator: ":") {
            let candidate = "\(dir)/vers-swarm-init"
            if HostFS.exists(candidate) { return candidate }
        }
        return "vers-swarm-init"
    }

    // MARK: - Metadata

    /// What the store remembers of a VM.
    struct VMMeta: Codable {
        var id: String
        /// Lower layers, top first (commit layers, mask, host root).
        var lowers: [String]
        /// A rootless VM: its files are the directory `state`, not an overlay.
        var rootless: Bool?
        var parentCommit: String?
        var vcpuCount: Int?
        var memSizeMiB: Int?
        var initPID: Int32?
        var initStart: UInt64?
        var createdAt: Date
    }

    /// What the store remembers of a commit.
    struct CommitMeta: Codable {
        var id: String
        var lowers: [String]
        /// A rootless commit: a copy of the VM's `state` directory.
        var rootless: Bool?
        var vmID: String
        var parentCommit: String?
        var createdAt: Date
    }

    private func loadVM(_ id: String) throws -> VMMeta {
        guard Self.isSafeID(id), let data = FileManager.default.contents(atPath: store.vmDir(id) + "/meta.json"),
              let meta = try? JSONCoding.decoder.decode(VMMeta.self, from: data) else {
            throw ProviderError.vmNotFound(id)
        }
        return meta
    }

    private func saveVM(_ meta: VMMeta) throws {
        try HostFS.writeAtomically(store.vmDir(meta.id) + "/meta.json", JSONCoding.encodeCodable(meta))
    }

    private func loadCommit(_ id: String) -> CommitMeta? {
        guard Self.isSafeID(id), let data = FileManager.default.contents(atPath: store.layerDir(id) + "/meta.json") else { return nil }
        return try? JSONCoding.decoder.decode(CommitMeta.self, from: data)
    }

    /// Ids are UUIDs; anything else cannot name a store path.
    static func isSafeID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.allSatisfy { $0.isHexDigit || $0 == "-" }
    }

    // MARK: - Lifecycle

    private func checkPrivileges() throws {
        if case .unavailable(let reason) = mode { throw ProviderError(.unavailable, reason) }
    }

    /// Makes the store ready; the mask layer's path in overlay mode.
    private func prepareStore() async throws -> String {
        try checkPrivileges()
        if mode == .rootless {
            try store.prepareRootless()
            return ""
        }
        return try await store.prepare()
    }

    public func create(_ spec: VMSpec) async throws -> CreatedVM {
        try checkPrivileges()
        let mask = try await prepareStore()
        var lowers = mode == .rootless ? [] : [mask, "/"]
        if let image = spec.image, image != "default" {
            guard mode == .overlay, Self.isImageName(image), HostFS.exists(store.imageDir(image) + "/fs") else {
                let known = (["default"] + images()).map { "\"\($0)\"" }.joined(separator: ", ")
                throw ProviderError(.notFound, "image \"\(image)\" not found: this local backend has \(known) (`vers-swarm image import NAME DIR|TARBALL` adds one)")
            }
            lowers = [store.imageDir(image) + "/fs"]
        }
        return try await makeVM(lowers: lowers, parentCommit: nil, vcpus: spec.vcpuCount, memMiB: spec.memSizeMiB, stateFrom: nil)
    }

    /// `stateFrom`: a rootless commit's files to start from.
    private func makeVM(lowers: [String], parentCommit: String?, vcpus: Int?, memMiB: Int?, stateFrom: String?) async throws -> CreatedVM {
        let id = UUID().uuidString.lowercased()
        let dir = store.vmDir(id)
        let rootless = mode == .rootless
        for sub in rootless ? ["root"] : ["upper", "work", "root"] { try HostFS.mkdirs(dir + "/" + sub, mode: 0o755) }
        // Who is making it, first: gc can tell a VM a dead bridge left half-made from one being made now.
        let me = Owner.current
        try HostFS.writeAtomically(dir + "/creator", Data("\(me.pid) \(me.start)".utf8))
        var meta = VMMeta(id: id, lowers: lowers, rootless: rootless ? true : nil, parentCommit: parentCommit,
                          vcpuCount: vcpus, memSizeMiB: memMiB, createdAt: Date())
        do {
            if rootless {
                if let stateFrom {
                    try await ProcessRunner.check("/bin/cp", ["-a", stateFrom, dir + "/state"])
                } else {
                    try HostFS.mkdirs(dir + "/state", mode: 0o755)
                }
            }
            var warnings = try await boot(&meta)
            if rootless {
                warnings.append(Self.rootlessWarning)
                if vcpus != nil || memMiB != nil { warnings.append("vcpu_count / mem_size_mib not applied: no cgroups without root") }
            }
            return CreatedVM(vmID: id, warnings: warnings)
        } catch {
            await cgroups.destroyVM(id)
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
    }

    /// Starts the VM's init over its layers and records its PID.
    @discardableResult
    private func boot(_ meta: inout VMMeta) async throws -> [String] {
        let dir = store.vmDir(meta.id)
        var args: [String]
        var warnings: [String] = []
        if meta.rootless == true {
            args = ["boot", "--rootfs", dir + "/root", "--rootless-state", dir + "/state", "--hostname", "vm-" + meta.id.prefix(8)]
            // The state dir shows through the host's OS directories when it lies under one of them.
            if let top = store.home.split(separator: "/").first, LocalStore.visibleTopLevel.contains(String(top)) {
                args += ["--hide", store.home]
            }
        } else {
            let (groups, cgroupWarnings) = cgroups.createVM(meta.id, vcpus: meta.vcpuCount, memMiB: meta.memSizeMiB)
            warnings = cgroupWarnings
            // A stale work dir from a previous boot makes overlayfs refuse the mount.
            try? FileManager.default.removeItem(atPath: dir + "/work")
            try HostFS.mkdirs(dir + "/work")
            args = ["boot", "--rootfs", dir + "/root", "--lower", meta.lowers.joined(separator: ":"),
                    "--upper", dir + "/upper", "--work", dir + "/work", "--hostname", "vm-" + meta.id.prefix(8)]
            for group in groups { args += ["--cgroup", group] }
        }
        let finished = try await ProcessRunner.run(initPath, args, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], limit: 1 << 16)
        let out = finished.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard finished.status == 0, out.hasPrefix("ready "), let pid = Int32(out.dropFirst(6)) else {
            let detail = finished.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ProviderError(.backend, "the local VM did not boot: \(detail.isEmpty ? "init exited \(finished.status)" : detail); run `vers-swarm doctor`")
        }
        meta.initPID = pid
        meta.initStart = HostFS.processStartTime(pid)
        try saveVM(meta)
        logger.debug("local VM booted", metadata: ["vm_id": "\(meta.id)", "init_pid": "\(pid)"])
        return warnings
    }

    private func isRunning(_ meta: VMMeta) -> Bool {
        guard let pid = meta.initPID, let start = meta.initStart else { return false }
        return HostFS.processStartTime(pid) == start
    }

    /// Restarts a VM whose init is gone (the host rebooted, or it was
    /// killed): its files persist, its processes do not.
    private func ensureRunning(_ id: String) async throws -> VMMeta {
        var meta = try loadVM(id)
        if isRunning(meta) { return meta }
        return try await HostFS.withLock(store.vmDir(id) + "/lock") {
            meta = try loadVM(id)
            if isRunning(meta) { return meta }
            _ = try await prepareStore()
            logger.notice("restarting local VM whose init is gone", metadata: ["vm_id": "\(id)"])
            await cgroups.destroyVM(id)
            try await boot(&meta)
            return meta
        }
    }

    public func commit(vmID: String, name: String?, description: String?) async throws -> String {
        try checkPrivileges()
        let meta = try loadVM(vmID)
        let commitID = UUID().uuidString.lowercased()
        let layer = store.layerDir(commitID)
        try HostFS.mkdirs(layer, mode: 0o700)
        await cgroups.setFrozen(vmID, true)
        let rootless = meta.rootless == true
        do {
            let (source, target) = rootless ? ("/state", "/state") : ("/upper", "/fs")
            try await ProcessRunner.check("/bin/cp", ["-a", store.vmDir(vmID) + source, layer + target])
        } catch {
            await cgroups.setFrozen(vmID, false)
            try? FileManager.default.removeItem(atPath: layer)
            throw error
        }
        await cgroups.setFrozen(vmID, false)
        let commit = CommitMeta(id: commitID, lowers: rootless ? [] : [layer + "/fs"] + meta.lowers, rootless: rootless ? true : nil,
                                vmID: vmID, parentCommit: meta.parentCommit, createdAt: Date())
        try HostFS.writeAtomically(layer + "/meta.json", JSONCoding.encodeCodable(commit))
        return commitID
    }

    public func branch(commitID: String, count: Int) async -> BranchOutcome {
        guard let commit = loadCommit(commitID) else {
            return BranchOutcome(vmIDs: [], failure: ProviderError(.notFound, "commit \(commitID) not found in the local store"))
        }
        var made: [String] = []
        do {
            _ = try await prepareStore()
            if (commit.rootless == true) != (mode == .rootless) {
                throw ProviderError(.conflict, "commit \(commitID) was made \(commit.rootless == true ? "without" : "with") root; branch it from a bridge running \(commit.rootless == true ? "without" : "as") root")
            }
            let state = commit.rootless == true ? store.layerDir(commitID) + "/state" : nil
            for _ in 0..<count {
                made.append(try await makeVM(lowers: commit.lowers, parentCommit: commitID, vcpus: nil, memMiB: nil, stateFrom: state).vmID)
            }
            return BranchOutcome(vmIDs: made, failure: nil)
        } catch {
            let failure = error as? ProviderError ?? ProviderError(.backend, "\(error)")
            return BranchOutcome(vmIDs: made, failure: failure)
        }
    }

    public func exec(vmID: String, _ request: ExecRequest) async throws -> ExecResult {
        try checkPrivileges()
        let meta = try await ensureRunning(vmID)
        guard let pid = meta.initPID else { throw ProviderError.vmNotFound(vmID) }
        let group = cgroups.execGroup(vmID)
        var args = ["exec", "--pid", String(pid)]
        if let cwd = request.cwd { args += ["--cwd", cwd] }
        if let group { args += ["--cgroup", group] }
        args += ["--"] + request.argv
        var env = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh", "TERM": "dumb", "LANG": "C.UTF-8",
            "HOSTNAME": "vm-" + vmID.prefix(8),
        ]
        env.merge(request.env) { _, new in new }
        let cgroups = self.cgroups
        let finished = try await ProcessRunner.run(
            initPath, args, environment: env, stdin: request.stdin, limit: request.maxOutputBytes,
            timeout: request.timeout, kill: { pid in
                // The exec cgroup holds the command's whole tree; without one, the helper kills the tree's process group.
                if let group { cgroups.kill(group) } else if let pid { Glibc.kill(pid, SIGTERM) }
            }
        )
        if let group { await cgroups.release(group, afterKill: finished.timedOut) }
        if finished.status != 0, !HostFS.exists(store.vmDir(vmID) + "/meta.json") {
            throw ProviderError(.notFound, "VM \(vmID) was deleted while the command ran")
        }
        return ExecResult(
            exitCode: finished.timedOut ? ExecResult.timeoutExitCode : finished.status,
            stdout: finished.stdout.text, stderr: finished.stderr.text, durationMS: finished.durationMS,
            timedOut: finished.timedOut, truncated: finished.stdout.truncated || finished.stderr.truncated
        )
    }

    public func delete(vmID: String) async throws -> DeleteOutcome {
        try checkPrivileges()
        guard Self.isSafeID(vmID), HostFS.exists(store.vmDir(vmID)) else { return .notFound }
        let meta = try? loadVM(vmID)
        await cgroups.destroyVM(vmID)
        if let meta, isRunning(meta), let pid = meta.initPID {
            Glibc.kill(pid, SIGKILL)
            var waits = 0
            while HostFS.processStartTime(pid) == meta.initStart, waits < 200 {
                try? await Task.sleep(for: .milliseconds(5))
                waits += 1
            }
        }
        do {
            try FileManager.default.removeItem(atPath: store.vmDir(vmID))
        } catch {
            throw ProviderError(.backend, "VM \(vmID) was stopped but its storage could not be removed: \(error.localizedDescription)")
        }
        return .deleted
    }

    public func list() async throws -> [ProviderVM] {
        // An unmounted store would look empty: mount it first (a store never made holds no VM).
        if HostFS.exists(store.image) || HostFS.exists(store.vmsDir) {
            _ = try await prepareStore()
        }
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: store.vmsDir)) ?? []
        return ids.sorted().filter(Self.isSafeID).map { id in
            let creatorFields = (HostFS.read(store.vmDir(id) + "/creator") ?? "").split(separator: " ")
            var creator: Owner?
            if creatorFields.count == 2, let pid = Int32(creatorFields[0]), let start = UInt64(creatorFields[1]) {
                creator = Owner(pid: pid, start: start)
            }
            let state = (try? loadVM(id)).map { isRunning($0) ? "running" : "stopped" } ?? "creating"
            return ProviderVM(vmID: id, state: state, creator: creator)
        }
    }

    public func hasCommit(_ commitID: String) async -> Bool {
        loadCommit(commitID) != nil
    }

    /// Removes cgroups left empty by VMs that are gone (any state dir's).
    public func sweepCgroups() -> Int {
        cgroups.sweepEmpty()
    }

    /// Unmounts the store once no VM is left.
    public func unmount() async throws {
        guard mode == .overlay else { return }
        try await store.unmount()
    }

    // MARK: - Images

    /// Image names: lower-case letters, digits, '.', '_' and '-'.
    static func isImageName(_ name: String) -> Bool {
        guard let first = name.first, first.isLetter || first.isNumber, name.count <= 64, name != "default" else { return false }
        return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    /// The imported images.
    public func images() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: store.imagesDir)) ?? [])
            .filter { Self.isImageName($0) && HostFS.exists(store.imageDir($0) + "/fs") }.sorted()
    }

    /// Imports a root file system (a directory, or a tarball tar can read) as
    /// image `name`, usable as `create_vm {image: name}`. Needs root.
    public func importImage(name: String, from source: String) async throws {
        guard mode == .overlay else {
            throw ProviderError(.unavailable, "images need the overlay mode (root); rootless VMs run on the host OS")
        }
        guard Self.isImageName(name) else {
            throw ProviderError(.conflict, "image names are lower-case letters, digits, '.', '_' and '-' (and not \"default\")")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else {
            throw ProviderError(.notFound, "\(source) does not exist")
        }
        _ = try await prepareStore()
        try HostFS.mkdirs(store.imagesDir, mode: 0o700)
        let target = store.imageDir(name)
        guard !HostFS.exists(target) else { throw ProviderError(.conflict, "image \"\(name)\" already exists") }
        let staging = target + ".importing-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try HostFS.mkdirs(staging + "/fs", mode: 0o755)
        do {
            if isDir.boolValue {
                try await ProcessRunner.check("/bin/cp", ["-a", source + "/.", staging + "/fs/"])
            } else {
                try await ProcessRunner.check("/bin/tar", ["-xpf", source, "-C", staging + "/fs", "--numeric-owner"])
            }
            let shell = ["/bin/sh", "/usr/bin/sh"].contains { HostFS.exists(staging + "/fs" + $0) }
            guard shell else { throw ProviderError(.conflict, "\(source) has no /bin/sh: exec runs commands with it") }
            guard rename(staging, target) == 0 else {
                throw ProviderError(.backend, "cannot finish image \(name): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }
}
