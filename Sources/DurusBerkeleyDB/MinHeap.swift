/// A binary min-heap: the walks' frontier and the migration's windows take
/// out the smallest of what they hold.
struct MinHeap<Element: Comparable> {
    private var elements: [Element] = []

    init() {}

    /// A heap of `sorted`, which must be ascending (already heap-ordered).
    init(ascending sorted: [Element]) {
        elements = sorted
    }

    var isEmpty: Bool { elements.isEmpty }
    var count: Int { elements.count }

    mutating func push(_ element: Element) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0, case let parent = (child - 1) / 2, elements[child] < elements[parent] {
            elements.swapAt(parent, child)
            child = parent
        }
    }

    /// Removes and returns the smallest element; nil when empty.
    mutating func popSmallest() -> Element? {
        guard !elements.isEmpty else { return nil }
        elements.swapAt(0, elements.count - 1)
        let smallest = elements.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var least = parent
            if left < elements.count, elements[left] < elements[least] { least = left }
            if right < elements.count, elements[right] < elements[least] { least = right }
            if least == parent { break }
            elements.swapAt(parent, least)
            parent = least
        }
        return smallest
    }
}
