/// Builds the shell line sshd runs for one exec: it records the command's
/// process group (so a timeout can kill the whole tree from a second
/// channel), changes directory, sets the environment and runs argv.
enum RemoteCommand {
    /// `s` as one single-quoted POSIX shell word.
    static func quote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The pid file of exec `token` on the VM.
    static func pidFile(_ token: String) -> String { "/tmp/.vers-swarm-exec-\(token).pid" }

    /// The command line for `request`; `token` names its pid file.
    static func line(_ request: ExecRequest, token: String) -> String {
        let cwd = request.cwd ?? "/root"
        let script = #"echo $$ > "$1"; cd -- "$2" 2>/dev/null || { printf 'vers-swarm: cwd %s: No such file or directory\n' "$2" >&2; rm -f "$1"; exit 126; }; p=$1; shift 2; env "$@"; rc=$?; rm -f "$p"; exit $rc"#
        let env = request.env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        // `env -- NAME=VALUE… argv`: no option parsing; setsid gives the command its own process group.
        let words = ["exec", "setsid", "-w", "sh", "-c", script, "vers-swarm", pidFile(token), cwd, "--"] + env + request.argv
        return words.enumerated().map { $0.offset < 3 ? $0.element : quote($0.element) }.joined(separator: " ")
    }

    /// The line that kills exec `token`'s whole process group.
    static func kill(token: String) -> String {
        let file = quote(pidFile(token))
        return "p=$(cat \(file) 2>/dev/null) && [ -n \"$p\" ] && kill -KILL -- -\"$p\"; rm -f \(file)"
    }
}
