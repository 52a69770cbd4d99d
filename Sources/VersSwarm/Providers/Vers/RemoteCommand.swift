/// Builds the shell line sshd runs for one exec. sshd starts every command
/// in a session (and process group) of its own, led by the user's login
/// shell, so the line reports that shell's PID on stderr — a marker line the
/// reader strips — and then runs the command in that shell's place: a
/// timeout kills the whole process group from a second channel.
///
/// An argv is `exec`'d, so it runs as that program exactly (never a shell
/// builtin of the same name). A string command (`/bin/sh -c CMD`) runs in
/// the login shell itself when that shell is `sh` — what `sh -c` would do,
/// without starting a second shell, so `true` costs no exec at all, as with
/// `ssh host true` — and under `exec /bin/sh -c` when it is another shell.
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
        if let script = request.shellScript {
            // sshd names the shell by its file name in $0: "sh" for /bin/sh.
            line += "if [ \"$0\" = sh ]; then eval \(quote(script)); else exec /bin/sh -c \(quote(script)); fi"
        } else {
            line += "exec " + request.argv.map(quote).joined(separator: " ")
        }
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
