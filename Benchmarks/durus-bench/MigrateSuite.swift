import Durus
import DurusBerkeleyDB
import Foundation

/// `migrate`: what `durus migrate FILE DST` does (a ``FileScan`` of a SHELF-1
/// file into `BerkeleyDBStorage.migrate`), on files Python Durus 4.3 made of
/// N/10 and N small objects. Each migration runs in a child process
/// (`durus-bench migrate-child`), so its peak memory is the kernel's figure
/// for that process alone: the VmHWM of /proc/self/status, which it reports
/// at its end (not `ru_maxrss`, which after `posix_spawn` counts the parent's
/// peak too). Python Durus opening the same file is measured the same way.
func runMigrateSuite(_ arguments: [String]) throws {
    let objects = max(1_000, option("--objects", in: arguments, default: 1_000_000))
    let python = optionString("--python", in: arguments) ?? ProcessInfo.processInfo.environment["DURUS_PYTHON"]
        ?? defaultPython()
    let sizes = [objects / 10, objects]
    print("migrate suite: SHELF-1 files of \(sizes.map(countLabel).joined(separator: " and ")) objects made by Python Durus 4.3")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB; \(Date()); python: \(python)")

    let scratch = scratchDirectory("migrate")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

    var runs: [Int: MigrationRun] = [:]
    for size in sizes {
        let label = countLabel(size)
        let file = scratch + "/\(label).durus", store = scratch + "/\(label)-store"
        let made = try runPython(python, script: pythonScript("make_shelf.py"), ["make", file, "\(size)"])
        print(String(format: "%@: Python made %.0f MB in %.0f s (pack %.0f s)", label, (made["bytes"] ?? 0) / 1e6,
                     made["seconds"] ?? 0, made["pack_seconds"] ?? 0))

        let child = try measureChild(me, ["migrate-child", file, store])
        let migrated = try JSONDecoder().decode(ChildResult.self, from: child.output)
        var pythonOpen = (seconds: Double.infinity, peak: 0)
        for _ in 0 ..< 3 {
            let run = try measureChild(python, [pythonScript("make_shelf.py"), "open", file])
            let opened = try JSONDecoder().decode(PythonOpen.self, from: run.output)
            pythonOpen = (min(pythonOpen.seconds, opened.open_seconds), max(pythonOpen.peak, opened.peak_bytes))
        }
        var openTimes: [Double] = []
        for _ in 0 ..< 5 {
            let start = ContinuousClock.now
            try BerkeleyDBStorage(path: store).close()
            openTimes.append((ContinuousClock.now - start).seconds)
        }
        let run = MigrationRun(fileBytes: Double(made["bytes"] ?? 0), child: migrated, peakBytes: migrated.peakBytes,
                               pythonOpenSeconds: pythonOpen.seconds, pythonPeakBytes: pythonOpen.peak,
                               firstOpenSeconds: openTimes[0], bestOpenSeconds: openTimes.min()!)
        runs[size] = run
        print(String(format: "%@: %d records copied, %d objects kept, %.0f MB stored; copy %.1f s, mark %.1f s, count %.1f s, "
                + "close %.1f s; %.1f s in all, %.1f s wall for the child; peak %.0f MB; first open %.1f ms",
                label, migrated.records, migrated.objects, Double(migrated.bytes) / 1e6, migrated.copySeconds,
                migrated.markSeconds, migrated.countSeconds, migrated.closeSeconds, migrated.seconds, child.seconds,
                Double(migrated.peakBytes) / 1e6, run.firstOpenSeconds * 1e3))
        try? FileManager.default.removeItem(atPath: file)
        try? FileManager.default.removeItem(atPath: store)
    }

    let (small, large) = (runs[sizes[0]]!, runs[sizes[1]]!)
    let (smallLabel, largeLabel) = (countLabel(sizes[0]), countLabel(sizes[1]))
    let goalRate = 100_000.0, goalOpenMilliseconds = 50.0
    var rows: [Comparison] = []
    for (label, run) in [(largeLabel, large), (smallLabel, small)] {
        rows.append(Comparison(name: "migrate-objects-per-second-\(label)-vs-goal-100k", unit: "objects/s",
                               ours: run.objectsPerSecond, theirs: goalRate))
    }
    rows.append(Comparison(name: "migrate-mb-per-second-\(largeLabel)-vs-\(smallLabel)", unit: "MB/s",
                           ours: large.megabytesPerSecond, theirs: small.megabytesPerSecond))
    rows.append(Comparison(name: "peak-memory-\(largeLabel)-vs-\(smallLabel)", unit: "MB",
                           ours: Double(large.peakBytes) / 1e6, theirs: Double(small.peakBytes) / 1e6))
    rows.append(Comparison(name: "peak-memory-migrate-vs-python-open-\(largeLabel)", unit: "MB",
                           ours: Double(large.peakBytes) / 1e6, theirs: Double(large.pythonPeakBytes) / 1e6))
    rows.append(Comparison(name: "open-time-bdb-vs-python", unit: "ms",
                           ours: large.bestOpenSeconds * 1e3, theirs: large.pythonOpenSeconds * 1e3))
    rows.append(Comparison(name: "open-time-bdb-\(largeLabel)-vs-goal-50ms", unit: "ms",
                           ours: large.bestOpenSeconds * 1e3, theirs: goalOpenMilliseconds))
    rows.append(Comparison(name: "open-time-bdb-\(largeLabel)-vs-\(smallLabel)", unit: "ms",
                           ours: large.bestOpenSeconds * 1e3, theirs: small.bestOpenSeconds * 1e3))

    print("")
    print("objects/s: objects kept ÷ the child's time from opening the file to closing the store (copy, mark, count);")
    print("  MB/s: the Durus file's size ÷ that time. Peak memory: the child's VmHWM, the Python open's likewise")
    print("  (an interpreter that imported Durus and opened the file read-only: FileStorage(path, readonly=True)).")
    print("open time: BerkeleyDBStorage(path:) then close(), best of 5 after the migration; Python's, best of 3.")
    print("note: memory and time rows are ours ÷ theirs, so below 1 means less memory or a faster open.")
    print("goals: migrate-objects-per-second-*-vs-goal-100k ≥ 1; peak-memory-\(largeLabel)-vs-\(smallLabel) ≤ 1.2; "
        + "open-time-bdb-\(largeLabel)-vs-goal-50ms < 1")
    report("migrate: a Durus 4.3 SHELF-1 file into a new BerkeleyDBStorage, as `durus migrate` does",
           theirs: "theirs", rows)
}

