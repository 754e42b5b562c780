import ArgumentParser
import EchoProtocol
import Foundation

extension Loadgen {
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Combine `loadgen run --json` results from several client machines into one.",
            discussion: """
                Past one machine's ports or descriptors, run loadgen on several hosts against one server with \
                the same settings, save each one's --json, and merge them: messages and rates add up, \
                latency histograms are added (percentiles are never averaged), fairness covers every \
                connection, and the server's figures are taken once. Example:
                  loadgen merge host1.json host2.json --json > all.json
                """)

        @Argument(help: ArgumentHelp("Two or more results of `loadgen run --json`.", valueName: "file"))
        var files: [String] = []

        @OptionGroup(title: "Output") var output: OutputOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Also write the merged latency distribution here (.hgrm, µs).", valueName: "file"))
        var percentiles: String?

        func validate() throws {
            guard files.count >= 2 else { throw ValidationError("merge needs two or more result files") }
            if let csv = output.csv { try OutputPaths.checkCSV(csv, header: Report.runCSVHeader, kind: "run") }
            if let percentiles { try OutputPaths.checkFile(percentiles, option: "--percentiles") }
        }

        func run() throws {
            var runs: [(name: String, result: LoadResult)] = []
            var seen: [String: String] = [:]
            for file in files {
                // One file named twice (or through another path) would count its run twice.
                let real = URL(fileURLWithPath: file).resolvingSymlinksInPath().standardizedFileURL.path
                if let earlier = seen[real] {
                    Lifecycle.fail(tool: "loadgen", message: "\(file) is given twice (as \(earlier)); merge each run once")
                }
                seen[real] = file
                guard let data = FileManager.default.contents(atPath: file) else {
                    Lifecycle.fail(tool: "loadgen", message: "cannot read \(file)")
                }
                guard let result = try? JSONDecoder().decode(LoadResult.self, from: data) else {
                    Lifecycle.fail(tool: "loadgen", message: "\(file) is not the JSON of `loadgen run --json`")
                }
                runs.append((file, result))
            }
            let merged: LoadResult
            do {
                merged = try RunMerge.merge(runs)
            } catch {
                Lifecycle.fail(tool: "loadgen", message: error.description)
            }
            if let percentiles, let histogram = merged.latencyHistogram {
                PercentileFile.write(histogram, to: percentiles)
            }
            try Report.emit(merged, json: output.json, csv: output.csv)
            try ExitStatus.finish(succeeded: merged.succeeded, interrupted: false, why: merged.failureLine)
        }
    }
}
