import EchoProtocol
import Testing

/// The conformance checks are only worth something if they fail when a behaviour is missing.
/// `broken-echo` (Tests/BrokenEcho) is an echo server with one chosen defect; each test here runs
/// the check aimed at that defect and requires it to fail, and a passing check as a control.
@Suite(.serialized)
struct SuiteCanFailTests {
    @Test func serverThatDropsAByteFailsTheEchoCheck() throws {
        try withServer(ServerSpec("broken-echo", ["--defect", "drop-byte"])) { server in
            expectFailure(mentioning: "echo of 65536 B") { try Conformance.echoesExactly(server, size: 64 * 1024) }
        }
    }

    @Test func serverThatNeverClosesAfterHalfCloseFailsTheHalfCloseCheck() throws {
        try withServer(ServerSpec("broken-echo", ["--defect", "no-close"])) { server in
            // Control: it does echo correctly, so only the half-close behaviour is missing.
            try Conformance.echoesExactly(server, size: 64 * 1024)
            expectFailure(mentioning: "did not close") { try Conformance.halfCloseEchoesPendingThenCloses(server) }
        }
    }

    @Test func serverThatBuffersWithoutBoundFailsTheMemoryCheck() throws {
        try withServer(ServerSpec("broken-echo", ["--defect", "unbounded"])) { server in
            try Conformance.echoesExactly(server, size: 64 * 1024)
            expectFailure(mentioning: "RSS grew") { try Conformance.boundsMemoryOfClientThatNeverReads(server) }
        }
    }

    @Test func missingServerExecutableFails() {
        #expect(throws: ConformanceFailure.self) { try withServer(ServerSpec("echo-nonexistent")) { _ in } }
    }

    @Test func correctBrokenEchoBaselinePassesEveryCheckItIsNotBrokenFor() throws {
        // `--defect none` is the same server without a defect: the checks pass, so the failures
        // above come from the defects, not from the test server itself.
        let spec = ServerSpec("broken-echo", ["--defect", "none"])
        try withServer(spec) { server in
            try Conformance.echoesExactly(server, size: 64 * 1024)
            try Conformance.halfCloseEchoesPendingThenCloses(server)
            try Conformance.boundsMemoryOfClientThatNeverReads(server)
        }
    }
}

/// The check must fail, and for the reason aimed at, not some other one.
private func expectFailure(mentioning reason: String, _ check: () throws -> Void) {
    do {
        try check()
        Issue.record("the check passed against a server built to fail it")
    } catch {
        #expect("\(error)".contains(reason), "failed for another reason: \(error)")
    }
}
