// swift-tools-version:6.0
import PackageDescription

// Layout, one job per module:
//   CAssayABI        the stable plugin C ABI (include/assay/) as a Swift module
//   AssayPluginHost  finding, dlopen-ing, checking, hot-reloading plugins
//   AssayCore        jobs, budgets, scheduling, manifests, results
//   AssayStrategies  search strategies (single, best-of-n, ...) over AssayCore
//   AssayDBus        a small libdbus-1 binding: connection, event loop, messages
//   AssayWire        Assay's types on D-Bus (job options and their wire types)
//   AssayService     the io.assay.Assay1 D-Bus surface over the core
//   AssayClient      a typed client of io.assay.Assay1 (assayctl, assay-bench and the tests)
//   assayd / assayctl / assay-bench   the daemon, the CLI, the benchmark tool
let package = Package(
    name: "Assay",
    products: [
        .executable(name: "assayd", targets: ["assayd"]),
        .executable(name: "assayctl", targets: ["assayctl"]),
        .executable(name: "assay-bench", targets: ["assay-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(name: "CAssayABI", path: "Sources/CAssayABI"),
        .systemLibrary(name: "CDBus", path: "Sources/CDBus", pkgConfig: "dbus-1",
                       providers: [.apt(["libdbus-1-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .target(name: "AssayPluginHost", dependencies: [
            "CAssayABI", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "AssayCore", dependencies: [
            "AssayPluginHost", "CPNG", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "AssayStrategies", dependencies: ["AssayCore"]),
        .target(name: "AssayDBus", dependencies: ["CDBus"]),
        .target(name: "AssayWire", dependencies: ["AssayCore", "AssayDBus"]),
        .target(name: "AssayClient", dependencies: ["AssayDBus"]),
        .target(name: "AssayService", dependencies: [
            "AssayCore", "AssayStrategies", "AssayDBus", "AssayWire",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "assayd", dependencies: [
            "AssayService", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "assayctl", dependencies: [
            "AssayDBus", "AssayClient", "AssayCore", "AssayWire", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "assay-bench", dependencies: [
            "AssayDBus", "AssayClient", "AssayCore", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "AssayTests", dependencies: [
            "AssayDBus", "AssayClient", "AssayCore", "AssayPluginHost", "AssayStrategies", "AssayWire", "assayd", "assayctl",
            "assay-bench",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
