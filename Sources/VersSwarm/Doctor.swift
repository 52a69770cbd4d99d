import Foundation

extension Bridge {
    /// Every health check: backend, libraries, state dir, then the backend's own.
    public func doctor() async -> [DoctorCheck] {
        var checks = [
            DoctorCheck("backend", .ok, "\(provider.name) (\(provider.isolation))"),
            DoctorCheck("libraries", .ok, "\(NativeLibraries.curl); libssh2 \(NativeLibraries.libssh2); SQLite \(registry.sqliteVersion()) (WAL)"),
        ]
        let home = configuration.home
        checks.append(access(home, W_OK) == 0
            ? DoctorCheck("state dir", .ok, "\(home) (registry \(registry.path))")
            : DoctorCheck("state dir", .fail, "\(home) is not writable"))
        checks += await provider.doctor()
        return checks
    }
}
