import Foundation
import Testing
@testable import VersSwarm

@Suite("SQLite registry")
struct RegistryTests {
    private func temporaryRegistry() throws -> (Registry, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vs-registry-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try Registry(path: dir + "/registry.sqlite"), dir)
    }

    @Test("VM rows round-trip and go away on remove")
    func vms() throws {
        let (registry, dir) = try temporaryRegistry()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try registry.saveVM(VMRecord(vmID: "a", provider: "local", parentCommit: "c1", session: "s"))
        #expect(try registry.vm("a")?.parentCommit == "c1")
        try registry.removeVM("a")
        #expect(try registry.vm("a") == nil)
    }

    @Test("labels are unique")
    func uniqueLabels() throws {
        let (registry, dir) = try temporaryRegistry()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try registry.saveCommit(CommitRecord(commitID: "c1", provider: "local", label: "golden"))
        #expect(throws: RegistryError.self) {
            try registry.saveCommit(CommitRecord(commitID: "c2", provider: "local", label: "golden"))
        }
        #expect(try registry.commit(label: "golden")?.commitID == "c1")
    }

    @Test("the database runs in WAL mode")
    func wal() throws {
        let (registry, dir) = try temporaryRegistry()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try registry.saveVM(VMRecord(vmID: "a", provider: "local"))
        #expect(FileManager.default.fileExists(atPath: dir + "/registry.sqlite-wal"))
    }

    @Test("two registry handles writing concurrently lose no row")
    func concurrentWriters() async throws {
        let (first, dir) = try temporaryRegistry()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let second = try Registry(path: dir + "/registry.sqlite")
        await withTaskGroup(of: Void.self) { group in
            for (n, registry) in [first, second].enumerated() {
                group.addTask {
                    for i in 0..<200 { try? registry.saveVM(VMRecord(vmID: "vm-\(n)-\(i)", provider: "local")) }
                }
            }
        }
        #expect(try first.vms().count == 400)
    }
}
