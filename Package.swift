// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "echo-lab",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "echo-threads", targets: ["echo-threads"]),
        .executable(name: "echo-libev", targets: ["echo-libev"]),
        .executable(name: "echo-tasks", targets: ["echo-tasks"]),
        .executable(name: "echo-uring", targets: ["echo-uring"]),
        .executable(name: "loadgen", targets: ["loadgen"]),
        .executable(name: "handoff", targets: ["handoff"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // libev's API is mostly function-like macros; this C target wraps them so Swift can call them.
        .target(
            name: "CLibev",
            linkerSettings: [.linkedLibrary("ev")]  // Debian's libev-dev ships no .pc file
        ),
        // liburing's API is static inline functions over C11 atomics, and macros; this C target gives
        // Swift a small plain API over it. Linked statically: liburing-dev ships liburing.a.
        .target(
            name: "CLibURing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // The netpoller: epoll loops that are Swift task executors (Go's runtime/netpoll, for tasks);
        // also the package's one epoll binding.
        .target(name: "NetPoller"),
        // The kernel's taskstats netlink interface (linux-libc-dev's headers): a foreign server's
        // context switches summed over its threads in one request.
        .systemLibrary(name: "CTaskstats"),
        .target(
            name: "EchoProtocol",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // A foreign server read from outside (/proc, taskstats): loadgen and the tests, not the servers.
        .target(name: "ForeignProcess", dependencies: ["EchoProtocol", "CTaskstats"]),
        .executableTarget(
            name: "echo-threads",
            dependencies: ["EchoProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "echo-libev",
            dependencies: [
                "EchoProtocol", "CLibev", "NetPoller", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "echo-tasks",
            dependencies: [
                "EchoProtocol", "NetPoller",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "echo-uring",
            dependencies: [
                "EchoProtocol", "CLibURing", "NetPoller", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "loadgen",
            dependencies: [
                "EchoProtocol", "ForeignProcess", "NetPoller",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "loadgen"
        ),
        .executableTarget(
            name: "handoff",
            dependencies: ["EchoProtocol", "NetPoller", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Deliberately broken echo servers: they prove each conformance check can fail.
        .executableTarget(
            name: "broken-echo",
            dependencies: ["EchoProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tests/BrokenEcho"
        ),
        // Runs a program under a seccomp filter that refuses io_uring_setup: the refusal test's kernel.
        .executableTarget(name: "refuse-io-uring", path: "Tests/RefuseIOURing"),
        .testTarget(name: "EchoProtocolTests", dependencies: ["EchoProtocol", "ForeignProcess"]),
        .testTarget(name: "LoadgenTests", dependencies: ["loadgen", "EchoProtocol", "ForeignProcess", "NetPoller"]),
        .testTarget(name: "HandoffTests", dependencies: ["handoff"]),
        .testTarget(name: "NetPollerTests", dependencies: ["NetPoller"]),
        .testTarget(
            name: "ConformanceTests",
            dependencies: [
                "EchoProtocol", "ForeignProcess", "echo-threads", "echo-libev", "echo-tasks", "echo-uring", "broken-echo",
                "refuse-io-uring",
            ]
        ),
    ]
)
