// vers-swarm-bench: measurements printed as ratios taken side by side in one
// run (the machine is shared and noisy; absolute times mean little).
//
//   vers-swarm-bench branch-cost [--rounds N]
//       Branch time from a commit holding 1 GiB of files vs one holding 1 MiB
//       on the local backend. Goal: ratio ≈ 1 (branch cost independent of size).
//
//   vers-swarm-bench swarm-map [--rounds N] [--tasks N]
//       Wall time of swarm_map running N (32) tasks `sleep 1; echo N` at
//       concurrency N vs one such task. Goal: ratio ≤ 1.5.
//
//   vers-swarm-bench ssh-latency [--execs N] [--rounds N]
//       Against the Vers API in VERS_* (scripts/bench-ssh starts the emulator):
//       per-exec latency of `true` over the pooled libssh2 session vs OpenSSH
//       with ControlMaster vs a fresh `ssh` each time (same sshd, same user),
//       vs spawning `sh -c true` locally, taking turns in rounds (medians);
//       and the TCP/TLS handshakes the N pooled execs needed. Goals: ≥3×
//       ControlMaster, ≥50× fresh ssh, within 3× of local, 1 handshake.
//
//   vers-swarm-bench registry-stress --home DIR --ops N --tag T
//       One process's share of a concurrent registry load: N rounds of
//       create-row, bind, and (every other round) unbind. Prints JSON counts;
//       run several at once on one DIR to load the shared registry.
import Foundation
import Logging
import MCP
import Subprocess
import SystemPackage
import VersSwarm

func elapsed(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? .nan : s[s.count / 2]
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vers-swarm-bench: \(message)\n".utf8))
    exit(1)
}

func branchCost(rounds: Int) async throws {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("vs-bench-\(UUID().uuidString.prefix(8))").path
    let p = LocalProvider(home: home, logger: Logger(label: "bench"))
    var made: [String] = []
    func prepare(_ mib: Int, files: Int) async throws -> String {
        let vm = try await p.create(VMSpec()).vmID
        made.append(vm)
        let each = mib / files
        let r = try await p.exec(vmID: vm, ExecRequest(argv: ["/bin/sh", "-c",
            "mkdir -p /data && for i in $(seq 1 \(files)); do head -c \(each << 20) /dev/zero > /data/f$i; done; du -sm /data"]))
        guard r.exitCode == 0 else { fail("preparing \(mib) MiB failed: \(r.stderr)") }
        return try await p.commit(vmID: vm, name: nil, description: nil)
    }
    FileHandle.standardError.write(Data("preparing commits of 1 MiB and 1 GiB...\n".utf8))
    let small = try await prepare(1, files: 1)
    let large = try await prepare(1024, files: 64)
    var smallTimes: [Double] = [], largeTimes: [Double] = []
    for round in 0..<rounds {
        for (commit, isLarge) in (round % 2 == 0 ? [(small, false), (large, true)] : [(large, true), (small, false)]) {
            var ids: [String] = []
            let t = try await elapsed {
                let outcome = await p.branch(commitID: commit, count: 1)
                if let failure = outcome.failure { throw failure }
                ids = outcome.vmIDs
                // The branch is usable: the commit's files are there.
                let r = try await p.exec(vmID: ids[0], ExecRequest(argv: ["/bin/sh", "-c", "test -s /data/f1"]))
                if r.exitCode != 0 { fail("branch is missing the commit's files") }
            }
            for id in ids { _ = try await p.delete(vmID: id) }
            if isLarge { largeTimes.append(t) } else { smallTimes.append(t) }
        }
    }
    for id in made { _ = try? await p.delete(vmID: id) }
    made.removeAll()
    try? await p.unmount()
    try? FileManager.default.removeItem(atPath: home)
    let ratio = median(largeTimes) / median(smallTimes)
    print(String(format: "branch-cost: branch+first-exec from a 1 GiB commit vs a 1 MiB commit, median of %d rounds each", rounds))
    print(String(format: "branch-cost ratio (1 GiB / 1 MiB): %.2f  (goal: about 1; below 1.5)", ratio))
}

