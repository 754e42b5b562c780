import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// `loadgen churn` (issue 12): lives counted exactly and verified; failures counted by kind.
@Suite(.serialized)
struct ChurnTests {
    static func churn(_ server: TestEchoServer, concurrency: Int = 8, lifeTimeout: Duration = .seconds(5)) throws -> ChurnResult {
        var settings = ConnectionSettings(target: server.address, connections: 1)
        settings.connectTimeout = .seconds(2)
        var churn = ChurnRun(connection: settings)
        churn.concurrency = concurrency
        churn.duration = .milliseconds(800)
        churn.warmup = .zero
        churn.lifeTimeout = lifeTimeout
        return try churn.run()
    }

    /// Every counted life was a connection the server accepted and echoed 16 verified bytes on;
    /// at most `concurrency` more were still in flight at the end (and one was the reachability probe).
    @Test func livesAreCountedExactlyAndVerified() throws {
        let server = try TestEchoServer()
        let result = try Self.churn(server)
        let record = server.stop()
        #expect(result.succeeded, "\(result.table)")
        #expect(result.lives > 50)
        let accepted = record.peers.count
        #expect(result.lives <= accepted - 1 && result.lives >= accepted - 1 - 8, "\(result.lives) lives, \(accepted) accepted")
        #expect(record.bytesEchoed >= result.lives * 16 && record.bytesEchoed <= (result.lives + 8) * 16)
        #expect(result.latencyMicroseconds.count == result.lives)
    }

    @Test func aServerThatResetsAtOnceIsCountedAsResets() throws {
        let server = try TestEchoServer(.resetOnAccept)
        defer { server.stop() }
        let result = try Self.churn(server)
        #expect(!result.succeeded)
        #expect(result.lives == 0)
        #expect(result.errors[.reset] + result.errors[.short] > 0 && result.errors[.reset] > 0, "\(result.errors)")
        #expect(result.errors[.mismatch] == 0 && result.errors[.timedOut] == 0)
    }

    @Test func aServerThatNeverAnswersIsCountedAsTimedOut() throws {
        let server = try TestEchoServer(.silent)
        defer { server.stop() }
        let result = try Self.churn(server, concurrency: 4, lifeTimeout: .milliseconds(200))
        #expect(!result.succeeded)
        #expect(result.errors[.timedOut] >= 4, "\(result.errors)")
        #expect(result.errors[.reset] == 0 && result.errors[.mismatch] == 0)
    }

    @Test func failuresEndWithExitStatus1AndAOneLineSummary() throws {
        let server = try TestEchoServer(.resetOnAccept)
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen([
            "churn", "--target", server.address.description, "--concurrency", "4", "--duration", "300ms", "--warmup", "0s",
        ])
        #expect(outcome.status == 1)
        #expect(outcome.stdout.contains("errors: ") && outcome.stdout.contains("reset "),
                "stdout: \(outcome.stdout) stderr: \(outcome.stderr)")
    }
}
