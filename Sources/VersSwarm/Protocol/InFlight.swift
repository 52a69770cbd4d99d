/// The table of requests being worked on, keyed by their id's JSON text,
/// so a notifications/cancelled can reach one and EOF can wait for all.
actor InFlight {
    private var tasks: [String: (token: Int, task: Task<Void, Never>)] = [:]
    private var next = 0

    /// Starts `work` under `key`; false when that id is already in flight.
    func start(_ key: String, _ work: @escaping @Sendable () async -> Void) -> Bool {
        guard tasks[key] == nil else { return false }
        next += 1
        let token = next
        let task = Task {
            await work()
            self.finish(key, token)
        }
        tasks[key] = (token, task)
        return true
    }

    private func finish(_ key: String, _ token: Int) {
        if tasks[key]?.token == token { tasks[key] = nil }
    }

    /// Cancels the request with this key, if it is still running.
    func cancel(_ key: String) {
        tasks[key]?.task.cancel()
    }

    /// Waits until every request has been answered.
    func drain() async {
        while let (_, entry) = tasks.first {
            await entry.task.value
        }
    }
}