func swarmMap(rounds: Int, tasks: Int) async throws {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("vs-bench-\(UUID().uuidString.prefix(8))").path
    let bridge = try Bridge(configuration: BridgeConfiguration(home: home, backend: "local"), logger: Logger(label: "bench"))
    func call(_ tool: String, _ args: Value) async throws -> Value { try await bridge.run(tool, args) }
    let vm = try await call("create_vm", .object([:]))["vm_id"]?.stringValue ?? ""
    let label = "bench-\(UUID().uuidString.prefix(8))"
    _ = try await call("commit", .object(["vm_id": .string(vm), "label": .string(label)]))
    func run(_ n: Int) async throws -> Double {
        var result: Value = .null
        let t = try await elapsed {
            result = try await call("swarm_map", .object([
                "from": .string(label), "template": "sleep 1; echo {input}",
                "inputs": .array((0..<n).map { .int($0) }), "concurrency": .int(n),
            ]))
        }
        let ok = result["summary"]?["ok"]?.intValue ?? 0
        guard ok == n else { fail("swarm of \(n) had \(ok) ok tasks: \(JSONCoding.string(result))") }
        return t
    }
    var single: [Double] = [], many: [Double] = []
    for round in 0..<rounds {
        if round % 2 == 0 { single.append(try await run(1)); many.append(try await run(tasks)) }
        else { many.append(try await run(tasks)); single.append(try await run(1)) }
    }
    _ = try await call("delete", .object(["all": true]))
    try? await (bridge.provider as? LocalProvider)?.unmount()
    try? FileManager.default.removeItem(atPath: home)
    print(String(format: "swarm-map: %d tasks `sleep 1; echo N` at concurrency %d vs 1 task, median of %d rounds each", tasks, tasks, rounds))
    print(String(format: "swarm-map ratio (wall time / single-task time): %.2f  (goal: <= 1.5)", median(many) / median(single)))
}

func registryStress(home: String, ops: Int, tag: String) throws {
    let registry = try Registry(path: home + "/registry.sqlite")
    var created = 0, bound = 0, unbound = 0
    for i in 0..<ops {
        let vm = "\(tag)-vm-\(i)"
        try registry.saveVM(VMRecord(vmID: vm, provider: "stress", owner: .current))
        created += 1
        _ = try registry.bindSession("\(tag)-s-\(i)", to: vm)
        bound += 1
        if i % 2 == 0, try registry.unbindSession("\(tag)-s-\(i)") == vm { unbound += 1 }
    }
    print(JSONCoding.string(.object(["tag": .string(tag), "created": .int(created), "bound": .int(bound), "unbound": .int(unbound)])))
}

func spawn(_ argv: [String]) async throws -> Int {
    let result = try await Subprocess.run(.path(FilePath(argv[0])), arguments: Arguments(Array(argv.dropFirst())),
                                          output: .discarded, error: .discarded)
    if case .exited(let code) = result.terminationStatus { return Int(code) }
    return -1
}

