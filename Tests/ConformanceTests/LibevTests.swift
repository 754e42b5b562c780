import EchoProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Behaviour particular to echo-libev (issue 4), beyond the conformance suite.
@Suite(.serialized)
struct LibevTests {
    /// Out of descriptors, accept(2) fails with EMFILE but leaves the connection queued (see
    /// `Conformance.outOfDescriptorsNeitherSpinsNorStopsServing`).
    @Test(arguments: [1, 2])
    func outOfDescriptorsNeitherSpinsNorStopsServing(loops: Int) throws {
        try Conformance.outOfDescriptorsNeitherSpinsNorStopsServing(ServerSpec("echo-libev", ["--loops", "\(loops)"]))
    }
}
