import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The local backend's storage: a file system of its own (a sparse ext4
/// image, or a tmpfs when loop devices are missing) mounted under the state
/// dir, holding the mask layer, immutable commit layers and per-VM uppers.
/// It must not be the host root: overlayfs refuses uppers inside a lower.
struct LocalStore: Sendable {
    let home: String
    var root: String { home + "/store" }
    var image: String { home + "/store.img" }
    var lockPath: String { home + "/store.lock" }
    var vmsDir: String { root + "/vms" }
    var layersDir: String { root + "/layers" }
    var imagesDir: String { root + "/images" }

    /// Top-level host directories a VM sees (read-only, copy-on-write).
    static let visibleTopLevel: Set<String> = ["bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "var", "srv"]
    /// Host directories a VM sees as empty, private directories.
    static let privateDirs: [(String, mode_t)] = [
        ("root", 0o700), ("home", 0o755), ("tmp", 0o1777), ("run", 0o755), ("proc", 0o555),
        ("dev", 0o755), ("sys", 0o555), ("mnt", 0o755), ("media", 0o755),
    ]

    func vmDir(_ id: String) -> String { vmsDir + "/" + id }
    func layerDir(_ id: String) -> String { layersDir + "/" + id }
    func imageDir(_ name: String) -> String { imagesDir + "/" + name }

    /// Whether the store file system is mounted.
    var isMounted: Bool { HostFS.mountPoints().contains(root) }

    /// Mounts the store (creating it on first use) and builds the mask
    /// layer; returns the mask's path. Safe across processes.
    func prepare() async throws -> String {
        try HostFS.mkdirs(home, mode: 0o700)
        return try await HostFS.withLock(lockPath) {
            try HostFS.mkdirs(root, mode: 0o700)
            if !isMounted {
                do {
                    if !HostFS.exists(image) {
                        try await ProcessRunner.check("/usr/bin/truncate", ["-s", "64G", image])
                        try await ProcessRunner.check("/sbin/mkfs.ext4", ["-q", "-F", "-m", "0", image])
                    }
                    try await ProcessRunner.check("/bin/mount", ["-o", "loop", image, root])
                } catch {
                    try await ProcessRunner.check("/bin/mount", ["-t", "tmpfs", "-o", "mode=700", "vers-swarm-store", root])
                }
            }
            try HostFS.mkdirs(vmsDir, mode: 0o700)
            try HostFS.mkdirs(layersDir, mode: 0o700)
            return try buildMask()
        }
    }

    /// The rootless store: plain directories in the state dir (nothing to mount).
    func prepareRootless() throws {
        try HostFS.mkdirs(home, mode: 0o700)
        try HostFS.mkdirs(vmsDir, mode: 0o700)
        try HostFS.mkdirs(layersDir, mode: 0o700)
    }

    /// Unmounts the store when no VM is left.
    func unmount() async throws {
        try await HostFS.withLock(lockPath) {
            guard isMounted else { return }
            let vms = (try? FileManager.default.contentsOfDirectory(atPath: vmsDir)) ?? []
            guard vms.isEmpty else {
                throw ProviderError(.conflict, "\(vms.count) local VM(s) still exist: delete them first (delete {\"all\": true})")
            }
            try await ProcessRunner.check("/bin/umount", [root])
        }
    }

    /// The mask layer: hides every host top-level entry but the OS
    /// directories, gives the VM private /root, /home, /tmp, /run, and hides
    /// host secrets and the state dir. Named after what it hides, so a host
    /// that changes gets a new mask while old VMs keep theirs.
    private func buildMask() throws -> String {
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: "/")) ?? []).sorted()
        var hidden = Set(["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"])
        for key in (try? FileManager.default.contentsOfDirectory(atPath: "/etc/ssh")) ?? [] where key.hasPrefix("ssh_host_") {
            hidden.insert("/etc/ssh/" + key)
        }
        let top = home.split(separator: "/").first.map(String.init) ?? ""
        if Self.visibleTopLevel.contains(top) { hidden.insert(home) }
        let fingerprint = (entries + hidden.sorted()).joined(separator: "\n")
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in fingerprint.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        let mask = root + "/mask-" + String(hash, radix: 16)
        if HostFS.exists(mask + ".ready") { return mask }

        let building = mask + ".building"
        try? FileManager.default.removeItem(atPath: building)
        try HostFS.mkdirs(building)
        let privateNames = Set(Self.privateDirs.map(\.0))
        for entry in entries where !Self.visibleTopLevel.contains(entry) && !privateNames.contains(entry) {
            try HostFS.whiteout(building + "/" + entry)
        }
        for (name, mode) in Self.privateDirs { try HostFS.opaqueDir(building + "/" + name, mode: mode) }
        for path in hidden.sorted() where HostFS.exists(path) {
            let parent = (path as NSString).deletingLastPathComponent
            try HostFS.mkdirs(building + parent)
            try HostFS.whiteout(building + path)
        }
        try? FileManager.default.removeItem(atPath: mask)
        guard rename(building, mask) == 0 else {
            throw ProviderError(.backend, "cannot finish the mask layer \(mask): \(String(cString: strerror(errno)))")
        }
        _ = FileManager.default.createFile(atPath: mask + ".ready", contents: nil)
        return mask
    }
}
