#if canImport(Glibc)
import Glibc
#endif
import CTaskstats

/// A foreign process's context switches, summed by the kernel over its whole thread group, from the
/// taskstats interface (one generic-netlink request, answered from the thread list under one lock).
///
/// Why not /proc: /proc/PID/status counts the main thread only, and summing /proc/PID/task/*/status
/// means opening and formatting one file per thread: about 0.4 s for a 5,000-thread server, time the
/// reader takes from the CPUs it shares with the load and the server, inside the measured window.
/// Taskstats answers the same question in about a millisecond. On the kernels seen here (6.18) its
/// thread-group figure also keeps the switches of threads that have exited, which the /proc sum loses;
/// older kernels (their `fill_tgid_exit` adds only delay accounting) drop them, which shows as a count
/// that falls, flagged by the readers.
///
/// Needs CAP_NET_ADMIN in the initial user namespace and a kernel built with CONFIG_TASKSTATS; where
/// either is missing `contextSwitches(ofThreadGroup:)` returns nil and callers fall back to the
/// per-thread /proc sum.
public enum ThreadGroupStats {
    public struct ContextSwitches: Sendable, Equatable {
        public var voluntary: Int
        public var involuntary: Int
    }

    /// The thread group's context switches now, or nil if taskstats cannot answer (not permitted,
    /// not built in, no such process).
    public static func contextSwitches(ofThreadGroup tgid: Int32) -> ContextSwitches? {
        guard let family = familyID, let socket = GenericNetlinkSocket() else { return nil }
        defer { socket.close() }
        var request = GenericNetlinkMessage(family: family, command: UInt8(TASKSTATS_CMD_GET),
                                            version: UInt8(TASKSTATS_GENL_VERSION))
        request.append(attribute: UInt16(TASKSTATS_CMD_ATTR_TGID), value: UInt32(bitPattern: tgid))
        guard let reply = socket.exchange(request),
            let aggregate = reply.attribute(UInt16(TASKSTATS_TYPE_AGGR_TGID)),
            let statsBytes = GenericNetlinkMessage.attribute(UInt16(TASKSTATS_TYPE_STATS), in: aggregate)
        else { return nil }
        // Older kernels send a shorter struct (an older TASKSTATS_VERSION); the switch counts are
        // in every version since 2, and the rest of a short copy stays zero.
        var stats = taskstats()
        withUnsafeMutableBytes(of: &stats) { destination in
            statsBytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source.prefix(destination.count)))
            }
        }
        guard stats.version >= 2 else { return nil }
        return ContextSwitches(voluntary: Int(stats.nvcsw), involuntary: Int(stats.nivcsw))
    }

    /// The id the kernel gave the TASKSTATS family at boot, asked once per process; nil where the
    /// kernel has no taskstats.
    private static let familyID: UInt16? = {
        guard let socket = GenericNetlinkSocket() else { return nil }
        defer { socket.close() }
        return socket.familyID(named: TASKSTATS_GENL_NAME)
    }()
}

/// One generic-netlink request or reply: netlink header, generic header, then attributes, each
/// padded to 4 bytes (NLA_ALIGN).
struct GenericNetlinkMessage {
    private(set) var bytes: [UInt8]

    init(family: UInt16, command: UInt8, version: UInt8) {
        bytes = []
        var header = nlmsghdr()
        header.nlmsg_type = family
        header.nlmsg_flags = UInt16(NLM_F_REQUEST)
        header.nlmsg_seq = 1
        Swift.withUnsafeBytes(of: &header) { bytes += $0 }
        var generic = genlmsghdr()
        generic.cmd = command
        generic.version = version
        Swift.withUnsafeBytes(of: &generic) { bytes += $0 }
        setLength()
    }

    init(received: [UInt8]) { bytes = received }

