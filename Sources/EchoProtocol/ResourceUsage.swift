#if canImport(Glibc)
import Glibc
#endif

/// CPU time and context switches of a whole process.
public struct ResourceUsage: Codable, Sendable, Equatable {
    public var userSeconds: Double
    public var systemSeconds: Double
    public var voluntaryContextSwitches: Int
    public var involuntaryContextSwitches: Int
    /// Peak resident set (getrusage's ru_maxrss), KiB.
    public var maxRSSKiB: Int

    public init(
        userSeconds: Double, systemSeconds: Double, voluntaryContextSwitches: Int,
        involuntaryContextSwitches: Int, maxRSSKiB: Int
    ) {
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
        self.voluntaryContextSwitches = voluntaryContextSwitches
        self.involuntaryContextSwitches = involuntaryContextSwitches
        self.maxRSSKiB = maxRSSKiB
    }

    public var cpuSeconds: Double { userSeconds + systemSeconds }
    public var contextSwitches: Int { voluntaryContextSwitches + involuntaryContextSwitches }

    /// `getrusage(RUSAGE_SELF)`: every thread of this process, including threads that have exited.
    public static func ofSelf() -> ResourceUsage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return ResourceUsage(
            userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime),
            voluntaryContextSwitches: usage.ru_nvcsw, involuntaryContextSwitches: usage.ru_nivcsw,
            maxRSSKiB: usage.ru_maxrss)
    }

    /// The usage accrued between `earlier` and `self` (max RSS stays the later peak).
    public func since(_ earlier: ResourceUsage) -> ResourceUsage {
        ResourceUsage(
            userSeconds: userSeconds - earlier.userSeconds, systemSeconds: systemSeconds - earlier.systemSeconds,
            voluntaryContextSwitches: voluntaryContextSwitches - earlier.voluntaryContextSwitches,
            involuntaryContextSwitches: involuntaryContextSwitches - earlier.involuntaryContextSwitches,
            maxRSSKiB: maxRSSKiB)
    }

    private static func seconds(_ time: timeval) -> Double {
        Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000
    }
}
