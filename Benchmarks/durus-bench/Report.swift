import Foundation

/// One measured operation, ours and theirs.
struct Comparison {
    var name: String
    var unit: String
    var ours: Double
    var theirs: Double
    var ratio: Double { ours / theirs }
}

/// Prints the table, then the `ratio` lines the brief asks every suite to end with.
func report(_ title: String, theirs: String, _ rows: [Comparison]) {
    func fmt(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value)
    }
    let nameWidth = max(28, rows.map(\.name.count).max() ?? 0)
    print("")
    print(title)
    print("name".padding(toLength: nameWidth, withPad: " ", startingAt: 0)
        + "  " + "swift-durus".leftPad(14) + "  " + theirs.leftPad(14) + "  " + "unit".leftPad(10) + "  " + "ratio".leftPad(7))
    for row in rows {
        print(row.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
            + "  " + fmt(row.ours).leftPad(14) + "  " + fmt(row.theirs).leftPad(14) + "  " + row.unit.leftPad(10)
            + "  " + String(format: "%.2f", row.ratio).leftPad(7))
    }
    print("")
    for row in rows { print("ratio \(row.name) \(String(format: "%.3f", row.ratio))") }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// Operations per second of `count` runs of `body`.
func rate(_ count: Int, _ body: (Int) throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    for i in 0 ..< count { try body(i) }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(count) / seconds
}

/// Measures ours and theirs in alternating rounds and keeps each side's best
/// rate, so neither gains from running second (warm files, settled caches).
func compare(rounds: Int = 3, _ count: Int, ours: (Int) throws -> Void, theirs: (Int) throws -> Void) rethrows
    -> (ours: Double, theirs: Double) {
    var best = (ours: 0.0, theirs: 0.0)
    for round in 0 ..< rounds {
        let offset = round * count
        best.ours = max(best.ours, try rate(count) { try ours(offset + $0) })
        best.theirs = max(best.theirs, try rate(count) { try theirs(offset + $0) })
    }
    return best
}

/// A fast deterministic generator for benchmark data (SplitMix64).
struct BenchRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func option(_ name: String, in arguments: [String], default value: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let n = Int(arguments[index + 1]) else {
        return value
    }
    return n
}

func scratchDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "durus-bench-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

func optionString(_ name: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

/// The package's root folder (this file is Benchmarks/durus-bench/Report.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

func pythonScript(_ name: String) -> String { packageRoot + "/Benchmarks/python/" + name }

/// The venv `scripts/test` makes, with Durus 4.3 in it.
func defaultPython() -> String { packageRoot + "/.build/durus-venv/bin/python" }

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

/// Runs a Python benchmark script and parses the one JSON line it prints.
func runPython(_ python: String, script: String, _ arguments: [String]) throws -> [String: Double] {
    guard FileManager.default.isExecutableFile(atPath: python) else {
        throw BenchError(description: "no Python at \(python): run scripts/test once, or pass --python")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [script] + arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError(description: "\(script) exited with status \(process.terminationStatus)")
    }
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw BenchError(description: "\(script) printed no JSON object")
    }
    return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
}
