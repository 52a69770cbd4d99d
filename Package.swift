// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "vers-swarm",
    platforms: [.macOS("13.0")],
    products: [
        .executable(name: "vers-swarm", targets: ["vers-swarm"]),
        .executable(name: "vers-swarm-init", targets: ["vers-swarm-init"]),
        .executable(name: "vers-swarm-bench", targets: ["vers-swarm-bench"]),
        .library(name: "VersSwarm", targets: ["VersSwarm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CLibSSH2",
            pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"])]
        ),
        .target(
            name: "VersSwarm",
            dependencies: [
                "CCurl",
                "CLibSSH2",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "vers-swarm",
            dependencies: [
                "VersSwarm",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "vers-swarm-init"),
        .executableTarget(
            name: "vers-swarm-bench",
            dependencies: [
                "VersSwarm",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "VersSwarmTests",
            dependencies: ["VersSwarm"]
        ),
    ]
)
