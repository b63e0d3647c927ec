// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-durus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Durus", targets: ["Durus"]),
        .library(name: "DurusBerkeleyDB", targets: ["DurusBerkeleyDB"]),
    ],
    targets: [
        .systemLibrary(
            name: "CBerkeleyDB",
            providers: [.apt(["libdb-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "Durus",
            dependencies: ["CZlib"]
        ),
        .target(
            name: "DurusBerkeleyDB",
            dependencies: ["Durus", "CBerkeleyDB"]
        ),
        .executableTarget(
            name: "durus-bench",
            dependencies: ["Durus", "DurusBerkeleyDB", "CBerkeleyDB"],
            path: "Benchmarks/durus-bench"
        ),
        .executableTarget(
            name: "durus-crash-child",
            dependencies: ["Durus", "DurusBerkeleyDB"],
            path: "Tests/CrashChild"
        ),
        .testTarget(
            name: "DurusTests",
            dependencies: ["Durus"],
            resources: [.copy("Vectors")]
        ),
        .testTarget(
            name: "DurusBerkeleyDBTests",
            dependencies: ["Durus", "DurusBerkeleyDB", "CBerkeleyDB"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
