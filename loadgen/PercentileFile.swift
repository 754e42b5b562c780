#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Histogram

/// `--percentiles FILE`: the latency distribution in HdrHistogram's `.hgrm` text format (columns
/// Value, Percentile, TotalCount, 1/(1-Percentile), then the #[Mean, #[Max and #[Buckets trailer),
/// values in microseconds, so HdrHistogram's plotters (plotFiles.html, hdr-plot) load it unchanged.
enum PercentileFile {
    static func text(_ histogram: Histogram<UInt64>) -> String {
        var text = ""
        histogram.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1000)
        return text
    }

    /// Writes the file, replacing one that exists; one line and exit 1 if it cannot.
    static func write(_ histogram: Histogram<UInt64>, to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0, writeAll(fd, Array(text(histogram).utf8)) else {
            Lifecycle.fail(tool: "loadgen", message: "cannot write \(path): \(errnoDescription(errno))")
        }
        close(fd)
    }
}
