#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@testable import loadgen

/// docs/loadgen.md documents every command's JSON: each key it lists (the first column of its
/// tables) is read here from real output of the built loadgen, and every top-level key the output
/// has is documented. A key "or null" must be present, as null.
@Suite(.serialized)
struct DocumentedJSONTests {
    /// `### \`loadgen run --json\`` → "run": the keys listed in each section.
    static func documentedKeys() throws -> [String: [String]] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/loadgen.md").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var sections: [String: [String]] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") {
                current = line.hasPrefix("### `loadgen ")
                    ? line.dropFirst("### `loadgen ".count).split(whereSeparator: { $0 == " " || $0 == "`" }).first.map(String.init)
                    : nil
                continue
            }
            guard let current, line.hasPrefix("| `") else { continue }
            let firstCell = line.dropFirst(2).prefix { $0 != "|" }
            let keys = firstCell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            sections[current, default: []] += keys
        }
        return sections
    }

    /// The value at `path` (`a.b`, `a[].b`) exists in `json` for every element of each array on
    /// the way; a null leaf counts as present.
    static func missing(_ path: String, in json: Any) -> String? {
        var values: [Any] = [json]
        for part in path.split(separator: ".") {
            let isArray = part.hasSuffix("[]")
            let key = String(isArray ? part.dropLast(2) : part)
            var next: [Any] = []
            for value in values {
                guard let object = value as? [String: Any], let child = object[key] else { return "\(path): no '\(key)'" }
                if isArray {
                    guard let array = child as? [Any], !array.isEmpty else { return "\(path): '\(key)' is not a non-empty array" }
                    next += array
                } else {
                    next.append(child)
                }
            }
            values = next
        }
        return nil
    }

    static func check(_ command: String, _ output: String, documented: [String: [String]], everyTopLevelKey: Bool = true) throws {
        let keys = try #require(documented[command], "docs/loadgen.md has no section for loadgen \(command)")
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8))
        for key in keys {
            if let problem = missing(key, in: json) { Issue.record("loadgen \(command): \(problem)") }
        }
        guard everyTopLevelKey, let object = json as? [String: Any] else { return }
        let topLevel = Set(keys.map { String($0.prefix { $0 != "." && $0 != "[" }) })
        for key in object.keys where !topLevel.contains(key) {
            Issue.record("loadgen \(command): '\(key)' is in the output but not in docs/loadgen.md")
        }
    }

    @Test func everyDocumentedKeyIsInRealOutput() throws {
        let documented = try Self.documentedKeys()
        #expect(Set(documented.keys) == ["run", "merge", "idle", "churn", "curve", "sweep"])
        let server = try TestEchoServer()
        defer { server.stop() }
        let target = server.address.description
        let pid = "\(getpid())"  // the test server runs in this process: its figures are this process's

        let run = try CommandLineTests.loadgen(["run", "--target", target, "-c", "2", "--duration", "1200ms", "--warmup", "0s", "--server-pid", pid, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        try Self.check("run", run.stdout, documented: documented)

        let other = try CommandLineTests.loadgen(["run", "--target", target, "-c", "2", "--duration", "1200ms", "--warmup", "0s", "--server-pid", pid, "--json"])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("documented-\(getpid())-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (a, b) = (folder.appendingPathComponent("a.json").path, folder.appendingPathComponent("b.json").path)
        try run.stdout.write(toFile: a, atomically: true, encoding: .utf8)
        try other.stdout.write(toFile: b, atomically: true, encoding: .utf8)
        let merge = try CommandLineTests.loadgen(["merge", a, b, "--json"])
        #expect(merge.status == 0, "\(merge.stderr)")
        try Self.check("merge", merge.stdout, documented: documented, everyTopLevelKey: false)

        let idle = try CommandLineTests.loadgen(["idle", "--target", target, "-c", "2", "--hold", "0s", "--server-pid", pid, "--json"])
        #expect(idle.status == 0, "\(idle.stderr)")
        try Self.check("idle", idle.stdout, documented: documented)

        let churn = try CommandLineTests.loadgen([
            "churn", "--target", target, "--concurrency", "2", "--duration", "300ms", "--warmup", "0s", "--server-pid", pid, "--json",
        ])
        #expect(churn.status == 0, "\(churn.stderr)")
        try Self.check("churn", churn.stdout, documented: documented)

        let curve = try CommandLineTests.loadgen([
            "curve", "--target", target, "-c", "2", "--rates", "100", "--duration", "300ms", "--warmup", "0s", "--no-progress", "--json",
        ])
        #expect(curve.status == 0, "\(curve.stderr)")
        try Self.check("curve", curve.stdout, documented: documented)

        let out = folder.appendingPathComponent("sweep").path
        let sweep = try CommandLineTests.loadgen([
            "sweep", "--servers", "libev", "--connections", "10", "--duration", "200ms", "--warmup", "0s", "--hold", "0s",
            "--no-pin", "--out", out,
        ], timeout: .seconds(60))
        #expect(sweep.status == 0, "\(sweep.stderr)")
        try Self.check("sweep", try String(contentsOfFile: out + "/results.json", encoding: .utf8), documented: documented)
    }
}
