import Foundation

// The helpers durus-bench uses (Benchmarks/durus-bench/Report.swift), copied:
// an executable target's code cannot be imported from another package.

/// Operations per second of `count` runs of `body`.
func rate(_ count: Int, _ body: (Int) throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    for i in 0 ..< count { try body(i) }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(count) / seconds
}

/// A fast deterministic generator for benchmark data (SplitMix64). Both sides
/// start from the same seed, so they pick the same items in the same order.
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

struct PeersError: Error, CustomStringConvertible {
    var description: String
}

/// The workload's sizes, the same defaults as `durus-bench objects`.
struct Workload {
    var objects: Int
    var batch: Int
    var rmw: Int
    var cold: Int
    var warm: Int

    /// The sum of all values once the rmw phase has added 1 `rmw` times.
    var expectedTotal: Int { objects * (objects - 1) / 2 + rmw }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
