/// Builds the shell line sshd runs for one exec. sshd starts every command
/// in a session (and process group) of its own, led by the user's shell, so
/// the line reports that shell's PID on stderr — a marker line the reader
/// strips — and ends with the command itself: a timeout kills the whole
/// process group from a second channel. A program named by a path (such as
/// `/bin/sh` for string commands) is `exec`'d in the shell's place, saving a
/// fork; a bare name is left to the shell as `ssh host cmd` leaves it, so a
/// builtin such as `true` costs no exec at all (an external one costs a fork,
/// and its exit status is the same: the shell reports a signal as 128+n, as
/// we do).
enum RemoteCommand {
    /// `s` as one single-quoted POSIX shell word.
    static func quote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The first stderr line of every exec: the marker, the PID, a newline.
    static let pidMarker = "\u{1e}vers-swarm-pid:"

    /// The command line for `request`.
    static func line(_ request: ExecRequest) -> String {
        // sshd starts the shell in the user's home already: cd only when asked elsewhere.
        var line = "printf '\\036vers-swarm-pid:%s\\n' $$ >&2; "
        if let dir = request.cwd {
            let cwd = quote(dir)
            line += "cd -- \(cwd) 2>/dev/null || { printf 'vers-swarm: cwd %s: No such file or directory\\n' \(cwd) >&2; exit 126; }; "
        }
        line += request.env.sorted { $0.key < $1.key }.map { "export \($0.key)=\(quote($0.value)); " }.joined()
        if request.argv.first?.contains("/") == true { line += "exec " }
        line += request.argv.map(quote).joined(separator: " ")
        return line
    }

    /// The line that kills process group `pid` and everything in it.
    static func kill(processGroup pid: Int) -> String {
        "kill -KILL -- -\(pid) 2>/dev/null; true"
    }

    /// Splits the PID marker line off the front of stderr.
    static func splitMarker(_ stderr: String) -> (pid: Int?, rest: String) {
        guard stderr.hasPrefix(pidMarker), let newline = stderr.firstIndex(of: "\n") else { return (nil, stderr) }
        let pid = Int(stderr[stderr.index(stderr.startIndex, offsetBy: pidMarker.count)..<newline])
        return (pid, String(stderr[stderr.index(after: newline)...]))
    }
}
