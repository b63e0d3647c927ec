// swift-tools-version: 6.1
import CompilerPluginSupport
import PackageDescription

let package = Package(
    name: "swift-durus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Durus", targets: ["Durus"]),
        .library(name: "DurusBerkeleyDB", targets: ["DurusBerkeleyDB"]),
        .library(name: "DurusClient", targets: ["DurusClient"]),
        .library(name: "DurusMacros", targets: ["DurusMacros"]),
        .library(name: "DurusServer", targets: ["DurusServer"]),
        .executable(name: "durus", targets: ["durus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swiftlang/swift-syntax", from: "603.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
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
            name: "CDurusReplication",
            linkerSettings: [.linkedLibrary("db")]
        ),
        .target(
            name: "DurusBerkeleyDB",
            dependencies: ["Durus", "DurusClient", "CBerkeleyDB", "CDurusReplication"]
        ),
        .target(
            name: "DurusClient",
            dependencies: ["Durus"]
        ),
        .target(
            name: "DurusServer",
            dependencies: [
                "Durus",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "durus",
            dependencies: [
                "Durus",
                "DurusBerkeleyDB",
                "DurusClient",
                "DurusServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "durus-bench",
            dependencies: [
                "Durus", "DurusBerkeleyDB", "DurusClient", "DurusServer", "DurusMacros", "CBerkeleyDB",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/durus-bench"
        ),
        .executableTarget(
            name: "durus-replication-child",
            dependencies: ["Durus", "DurusBerkeleyDB"],
            path: "Tests/ReplicationChild"
        ),
        .executableTarget(
            name: "durus-crash-child",
            dependencies: ["Durus", "DurusBerkeleyDB"],
            path: "Tests/CrashChild"
        ),
        .target(
            name: "DurusTestSupport",
            dependencies: ["Durus", "DurusBerkeleyDB"],
            path: "Tests/DurusTestSupport"
        ),
        .testTarget(
            name: "DurusTests",
            dependencies: ["Durus", "DurusTestSupport"],
            exclude: ["Python"],
            resources: [.copy("Vectors")]
        ),
        .testTarget(
            name: "DurusIntegrationTests",
            dependencies: ["Durus", "DurusBerkeleyDB", "DurusTestSupport", "DurusMacros"]
        ),
        .testTarget(
            name: "DurusBerkeleyDBTests",
            dependencies: ["Durus", "DurusBerkeleyDB", "CBerkeleyDB", "DurusTestSupport", "DurusMacros"]
        ),
        .testTarget(
            name: "DurusServerTests",
            dependencies: [
                "Durus",
                "DurusBerkeleyDB",
                "DurusClient",
                "DurusMacros",
                "DurusServer",
                "DurusTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            exclude: ["Python"]
        ),
        .macro(
            name: "DurusMacrosPlugin",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxBuilder", package: "swift-syntax"),
                .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            ]
        ),
        .target(
            name: "DurusMacros",
            dependencies: ["Durus", "DurusMacrosPlugin"]
        ),
        .testTarget(
            name: "DurusMacrosTests",
            dependencies: [
                "DurusMacros",
                "Durus",
                "DurusTestSupport",
                "DurusMacrosPlugin",
                .product(name: "SwiftSyntaxMacrosTestSupport", package: "swift-syntax"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
