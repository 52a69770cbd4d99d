import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Thin, throwing wrappers over the host file-system calls the local backend needs.
enum HostFS {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func mkdirs(_ path: String, mode: Int = 0o755) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        } catch {
            throw ProviderError(.backend, "cannot create \(path): \(error.localizedDescription)")
        }
    }

    static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    /// Writes a small control file (cgroup knobs), reporting errno on failure.
    static func writeControl(_ path: String, _ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ProviderError(.backend, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw ProviderError(.backend, "cannot write \(value) to \(path): \(String(cString: strerror(errno)))") }
    }

    /// Writes a file atomically (temp file + rename).
    static func writeAtomically(_ path: String, _ data: Data) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try data.write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, path) == 0 else { throw ProviderError(.backend, "rename \(tmp): \(String(cString: strerror(errno)))") }
        } catch let error as ProviderError {
            unlink(tmp)
            throw error
        } catch {
            unlink(tmp)
            throw ProviderError(.backend, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// Writes a secret (a private key): created 0600 before any byte is
    /// written, then renamed into place.
    static func writeSecret(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = path + ".tmp-\(getpid())"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ProviderError(.backend, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw ProviderError(.backend, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// An overlayfs whiteout (character device 0:0) at `path`.
    static func whiteout(_ path: String) throws {
        unlink(path)
        guard mknod(path, S_IFCHR | 0o600, 0) == 0 else {
            throw ProviderError(.backend, "cannot create whiteout \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// An empty directory that hides the lower layers' one.
    static func opaqueDir(_ path: String, mode: mode_t) throws {
        try mkdirs(path)
        chmod(path, mode)
        let value = "y"
        guard c_setxattr(path, "trusted.overlay.opaque", value, 1, 0) == 0 else {
            throw ProviderError(.backend, "cannot mark \(path) opaque: \(String(cString: strerror(errno)))")
        }
    }

    /// Mount points of this mount namespace.
    static func mountPoints() -> Set<String> {
        guard let text = read("/proc/self/mountinfo") else { return [] }
        var result = Set<String>()
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4 { result.insert(unescapeMount(String(fields[4]))) }
        }
        return result
    }

    /// The mount point of the first file system of type `type`.
    static func mountPoint(ofType type: String) -> String? {
        guard let text = read("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.components(separatedBy: " - ")
            guard parts.count == 2, parts[1].split(separator: " ").first.map(String.init) == type else { continue }
            let fields = parts[0].split(separator: " ")
            if fields.count > 4 { return unescapeMount(String(fields[4])) }
        }
        return nil
    }

    private static func unescapeMount(_ s: String) -> String {
        s.replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
            .replacingOccurrences(of: "\\012", with: "\n").replacingOccurrences(of: "\\134", with: "\\")
    }

    /// The start time of a live process (clock ticks since boot), to tell it from a reused PID; nil once it has exited.
    static func processStartTime(_ pid: Int32) -> UInt64? {
        guard let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields after the command: state is index 0, starttime is field 22 overall → index 19.
        // A zombie (or dying) process is gone for our purposes: it runs nothing any more.
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }

    /// An exclusive advisory lock on `path` (shared with other processes),
    /// held until `body` returns. The wait happens on a thread of its own:
    /// a task blocked in flock must never hold a cooperative-pool thread
    /// that the lock's current holder needs to finish.
    static func withLock<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ProviderError(.backend, "cannot open lock \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let failure: Int32 = try await DedicatedThread.run {
            while flock(fd, LOCK_EX) != 0 {
                if errno != EINTR { return errno }
            }
            return 0
        }
        guard failure == 0 else { throw ProviderError(.backend, "cannot lock \(path): \(String(cString: strerror(failure)))") }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }
}

@_silgen_name("setxattr")
private func c_setxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>, _ value: UnsafeRawPointer, _ size: Int, _ flags: Int32) -> Int32
