import Foundation
import Subprocess
import SystemPackage
import Synchronization

/// Runs host processes through swift-subprocess: bounded capture of both
/// streams, stdin from bytes, a timeout and cancellation that call a kill
/// hook (the caller decides what "the whole tree" is).
enum ProcessRunner {
    /// What a finished process did.
    struct Finished: Sendable {
        var status: Int
        var stdout: OutputCapture
        var stderr: OutputCapture
        var timedOut: Bool
        var durationMS: Int
    }

    /// Runs `path args…` and captures at most `limit` bytes per stream.
    static func run(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil,
        stdin: [UInt8]? = nil, limit: Int = 1 << 20, timeout: Double? = nil,
        kill: @escaping @Sendable (_ pid: Int32?) -> Void = { _ in }
    ) async throws -> Finished {
        let started = ContinuousClock.now
        let timedOut = Flag()
        let pid = ProcessIDBox()
        let env: Environment = environment.map { vars in
            .custom(vars.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)".utf8) + [0] })
        } ?? .inherit
        // The process runs in a task of its own: cancelling the caller calls the
        // kill hook (the command's tree dies, the process exits and is reaped
        // as usual) instead of tearing the process down under its children.
        let running = Task.detached { () async throws -> (TerminationStatus, [OutputCapture]) in
            let result = try await Subprocess.run(
                .path(FilePath(path)), arguments: Arguments(arguments), environment: env,
                input: .array(stdin ?? []), output: .sequence, error: .sequence
            ) { execution in
                pid.set(execution.processIdentifier.value)
                return try await withThrowingTaskGroup(of: (Int, OutputCapture)?.self) { group in
                    for (index, stream) in [execution.standardOutput, execution.standardError].enumerated() {
                        group.addTask {
                            var capture = OutputCapture(limit: limit)
                            for try await chunk in stream {
                                chunk.withUnsafeBytes { capture.append($0) }
                            }
                            return (index, capture)
                        }
                    }
                    if let timeout {
                        group.addTask {
                            try? await Task.sleep(for: .seconds(timeout))
                            if !Task.isCancelled {
                                timedOut.set()
                                kill(pid.current)
                            }
                            return nil
                        }
                    }
                    var captures = [OutputCapture(limit: 0), OutputCapture(limit: 0)]
                    var done = 0
                    while done < 2, let next = try await group.next() {
                        if let (index, capture) = next {
                            captures[index] = capture
                            done += 1
                        }
                    }
                    group.cancelAll()
                    return captures
                }
            }
            return (result.terminationStatus, result.closureResult)
        }
        let (termination, captures) = try await withTaskCancellationHandler {
            try await running.value
        } onCancel: {
            kill(pid.current)
        }
        let status: Int
        switch termination {
        case .exited(let code): status = Int(code)
        case .signaled(let signal): status = 128 + Int(signal)
        }
        let elapsed = ContinuousClock.now - started
        let ms = elapsed.milliseconds
        return Finished(
            status: status,
            stdout: captures[0],
            stderr: captures[1],
            timedOut: timedOut.isSet,
            durationMS: ms
        )
    }

    /// Runs a host tool and throws with its stderr when it fails.
    @discardableResult
    static func check(_ path: String, _ arguments: [String]) async throws -> String {
        let finished = try await run(path, arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"])
        guard finished.status == 0 else {
            let detail = finished.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ProviderError(.backend, "\(([path] + arguments).joined(separator: " ")) failed (exit \(finished.status)): \(detail)")
        }
        return finished.stdout.text
    }
}

/// The PID of a running child, for kill hooks.
final class ProcessIDBox: Sendable {
    private let value = Atomic<Int32>(0)
    func set(_ pid: Int32) { value.store(pid, ordering: .sequentiallyConsistent) }
    var current: Int32? {
        let pid = value.load(ordering: .sequentiallyConsistent)
        return pid == 0 ? nil : pid
    }
}
