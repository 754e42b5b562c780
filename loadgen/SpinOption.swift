import ArgumentParser

/// `--spin`, shared by the commands that run open loops (`run`, `curve`, `ab`).
struct SpinOption: ParsableArguments {
    @Flag(
        help: ArgumentHelp(
            "Client loops poll without ever sleeping (each takes a full core), so an idle CPU's late wake-up is not measured as latency. For open loops (--rate) at low rates on virtual or power-saving CPUs."))
    var spin = false
}
