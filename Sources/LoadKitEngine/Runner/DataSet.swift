import Foundation
import Synchronization
import LoadKitTransport
import LoadKitProtocols

/// Rows of a CSV data set for virtual users, like JMeter's *CSV Data Set Config* (seed 002:
/// `memberId,challengeId`, "Recycle on EOF: true, Stop thread on EOF: false").
///
/// The first line names the columns (unless ``init(text:columns:recycle:source:)`` is given
/// `columns`); fields are separated by commas, may be quoted with `"` (a doubled `""` inside is a
/// quote), and blank lines are skipped. Two ways to hand out rows:
/// - ``row(forUser:)``: user k gets row k (mod the row count when recycling): deterministic,
///   so shards and reruns give each user the same row.
/// - ``next()``: a shared cursor, one row per call, wrapping at the end (JMeter's behaviour).
///
/// ```swift
/// let members = try DataSet(contentsOf: "fixtures/data/runnity_members.csv")
/// let row = try members.row(forUser: user.index)      // ["memberId": "1", "challengeId": "100"]
/// let memberId = try row.int("memberId")
/// ```
public final class DataSet: Sendable {
    /// Column names, in file order.
    public let columns: [String]
    /// The rows (fields in column order).
    public let rows: [[String]]
    /// Start again at the first row after the last (true) or fail with `dataset_exhausted`.
    public let recycle: Bool
    /// Where the rows came from (a path), for error messages.
    public let source: String
    private let cursor = Atomic<Int>(0)

    /// Parses CSV text. Throws ``DataSetError`` (`dataset_invalid`) for an empty set, a row whose
    /// field count differs from the header's, or an unterminated quote.
    public init(text: String, columns: [String]? = nil, recycle: Bool = true, source: String = "CSV text") throws {
        var lines = try DataSet.parse(text, source: source)
        let header: [String]
        if let c = columns { header = c } else {
            guard !lines.isEmpty else { throw DataSetError(kind: "dataset_invalid", message: "\(source) is empty (expected a header line)") }
            header = lines.removeFirst().map { $0.lkTrimmed(" \t\u{FEFF}") }
        }
        guard !header.isEmpty, !header.contains("") else {
            throw DataSetError(kind: "dataset_invalid", message: "\(source): the header names no columns or an empty one")
        }
        for (i, r) in lines.enumerated() where r.count != header.count {
            throw DataSetError(kind: "dataset_invalid",
                               message: "\(source): data row \(i + 1) has \(r.count) fields, the header has \(header.count) (\(header.joined(separator: ",")))")
        }
        guard !lines.isEmpty else { throw DataSetError(kind: "dataset_invalid", message: "\(source) has a header but no rows") }
        self.columns = header
        self.rows = lines
        self.recycle = recycle
        self.source = source
    }

    /// Reads and parses a CSV file (see ``init(text:columns:recycle:source:)``); an unreadable
    /// file throws `dataset_unreadable`.
    public convenience init(contentsOf path: String, columns: [String]? = nil, recycle: Bool = true) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataSetError(kind: "dataset_unreadable", message: "cannot read the data set file \(path)")
        }
        try self.init(text: text, columns: columns, recycle: recycle, source: path)
    }

    /// Number of rows.
    public var count: Int { rows.count }

    /// Row `index` (0-based): wraps modulo ``count`` when recycling, else throws `dataset_exhausted`
    /// past the end.
    public func row(at index: Int) throws -> DataSetRow {
        guard index >= 0 else { throw DataSetError(kind: "dataset_exhausted", message: "\(source): no row at index \(index)") }
        if index >= rows.count && !recycle {
            throw DataSetError(kind: "dataset_exhausted",
                               message: "\(source) has \(rows.count) rows and recycling is off; row \(index + 1) was asked for")
        }
        return DataSetRow(columns: columns, fields: rows[index % rows.count])
    }

    /// The row of user `index` (`VirtualUser.index`, run-wide in sharded runs): row `index` mod count.
    public func row(forUser index: Int) throws -> DataSetRow { try row(at: index) }

    /// The next row of a shared cursor (thread-safe), recycled at the end of the file.
    public func next() throws -> DataSetRow {
        try row(at: cursor.add(1, ordering: .relaxed).oldValue)
    }

    /// Values of one column, in row order (e.g. every `memberId` for a set-up phase).
    public func column(_ name: String) throws -> [String] {
        guard let i = columns.firstIndex(of: name) else {
            throw DataSetError(kind: "dataset_invalid", message: "\(source) has no column '\(name)' (columns: \(columns.joined(separator: ",")))")
        }
        return rows.map { $0[i] }
    }

    /// Splits CSV text into records of fields (RFC 4180 quoting; `\n` or `\r\n` line ends).
    static func parse(_ text: String, source: String) throws -> [[String]] {
        var records: [[String]] = []
        var fields: [String] = []
        var field = ""
        var quoted = false, wasQuoted = false
        var it = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func endRecord() {
            fields.append(wasQuoted ? field : field.lkTrimmed(" \t"))
            // A line holding nothing at all is skipped.
            if !(fields.count == 1 && fields[0].isEmpty && !wasQuoted) { records.append(fields) }
            fields = []; field = ""; wasQuoted = false
        }
        while let c = pending ?? it.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = it.next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else { field.unicodeScalars.append(c) }
                continue
            }
            switch c {
            case "\"" where field.lkTrimmed(" \t").isEmpty:
                field = ""; quoted = true; wasQuoted = true
            case ",":
                fields.append(wasQuoted ? field : field.lkTrimmed(" \t")); field = ""; wasQuoted = false
            case "\r":
                continue
            case "\n":
                endRecord()
            default:
                field.unicodeScalars.append(c)
            }
        }
        if quoted { throw DataSetError(kind: "dataset_invalid", message: "\(source): a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty || wasQuoted { endRecord() }
        return records
    }
}

/// One row of a ``DataSet``: fields by column name.
public struct DataSetRow: Sendable, Equatable {
    /// Column names.
    public let columns: [String]
    /// Fields in column order.
    public let fields: [String]

    /// The field of `column`, nil when there is no such column.
    public subscript(_ column: String) -> String? {
        columns.firstIndex(of: column).map { fields[$0] }
    }

    /// The field of `column` as an integer; throws `dataset_invalid` when absent or not a number.
    public func int(_ column: String) throws -> Int {
        guard let v = self[column] else {
            throw DataSetError(kind: "dataset_invalid", message: "data set has no column '\(column)' (columns: \(columns.joined(separator: ",")))")
        }
        // A credential column's value is never quoted (a password read as a number by mistake).
        let shown = Secrets.isSecret(column) ? "a value (not shown: a credential column)" : "'\(v)'"
        guard let n = Int(v) else { throw DataSetError(kind: "dataset_invalid", message: "data set column '\(column)' holds \(shown), not an integer") }
        return n
    }
}

/// A data set that cannot be read, parsed or has run out of rows (source: script — the test's own
/// input is at fault, neither the server nor the generator's resources).
public struct DataSetError: ClassifiedError, Sendable, Equatable {
    /// `dataset_unreadable`, `dataset_invalid` or `dataset_exhausted`.
    public var kind: String
    /// What is wrong, naming the file.
    public var message: String
    /// Always the script (its data).
    public var source: FailureSource { .script }
    /// The message, through ``Secrets/redact(_:)`` (a path or a cell may carry a credential).
    public var description: String { Secrets.redact(message) }

    /// Creates an error (also for callers that find a data set unusable, e.g. a missing column).
    public init(kind: String, message: String) { self.kind = kind; self.message = message }
}
