// swift-tools-version: 6.1
// A peer benchmark: swift-durus against GRDB.swift (SQLite), the same workload
// as `durus-bench objects`. Its own package, so that the library's
// Package.swift and CI never pull GRDB:
//
//   swift run -c release --package-path Benchmarks/Peers durus-peers [--objects N] [--rounds N]
import PackageDescription

let package = Package(
    name: "durus-peers",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-durus", path: "../.."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .executableTarget(
            name: "durus-peers",
            dependencies: [
                .product(name: "Durus", package: "swift-durus"),
                .product(name: "DurusBerkeleyDB", package: "swift-durus"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
