import Foundation

/// Every result's JSON, one way: keys sorted, pretty printed, and a field documented "or null" present
/// as `null` when it has no value. Swift's synthesized `Encodable` leaves a nil optional out, so a
/// reader's `d["stopReason"]` would raise where the documentation promises `null`; rather than write
/// `encode(to:)` by hand for every result type, the encoded object gets its nil optionals back,
/// found by reflecting over the value that was encoded (loadgen's own types only: the layout of a
/// library's type, such as a histogram, is that library's business).
enum ResultJSON {
    static func data(_ value: some Encodable) throws -> Data {
        let plain = try JSONEncoder().encode(value)
        let object = try JSONSerialization.jsonObject(with: plain, options: [.fragmentsAllowed])
        return try JSONSerialization.data(
            withJSONObject: withNulls(object, for: value),
            options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes, .fragmentsAllowed])
    }

    static func text(_ value: some Encodable) -> String {
        (try? data(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// `json` (what `value` encoded to) with a `null` for every nil optional property of `value`
    /// and of the loadgen values inside it.
    static func withNulls(_ json: Any, for value: Any) -> Any {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            return mirror.children.first.map { withNulls(json, for: $0.value) } ?? json
        }
        if var object = json as? [String: Any], mirror.displayStyle == .struct || mirror.displayStyle == .class {
            guard isLoadgenType(value) else { return json }
            for child in mirror.children {
                guard var key = child.label else { continue }
                if key.hasPrefix("_") { key.removeFirst() }  // a property wrapper's storage
                let childMirror = Mirror(reflecting: child.value)
                if let inner = object[key] {
                    object[key] = withNulls(inner, for: child.value)
                } else if childMirror.displayStyle == .optional && childMirror.children.isEmpty {
                    object[key] = NSNull()
                }
            }
            return object
        }
        if let array = json as? [Any], mirror.displayStyle == .collection {
            let elements = mirror.children.map(\.value)
            guard elements.count == array.count else { return json }
            return zip(array, elements).map { withNulls($0, for: $1) }
        }
        return json
    }

    private static func isLoadgenType(_ value: Any) -> Bool {
        String(reflecting: type(of: value)).hasPrefix("loadgen.")
    }
}
