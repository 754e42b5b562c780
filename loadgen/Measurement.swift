import EchoProtocol

/// What `loadgen run` and `loadgen idle` share around their engine: process set-up, SIGINT as a
/// request to stop early (with results), pinning, the live line, and a start-up failure as one line.
/// `body` runs the engine with the settings, the live-line callback and the stop request.
func measure<Result>(
    _ connection: ConnectionOptions, _ progress: ProgressOption,
    _ body: (ConnectionSettings, ((LiveFigures) -> Void)?, StopRequest) throws(StartupError) -> Result
) -> Result {
    let (settings, stop) = prepareClient { connection.settings }
    let live = LiveLine(enabled: !progress.noProgress)
    defer { live.clear() }
    do throws(StartupError) {
        return try body(settings, live.callback, stop)
    } catch {
        live.clear()
        ExitStatus.fail(error, interrupted: stop.isRequested)
    }
}

/// The process set-up every load command makes first: signals and limits (`Lifecycle.prepare`),
/// SIGINT as a request to stop early, the client pinned to `--cpus`.
func prepareClient(_ makeSettings: () -> ConnectionSettings) -> (ConnectionSettings, StopRequest) {
    Lifecycle.prepare()
    let stop = StopRequest()
    Lifecycle.onStopSignal { stop.request() }
    let settings = makeSettings()
    if !settings.cpus.isEmpty { pinCurrentThread(to: settings.cpus) }
    return (settings, stop)
}

extension StartupError {
    /// The first line of the message: every loadgen failure is one line.
    var oneLine: String { String(message.split(separator: "\n").first ?? "") }
}
