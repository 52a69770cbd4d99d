import Foundation
import Logging
import Testing
@testable import VersSwarm

/// Runs `body` with a local backend in a fresh state dir, then deletes every
/// VM it made and unmounts its store, even when the body throws.
func withLocalProvider(_ body: (LocalProvider) async throws -> Void) async throws {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("vs-local-\(UUID().uuidString.prefix(8))").path
    let provider = LocalProvider(home: home, logger: Logger(label: "test"))
    do {
        try await body(provider)
    } catch {
        await cleanup(provider, home)
        throw error
    }
    await cleanup(provider, home)
}

private func cleanup(_ provider: LocalProvider, _ home: String) async {
    for vm in (try? await provider.list()) ?? [] { _ = try? await provider.delete(vmID: vm.vmID) }
    try? await provider.unmount()
    try? FileManager.default.removeItem(atPath: home)
}

extension LocalProvider {
    func sh(_ vm: String, _ command: String, timeout: Double? = nil) async throws -> ExecResult {
        try await exec(vmID: vm, ExecRequest(argv: ["/bin/sh", "-c", command], timeout: timeout))
    }
}

@Suite("Local backend on real namespaces and overlayfs", .serialized)
struct LocalProviderTests {
    @Test("branches start from the commit and never see each other's writes")
    func branchIsolation() async throws {
        try await withLocalProvider { p in
            let golden = try await p.create(VMSpec()).vmID
            #expect(try await p.sh(golden, "echo gold > /srv/golden.txt").exitCode == 0)
            let commit = try await p.commit(vmID: golden, name: nil, description: nil)
            let outcome = await p.branch(commitID: commit, count: 3)
            #expect(outcome.failure == nil)
            #expect(outcome.vmIDs.count == 3)
            for id in outcome.vmIDs {
                #expect(try await p.sh(id, "cat /srv/golden.txt").stdout == "gold\n")
                #expect(try await p.sh(id, "echo \(id) > /srv/mine.txt").exitCode == 0)
            }
            for id in outcome.vmIDs {
                #expect(try await p.sh(id, "cat /srv/mine.txt").stdout == "\(id)\n")
            }
            #expect(try await p.sh(golden, "test -e /srv/mine.txt").exitCode == 1)
        }
    }

    @Test("a timeout kills the whole process tree and reports 124")
    func timeoutKillsTree() async throws {
        try await withLocalProvider { p in
            let vm = try await p.create(VMSpec()).vmID
            let result = try await p.sh(vm, "(sleep 300; echo late > /tmp/late) & sleep 300", timeout: 1)
            #expect(result.timedOut)
            #expect(result.exitCode == 124)
            let ps = try await p.sh(vm, "ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == \"sleep\"' | wc -l")
            #expect(ps.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        }
    }

    @Test("background processes keep running between execs")
    func backgroundSurvives() async throws {
        try await withLocalProvider { p in
            let vm = try await p.create(VMSpec()).vmID
            let start = try await p.sh(vm, "sleep 300 & echo $! > /tmp/bg.pid")
            #expect(start.exitCode == 0)
            #expect(try await p.sh(vm, "kill -0 $(cat /tmp/bg.pid)").exitCode == 0)
        }
    }

    @Test("exec passes env, cwd and stdin, and exit codes come through")
    func execPlumbing() async throws {
        try await withLocalProvider { p in
            let vm = try await p.create(VMSpec()).vmID
            let r = try await p.exec(vmID: vm, ExecRequest(
                argv: ["/bin/sh", "-c", "pwd; echo $GREETING; cat; exit 7"], env: ["GREETING": "hi"], cwd: "/tmp",
                stdin: Array("from stdin".utf8)))
            #expect(r.exitCode == 7)
            #expect(r.stdout == "/tmp\nhi\nfrom stdin")
            let missing = try await p.exec(vmID: vm, ExecRequest(argv: ["no-such-program"]))
            #expect(missing.exitCode == 127)
        }
    }

    @Test("concurrent execs on one VM all complete")
    func concurrentExecs() async throws {
        try await withLocalProvider { p in
            let vm = try await p.create(VMSpec()).vmID
            let outputs = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<8 { group.addTask { try await p.sh(vm, "sleep 0.2; echo \(i)").stdout } }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(outputs == Set((0..<8).map { "\($0)\n" }))
        }
    }

    @Test("delete kills every process and frees the VM's storage; a second delete is not found")
    func deleteFrees() async throws {
        try await withLocalProvider { p in
            let vm = try await p.create(VMSpec()).vmID
            _ = try await p.sh(vm, "head -c 1048576 /dev/zero > /srv/blob; sleep 300 &")
            #expect(try await p.delete(vmID: vm) == .deleted)
            #expect(!FileManager.default.fileExists(atPath: p.store.vmDir(vm)))
            #expect(try await p.delete(vmID: vm) == .notFound)
            await #expect(throws: ProviderError.self) { _ = try await p.sh(vm, "true") }
            await #expect(throws: ProviderError.self) { _ = try await p.commit(vmID: vm, name: nil, description: nil) }
        }
    }

    @Test("a VM cannot see host secrets, host processes or the bridge's environment")
    func isolation() async throws {
        try await withLocalProvider { p in
            let vm = try await p.create(VMSpec()).vmID
            let marker = "/root/vs-marker-\(UUID().uuidString.prefix(8))"
            #expect(FileManager.default.createFile(atPath: marker, contents: Data("secret".utf8)))
            defer { try? FileManager.default.removeItem(atPath: marker) }
            #expect(try await p.sh(vm, "cat \(marker)").exitCode != 0)
            #expect(try await p.sh(vm, "cat /etc/shadow").exitCode != 0)
            #expect(try await p.sh(vm, "ls \(p.store.home)").exitCode != 0)
            #expect(try await p.sh(vm, "kill -0 \(getpid())").exitCode != 0)
            #expect(try await p.sh(vm, "env").stdout.contains("VERS_API_KEY") == false)
        }
    }
}