func sshLatency(execs: Int, rounds: Int) async throws {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("vs-bench-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    let provider = try VersProvider(home: home, registryID: "bench", logger: Logger(label: "bench"))
    let vm = try await provider.create(VMSpec()).vmID
    defer { Task { _ = try? await provider.delete(vmID: vm) } }
    // What the exec tool sends for {"command": "true"}: the same shell command line as `ssh host true`.
    let request = ExecRequest(argv: ExecRequest.shellArgv("true"))
    _ = try await provider.exec(vmID: vm, request)
    let before = await provider.sshConnectionsOpened
    let credentials = try await provider.sshCredentials(vmID: vm)
    let proxy = credentials.command.components(separatedBy: "ProxyCommand=")[1].components(separatedBy: "' ")[0]
    let common = ["/usr/bin/ssh", "-i", credentials.keyFile, "-o", "ProxyCommand=\(proxy)", "-o", "StrictHostKeyChecking=no",
                  "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]
    let control = ["-o", "ControlMaster=auto", "-o", "ControlPath=\(home)/cm-%C", "-o", "ControlPersist=120"]
    let target = ["root@\(credentials.host)", "true"]
    guard try await spawn(common + control + target) == 0 else { fail("OpenSSH could not log in") }
    // The four ways take turns, round after round, so a noisy neighbour slows
    // them alike; each is summarised by its median time per exec.
    let perRound = max(1, execs / rounds)
    let freshPerRound = max(1, perRound / 10)
    var pooled: [Double] = [], master: [Double] = [], fresh: [Double] = [], local: [Double] = []
    for _ in 0..<rounds {
        for _ in 0..<perRound {
            pooled.append(try await elapsed {
                let r = try await provider.exec(vmID: vm, request)
                if r.exitCode != 0 { fail("pooled exec of true exited \(r.exitCode): \(r.stderr)") }
            })
        }
        for _ in 0..<perRound {
            master.append(try await elapsed {
                guard try await spawn(common + control + target) == 0 else { fail("OpenSSH ControlMaster exec of true failed") }
            })
        }
        for _ in 0..<freshPerRound {
            fresh.append(try await elapsed {
                guard try await spawn(common + target) == 0 else { fail("fresh OpenSSH exec of true failed") }
            })
        }
        for _ in 0..<perRound { local.append(try await elapsed { _ = try await spawn(["/bin/sh", "-c", "true"]) }) }
    }
    let handshakes = await provider.sshConnectionsOpened - before + 1
    _ = try? await spawn(common + control + ["-O", "exit", "root@\(credentials.host)"])
    _ = try await provider.delete(vmID: vm)
    try? FileManager.default.removeItem(atPath: home)
    let (p, m, f, l) = (median(pooled), median(master), median(fresh), median(local))
    print(String(format: "ssh-latency: `true` on one VM, %d rounds of %d execs each way (fresh ssh: %d), same sshd and user; medians",
                 rounds, perRound, freshPerRound))
    print(String(format: "pooled libssh2 exec: %.2f ms; ControlMaster: %.2f ms; fresh ssh: %.1f ms; local sh -c true: %.2f ms",
                 p * 1000, m * 1000, f * 1000, l * 1000))
    print(String(format: "OpenSSH ControlMaster / pooled libssh2: %.1fx  (goal: >= 3)", m / p))
    print(String(format: "fresh OpenSSH / pooled libssh2: %.1fx  (goal: >= 50)", f / p))
    print(String(format: "pooled libssh2 / local `sh -c true`: %.1fx  (goal: <= 3)", p / l))
    print("TCP/TLS handshakes for \(pooled.count + 1) execs on one VM: \(handshakes)  (goal: 1)")
}

func option(_ name: String, in args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let args = Array(CommandLine.arguments.dropFirst())
guard let which = args.first else {
    print("usage: vers-swarm-bench branch-cost|swarm-map [--rounds N] | registry-stress --home DIR --ops N --tag T")
    exit(2)
}
let rounds = option("--rounds", in: args).flatMap(Int.init).map { max($0, 1) }
do {
    switch which {
    case "branch-cost":
        try await branchCost(rounds: rounds ?? 7)
    case "swarm-map":
        try await swarmMap(rounds: rounds ?? 3, tasks: option("--tasks", in: args).flatMap(Int.init) ?? 32)
    case "ssh-latency":
        try await sshLatency(execs: option("--execs", in: args).flatMap(Int.init) ?? 100, rounds: rounds ?? 5)
    case "registry-stress":
        guard let home = option("--home", in: args), let ops = option("--ops", in: args).flatMap(Int.init),
              let tag = option("--tag", in: args) else { fail("registry-stress needs --home, --ops and --tag") }
        try registryStress(home: home, ops: ops, tag: tag)
    default:
        fail("unknown benchmark \(which)")
    }
} catch {
    fail("\(error)")
}
