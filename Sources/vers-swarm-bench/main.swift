// vers-swarm-bench: measurements printed as ratios taken side by side in one
// run (the machine is shared and noisy; absolute times mean little).
//
//   vers-swarm-bench branch-cost [--rounds N]
//       Branch time from a commit holding 1 GiB of files vs one holding 1 MiB
//       on the local backend. Goal: ratio ≈ 1 (branch cost independent of size).
import Foundation
import Logging
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
        return try await p.commit(vmID: vm)
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

let args = Array(CommandLine.arguments.dropFirst())
guard let which = args.first else {
    print("usage: vers-swarm-bench branch-cost [--rounds N]")
    exit(2)
}
var rounds = 7
if let i = args.firstIndex(of: "--rounds"), i + 1 < args.count, let n = Int(args[i + 1]), n > 0 { rounds = n }
switch which {
case "branch-cost":
    do { try await branchCost(rounds: rounds) } catch { fail("\(error)") }
default:
    fail("unknown benchmark \(which)")
}
