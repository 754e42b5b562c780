import EchoProtocol

/// What `loadgen run` and `loadgen idle` share around their engine: process set-up, SIGINT as a
/// request to stop early (with results), pinning, the live line, and a start-up failure as one line.
/// `body` runs the engine with the settings, the live-line callback and the stop request.
func measure<Result>(
    _ connection: ConnectionOptions, _ output: OutputOptions,
    _ body: (ConnectionSettings, ((LiveFigures) -> Void)?, StopRequest) throws(StartupError) -> Result
) -> Result {
    Lifecycle.prepare()
    let stop = StopRequest()
    Lifecycle.onStopSignal { stop.request() }
    let settings = connection.settings
    if !settings.cpus.isEmpty { pinCurrentThread(to: settings.cpus) }
    let live = LiveLine(enabled: !output.noProgress)
    defer { live.clear() }
    do throws(StartupError) {
        return try body(settings, live.callback, stop)
    } catch {
        live.clear()
        Lifecycle.fail(tool: "loadgen", message: error.oneLine)
    }
}

extension StartupError {
    /// The first line of the message: every loadgen failure is one line.
    var oneLine: String { String(message.split(separator: "\n").first ?? "") }
}