    mutating func append(attribute type: UInt16, payload: [UInt8]) {
        var header = nlattr()
        header.nla_len = UInt16(MemoryLayout<nlattr>.size + payload.count)
        header.nla_type = type
        Swift.withUnsafeBytes(of: &header) { bytes += $0 }
        bytes += payload
        bytes += [UInt8](repeating: 0, count: Self.padding(payload.count))
        setLength()
    }

    mutating func append(attribute type: UInt16, value: UInt32) {
        append(attribute: type, payload: Swift.withUnsafeBytes(of: value) { Array($0) })
    }

    mutating func append(attribute type: UInt16, string: String) {
        append(attribute: type, payload: Array(string.utf8) + [0])
    }

    /// The netlink message type of a reply: NLMSG_ERROR, or the family's id.
    var type: UInt16 {
        guard bytes.count >= MemoryLayout<nlmsghdr>.size else { return UInt16(NLMSG_ERROR) }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt16.self) }
    }

    /// The payload of the first top-level attribute of this type.
    func attribute(_ type: UInt16) -> ArraySlice<UInt8>? {
        let start = MemoryLayout<nlmsghdr>.size + MemoryLayout<genlmsghdr>.size
        guard bytes.count >= start else { return nil }
        let declared = bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) }
        return Self.attribute(type, in: bytes[start..<min(bytes.count, declared)])
    }

    /// The payload of the first attribute of this type in a run of attributes (such as a nested one).
    static func attribute(_ type: UInt16, in attributes: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        var offset = attributes.startIndex
        let headerSize = MemoryLayout<nlattr>.size
        while offset + headerSize <= attributes.endIndex {
            let (length, kind) = attributes.withUnsafeBytes { raw in
                (Int(raw.loadUnaligned(fromByteOffset: offset - attributes.startIndex, as: UInt16.self)),
                 raw.loadUnaligned(fromByteOffset: offset - attributes.startIndex + 2, as: UInt16.self))
            }
            guard length >= headerSize, offset + length <= attributes.endIndex else { return nil }
            // The top bits of the type mark nested / byte-order attributes (NLA_F_NESTED, ...).
            if kind & ~UInt16(NLA_F_NESTED | NLA_F_NET_BYTEORDER) == type { return attributes[(offset + headerSize)..<(offset + length)] }
            offset += length + padding(length)
        }
        return nil
    }

    private mutating func setLength() {
        let length = UInt32(bytes.count)
        Swift.withUnsafeBytes(of: length) { bytes.replaceSubrange(0..<4, with: $0) }
    }

    private static func padding(_ count: Int) -> Int { (4 - count % 4) % 4 }
}

/// A NETLINK_GENERIC socket: one request, one reply, with a receive timeout so a kernel that never
/// answers cannot hang the caller.
struct GenericNetlinkSocket {
    private let fd: Int32

    init?() {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_GENERIC)
        guard fd >= 0 else { return nil }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard bound == 0,
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
        else {
            Glibc.close(fd)
            return nil
        }
    }

    func close() { Glibc.close(fd) }

    /// The id the kernel gave a generic-netlink family (such as "TASKSTATS") at boot.
    func familyID(named name: String) -> UInt16? {
        var request = GenericNetlinkMessage(family: UInt16(GENL_ID_CTRL), command: UInt8(CTRL_CMD_GETFAMILY), version: 1)
        request.append(attribute: UInt16(CTRL_ATTR_FAMILY_NAME), string: name)
        guard let reply = exchange(request), let id = reply.attribute(UInt16(CTRL_ATTR_FAMILY_ID)), id.count >= 2
        else { return nil }
        return id.withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
    }

    /// Sends a request and returns its reply; nil on an error reply (such as EPERM) or no reply.
    func exchange(_ request: GenericNetlinkMessage) -> GenericNetlinkMessage? {
        let sent = request.bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == request.bytes.count else { return nil }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var received = -1
        repeat {
            received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        } while received < 0 && errno == EINTR
        guard received > 0 else { return nil }
        let reply = GenericNetlinkMessage(received: Array(buffer[0..<received]))
        return reply.type == UInt16(NLMSG_ERROR) ? nil : reply
    }
}