/// `migrate-child SRC DST`: migrates as `durus migrate` does and prints a
/// ``ChildResult`` as JSON.
func runMigrateChild(_ arguments: [String]) throws {
    guard arguments.count == 2 else { throw BenchError(description: "usage: durus-bench migrate-child SRC DST") }
    let clock = ContinuousClock()
    let start = clock.now
    var result = ChildResult()
    var phaseStart = start
    var phase = BerkeleyDBStorage.MigrationProgress.Phase.copying
    let scan = try FileScan(path: arguments[0])
    let store = try BerkeleyDBStorage(path: arguments[1], configuration: .migration)
    try store.migrate(from: scan) { progress in
        if progress.phase == .copying { result.records = progress.records }
        guard progress.phase != phase else { return }
        let seconds = (clock.now - phaseStart).seconds
        switch phase {
        case .copying: result.copySeconds = seconds
        case .marking: result.markSeconds = seconds
        case .counting: result.countSeconds = seconds
        case .done: break
        }
        phase = progress.phase
        phaseStart = clock.now
    }
    result.objects = store.objectCount
    result.bytes = store.byteCount
    let closing = clock.now
    try store.close()
    try scan.close()
    result.closeSeconds = (clock.now - closing).seconds
    result.seconds = (clock.now - start).seconds
    result.peakBytes = try peakResidentBytes()
    print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
}

/// What a `migrate-child` reports.
private struct ChildResult: Codable {
    var records = 0
    var objects = 0
    var bytes = 0
    var copySeconds = 0.0
    var markSeconds = 0.0
    var countSeconds = 0.0
    var closeSeconds = 0.0
    var seconds = 0.0
    var peakBytes = 0
}

/// This process's peak resident memory: VmHWM in /proc/self/status.
private func peakResidentBytes() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kilobytes = Int(line.split(separator: " ")[1]) else {
        throw BenchError(description: "no VmHWM in /proc/self/status")
    }
    return kilobytes * 1024
}

/// What `make_shelf.py open` reports.
private struct PythonOpen: Decodable {
    var open_seconds: Double
    var peak_bytes: Int
}

private struct MigrationRun {
    var fileBytes: Double
    var child: ChildResult
    var peakBytes: Int
    var pythonOpenSeconds: Double
    var pythonPeakBytes: Int
    var firstOpenSeconds: Double
    var bestOpenSeconds: Double

    var objectsPerSecond: Double { Double(child.objects) / child.seconds }
    var megabytesPerSecond: Double { fileBytes / 1e6 / child.seconds }
}

/// 100000 → "100k", 1000000 → "1M".
private func countLabel(_ count: Int) -> String {
    count % 1_000_000 == 0 ? "\(count / 1_000_000)M" : count % 1_000 == 0 ? "\(count / 1_000)k" : "\(count)"
}

/// Runs `executable`; returns what it printed and its wall time.
private func measureChild(_ executable: String, _ arguments: [String]) throws -> (output: Data, seconds: Double) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    let start = ContinuousClock.now
    try process.run()
    let printed = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError(description: "\(executable) \(arguments) failed: \(String(decoding: printed, as: UTF8.self))")
    }
    return (printed, (ContinuousClock.now - start).seconds)
}
