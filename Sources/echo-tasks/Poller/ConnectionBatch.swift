import NetPoller

/// Up to `capacity` connections' tasks in one task group of their own, fed by the accept task.
///
/// Why not one group for all of a loop's connections: the Swift runtime unlinks a finished child
/// from its group by walking the group's children (`swift::TaskGroup::removeChildTask`), so with N
/// connection tasks alive every connection's end cost O(N): at 10,000 idle connections, 48% of the
/// server's time went there and creating a connection cost 81 µs instead of 35. Batches bound the
/// walk at `capacity`. The structure stays a tree: accept task → batch tasks → connection tasks,
/// and cancelling the server still reaches every connection through it.
struct ConnectionBatch {
    static let capacity = 256

    private let feed: AsyncStream<PollConnection>.Continuation
    private var added = 0

    var isFull: Bool { added >= Self.capacity }

    /// Starts a batch task in `batches`, on the acceptor's loop: it takes connections from its feed
    /// and runs each in a child task, until the feed is closed and the last child has ended.
    static func start(in batches: inout ThrowingDiscardingTaskGroup<any Error>, acceptor: Acceptor) -> ConnectionBatch {
        let (connections, feed) = AsyncStream<PollConnection>.makeStream(bufferingPolicy: .unbounded)
        batches.addTask(executorPreference: acceptor.loop) {
            await withDiscardingTaskGroup { group in
                for await connection in connections {
                    acceptor.addConnectionTask(connection, to: &group)
                }
            }
        }
        return ConnectionBatch(feed: feed)
    }

    private init(feed: AsyncStream<PollConnection>.Continuation) {
        self.feed = feed
    }

    /// Hands `connection` to the batch's task; false if that task has already ended (the server is
    /// stopping and cancellation reached the batch first): the caller still owns the connection.
    mutating func add(_ connection: PollConnection) -> Bool {
        if case .terminated = feed.yield(connection) { return false }
        added += 1
        return true
    }

    /// No more connections for this batch; its task ends when its connections have.
    func close() {
        feed.finish()
    }
}
