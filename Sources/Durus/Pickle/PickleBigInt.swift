extension PickleValue {
    /// An integer of any size, as pickle's `LONG1` and `LONG4` carry it:
    /// little-endian two's complement.
    ///
    /// The bytes are always minimal (no redundant sign byte; zero has none),
    /// so equal integers have equal bytes.
    public struct BigInt: Hashable, Sendable {
        /// Little-endian two's-complement bytes, minimal.
        public let littleEndianBytes: [UInt8]

        /// The integer `bytes` hold as little-endian two's complement, of any length.
        public init(littleEndian bytes: some Collection<UInt8>) {
            var bytes = Array(bytes)
            while let last = bytes.last {
                let belowIsNegative = bytes.count >= 2 && bytes[bytes.count - 2] & 0x80 != 0
                guard (last == 0 && !belowIsNegative) || (last == 0xFF && belowIsNegative) else { break }
                bytes.removeLast()
            }
            littleEndianBytes = bytes
        }

        public init(_ value: Int64) {
            self.init(littleEndian: withUnsafeBytes(of: value.littleEndian) { Array($0) })
        }

        /// The integer as an `Int64`; `nil` when it needs more than 64 bits.
        public var int64: Int64? {
            guard littleEndianBytes.count <= 8 else { return nil }
            var bits: UInt64 = isNegative ? .max : 0
            for byte in littleEndianBytes.reversed() { bits = bits << 8 | UInt64(byte) }
            return Int64(bitPattern: bits)
        }

        public var isNegative: Bool { (littleEndianBytes.last ?? 0) & 0x80 != 0 }

        /// Parses optional sign and decimal digits (Python's `int(text)`);
        /// `nil` when the text is anything else.
        init?(decimal text: ArraySlice<UInt8>) {
            var digits = text
            let negative = digits.first == UInt8(ascii: "-")
            if negative || digits.first == UInt8(ascii: "+") { digits = digits.dropFirst() }
            guard !digits.isEmpty else { return nil }
            var limbs: [UInt32] = []  // little-endian, base 2^32
            var start = digits.startIndex
            while start < digits.endIndex {  // nine digits at a time: limbs = limbs * 10^k + chunk
                let end = start + (start == digits.startIndex && digits.count % 9 != 0 ? digits.count % 9 : 9)
                var chunk: UInt64 = 0, scale: UInt64 = 1
                for digit in digits[start ..< end] {
                    guard (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(digit) else { return nil }
                    chunk = chunk * 10 + UInt64(digit - UInt8(ascii: "0"))
                    scale *= 10
                }
                for index in limbs.indices {
                    let product = UInt64(limbs[index]) * scale + chunk
                    limbs[index] = UInt32(truncatingIfNeeded: product)
                    chunk = product >> 32
                }
                if chunk > 0 { limbs.append(UInt32(chunk)) }
                start = end
            }
            var bytes: [UInt8] = []
            for limb in limbs { withUnsafeBytes(of: limb.littleEndian) { bytes += $0 } }
            bytes.append(0)  // a sign byte, so the magnitude reads as positive
            if negative {  // two's complement: invert and add one
                var carry = 1
                for index in bytes.indices {
                    let sum = Int(~bytes[index]) + carry
                    bytes[index] = UInt8(truncatingIfNeeded: sum)
                    carry = sum >> 8
                }
            }
            self.init(littleEndian: bytes)
        }
    }

    /// The integer `bytes` hold as little-endian two's complement:
    /// ``int(_:)`` when it fits in 64 bits, ``bigInt(_:)`` otherwise.
    public static func integer(littleEndian bytes: some Collection<UInt8>) -> PickleValue {
        let big = BigInt(littleEndian: bytes)
        return big.int64.map { .int($0) } ?? .bigInt(big)
    }
}
