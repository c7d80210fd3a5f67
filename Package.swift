// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SnapFS",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "snapfs", targets: ["snapfs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
    ],
    targets: [
        // The store and its rules: catalog, references, checked delete and move, recovery. No FUSE, no Flink.
        .target(name: "SnapStore", dependencies: [
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The embedded engine: snapshots of a live state directory on this machine.
        .target(name: "LocalEngine", dependencies: ["SnapStore", .product(name: "Logging", package: "swift-log")]),
        // Flink's `_metadata` format, decoded. Pure Swift, no dependencies.
        .target(name: "FlinkMetadata"),
        // Writes `_metadata` back, in the version it was read; only through the reader's public model.
        .target(name: "FlinkMetadataWriter", dependencies: ["FlinkMetadata"]),
        // Copies one snapshot directory into a self-contained one (a developer tool for real-Flink checks).
        .executableTarget(name: "flink-metadata-rewrite", dependencies: ["FlinkMetadata", "FlinkMetadataWriter"]),
        // Mutations of real `_metadata` files, shared by the fuzz test and the long-running fuzz tool.
        .target(name: "FlinkMetadataFuzzing", dependencies: ["FlinkMetadata"]),
        // Feeds hundreds of thousands of mutated `_metadata` files to the reader (Scripts/fuzz-metadata).
        .executableTarget(name: "flink-metadata-fuzz", dependencies: ["FlinkMetadata", "FlinkMetadataFuzzing", "FlinkMetadataWriter"]),
        // An S3 client of its own (SigV4, ListObjectsV2, GET, HEAD, PUT, DeleteObjects, CopyObject) over async-http-client.
        .target(name: "S3Client", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // A store's files on S3 (`StoreFiles` over S3Client): listing, HEAD, checked DeleteObjects, the owner lock object.
        .target(name: "S3Store", dependencies: ["SnapStore", "S3Client", .product(name: "Logging", package: "swift-log")]),
        // The Flink engine: imports a Flink store into the catalog, triggers through REST.
        .target(name: "FlinkEngine", dependencies: ["SnapStore", "FlinkMetadata", "FlinkMetadataWriter", .product(name: "Logging", package: "swift-log"),
                                                   .product(name: "CoreMetrics", package: "swift-metrics")]),
        // What every file operation means, in pure Swift: tests drive it without a kernel.
        .target(name: "SnapFileOps", dependencies: ["SnapStore", .product(name: "Logging", package: "swift-log")]),
        // Stored objects read from S3 for the mount: an on-disk cache of immutable objects, filled by ranged GETs.
        .target(name: "S3Mount", dependencies: ["SnapFileOps", "S3Client", .product(name: "Crypto", package: "swift-crypto"),
                                                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio")]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        // The kernel-facing adapter: libfuse3's low-level API over SnapFileOps.
        .target(name: "SnapFUSE", dependencies: ["CFuse3", "SnapFileOps", "SnapStore", .product(name: "Logging", package: "swift-log")]),
        // The REST API: server code generated from openapi.yaml, served with Hummingbird, thin over the store.
        .target(name: "SnapAPI", dependencies: [
            "SnapStore",
            .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], resources: [.copy("openapi.yaml")], plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]),
        .executableTarget(name: "snapfs", dependencies: [
            "SnapStore", "LocalEngine", "FlinkEngine", "FlinkMetadata", "FlinkMetadataWriter", "SnapFileOps", "SnapFUSE", "SnapAPI",
            "S3Store", "S3Client", "S3Mount",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Starts real S3 servers (Ceph RGW, SeaweedFS) for the tests that need one.
        .target(name: "S3TestSupport", dependencies: ["S3Client"], path: "Tests/S3TestSupport"),
        .testTarget(name: "S3ClientTests", dependencies: ["S3Client", "S3TestSupport", "FlinkFixtures", "FlinkMetadata", .product(name: "NIOCore", package: "swift-nio")]),
        // Flink stores on real S3 servers, driven through the built `snapfs` (init, list, verify, delete, gc, refresh, kill -9).
        .testTarget(name: "S3StoreTests", dependencies: ["S3Client", "S3Store", "SnapStore", "S3TestSupport", "FlinkFixtures", "BuiltTools", "snapfs"]),
        .testTarget(name: "SnapStoreTests", dependencies: ["SnapStore", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "LocalEngineTests", dependencies: ["LocalEngine", "SnapStore"]),
        // The real Flink stores and the truth Flink's own deserializer printed for them, for both test targets.
        .target(name: "FlinkFixtures", path: "Tests/FlinkFixtures"),
        .testTarget(name: "FlinkMetadataTests", dependencies: ["FlinkMetadata", "FlinkMetadataWriter", "FlinkMetadataFuzzing", "FlinkFixtures"]),
        .testTarget(name: "FlinkEngineTests", dependencies: ["FlinkEngine", "FlinkMetadata", "SnapStore", "FlinkFixtures"]),
        .testTarget(name: "SnapFileOpsTests", dependencies: ["SnapFileOps", "SnapStore", "LocalEngine", "FlinkEngine", "FlinkMetadata", "FlinkFixtures"]),
        // Finds the built `snapfs` for the two targets below that run it.
        .target(name: "BuiltTools", path: "Tests/BuiltTools"),
        // Mounts for real with the built `snapfs` binary; depends on `snapfs` so it is built.
        .testTarget(name: "MountTests", dependencies: ["SnapStore", "FlinkEngine", "FlinkMetadata", "snapfs", "BuiltTools", "FlinkFixtures",
                                                      "S3Client", "S3TestSupport"]),
        // The S3 read cache without a kernel: its range bookkeeping and LRU, and fetches from real S3 servers.
        .testTarget(name: "S3MountTests", dependencies: ["S3Mount", "S3Client", "S3TestSupport", "SnapFileOps"]),
        // The command line driven as a user would, including SIGKILL crash tests; depends on `snapfs` so it is built.
        .testTarget(name: "CLITests", dependencies: ["SnapStore", "snapfs", "BuiltTools", "FlinkFixtures"]),
        // The REST API served for real by the built `snapfs` on a loopback port, driven with curl.
        .testTarget(name: "APITests", dependencies: ["SnapStore", "snapfs", "BuiltTools", "FlinkFixtures"]),
        // Power cuts (LazyFS) under a store while the built `snapfs` works on it: what returned success survives.
        .testTarget(name: "PowerLossTests", dependencies: ["SnapStore", "snapfs", "BuiltTools"]),
    ],
    swiftLanguageModes: [.v6]
)
