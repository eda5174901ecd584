import Foundation
import LoadKit
import Synchronization

/// The four k6 scenarios of seed 003, written at the seed's size (its script names, stage lengths
/// and peak VUs: queue spike ≈ 2 min, reservation stress ≈ 4 min with `target: 200`, payment soak
/// 5 min, endurance 30 min or the 5-minute short form). `LOADKIT_SCALE` (suite key `CONCERT`)
/// shrinks them to a smoke run by default; `LOADKIT_SCALE=full` runs them as written.
enum ConcertScenario: String, CaseIterable, Sendable {
    case queueSpike = "queue-spike"
    case reservationStress = "reservation-stress"
    case paymentLoad = "payment-load"
    case concertEndurance = "concert-endurance"

    /// The seed's result-file stem (`01-queue-spike`).
    var reportName: String {
        switch self {
        case .queueSpike: "01-queue-spike"
        case .reservationStress: "02-reservation-stress"
        case .paymentLoad: "03-payment-load"
        case .concertEndurance: "04-concert-endurance"
        }
    }

    /// Section title in the comparison table.
    var title: String {
        switch self {
        case .queueSpike: "Scenario 1: Queue Spike"
        case .reservationStress: "Scenario 2: Reservation"
        case .paymentLoad: "Scenario 3: Payment"
        case .concertEndurance: "Scenario 4: Concert"
        }
    }

    /// Parses `CONCERT_COMPARE_SCENARIOS` (`all`, or names / numbers 1–4, comma-separated).
    static func list(_ s: Settings, key: String = "CONCERT_COMPARE_SCENARIOS") throws -> [ConcertScenario] {
        let items = s.list(key)
        if items.isEmpty { return [.queueSpike] }
        if items.count == 1, items[0].lowercased() == "all" { return allCases }
        return try items.map { item in
            let t = item.lowercased()
            if let n = Int(t), (1...4).contains(n) { return allCases[n - 1] }
            guard let sc = allCases.first(where: { $0.rawValue == t || $0.reportName == t }) else {
                throw ConfigError(variable: key, value: item, expected: "all, or queue-spike, reservation-stress, payment-load, concert-endurance (or 1–4)")
            }
            return sc
        }
    }

    // MARK: Plans

    /// The plan at the seed's size with the smoke size declared, scaled by the settings.
    func loadTest(_ s: Settings, config: ConcertConfiguration, name: String? = nil) throws -> LoadTest {
        let test: LoadTest
        switch self {
        case .queueSpike:
            // Ticket opening: a trickle, a sharp surge to the peak arrival rate, the peak, the fall.
            test = LoadTest(name ?? reportName, rate: .ramping(from: 10,
                .hold(.seconds(10)), .to(200, over: .seconds(10)), .hold(.seconds(60)),
                .to(10, over: .seconds(20)), .hold(.seconds(20))), maxUsers: 400)
                .smoke(users: 150, duration: .seconds(4))
        case .reservationStress:
            test = LoadTest(name ?? reportName) {
                Stage("ramp", to: 100, over: .seconds(30))
                Stage("peak", to: 200, over: .seconds(60))
                Hold(.seconds(120))
                RampDown(over: .seconds(30))
            }.smoke(users: 40, duration: .seconds(4))
        case .paymentLoad:
            test = LoadTest(name ?? reportName) {
                Stage("ramp", to: 50, over: .seconds(30))
                Hold(.seconds(240), name: "soak")
                RampDown(over: .seconds(30))
            }.smoke(users: 12, duration: .seconds(4))
        case .concertEndurance:
            let short = config.enduranceShort
            test = LoadTest(name ?? reportName) {
                Stage("ramp", to: 100, over: short ? .seconds(30) : .seconds(60))
                Hold(short ? .seconds(240) : .seconds(28 * 60), name: "endurance")
                RampDown(over: short ? .seconds(30) : .seconds(60))
            }.smoke(users: 30, duration: .seconds(5))
        }
        let conns = self == .paymentLoad ? config.paymentDuplicates : 1
        return try test.scaled(by: s, suite: "CONCERT")
            .gracefulStop(config.requestTimeout + .seconds(1))
            .connections(perUser: conns, descriptorsEach: 2)
            .progress(false)
    }

    // MARK: SLA

    /// The seed's thresholds, each overridable (`CONCERT_SLA_*`).
    func sla(_ s: Settings) throws -> [Threshold] {
        switch self {
        case .queueSpike:
            let p95 = try s.duration("CONCERT_SLA_QUEUE_P95") ?? .milliseconds(500)
            let failed = try s.double("CONCERT_SLA_QUEUE_FAILED") ?? 0.01
            return SLA.all {
                SLA.http(p95: p95, failedBelow: failed)
                SLA.errorRate(below: failed)
                SLA.count(BuiltInMetrics.httpReqs, atLeast: 1)
            }
        case .reservationStress:
            let p95 = try s.duration("CONCERT_SLA_RESERVATION_P95") ?? .seconds(1)
            let failed = try s.double("CONCERT_SLA_FAILED") ?? 0.01
            return SLA.all {
                SLA.http(p95: p95, failedBelow: failed)
                SLA.rate(ReservationMetrics.lockTimeout, below: failed)
                SLA.rate(ReservationMetrics.soldOnce, atLeast: 1)
                SLA.count(BuiltInMetrics.httpReqs, atLeast: 1)
            }
        case .paymentLoad:
            let p95 = try s.duration("CONCERT_SLA_PAYMENT_P95") ?? .seconds(1)
            let failed = try s.double("CONCERT_SLA_FAILED") ?? 0.01
            return SLA.all {
                SLA.http(p95: p95, failedBelow: failed)
                SLA.rate(PaymentMetrics.exactlyOnce, atLeast: 1)
                SLA.count(PaymentMetrics.completed, atLeast: 1)
            }
        case .concertEndurance:
            let hit = try s.double("CONCERT_SLA_CACHE_HIT") ?? 0.95
            let hitP95 = try s.duration("CONCERT_SLA_HIT_P95") ?? .milliseconds(100)
            let failed = try s.double("CONCERT_SLA_ENDURANCE_FAILED") ?? 0.001
            return SLA.all {
                SLA.rate(CatalogueMetrics.cacheHit, atLeast: hit)
                SLA.p95(CatalogueMetrics.hitDuration, below: hitP95)
                SLA.rate(BuiltInMetrics.httpReqFailed, below: failed)
                SLA.errorRate(below: failed)
            }
        }
    }

    // MARK: Running

    /// Runs the scenario against `target`: state reset first where the scenario changes state,
    /// then the load, then the consistency checks against the server's totals. Report files go to
    /// `<root>/<name>/` (k6-like `k6-summary.txt` and `summary.json`, CSV, log, `consistency.txt`,
    /// and `drift.csv` for the payment soak).
    func run(on target: ConcertTarget, settings: Settings, config: ConcertConfiguration,
             name: String? = nil, reportRoot: String? = nil, plan: LoadTest? = nil) async throws -> ScenarioRun {
        let sla = try sla(settings)
        var test = try (plan ?? loadTest(settings, config: config, name: name)).sla(sla)
            .reports(true, root: reportRoot ?? settings.string("LOADKIT_REPORT_DIR"))
        test.options.environment["target"] = target.name
        test.options.environment["base_url"] = target.client.baseURL
        test.options.environment["scenario"] = rawValue
        let client = target.client
        var checks: [ConsistencyCheck] = []
        let result: RunResult
        switch self {
        case .queueSpike:
            result = try await test.run { user in await QueueSpike.iteration(user, client) }
        case .concertEndurance:
            result = try await test.run { user in await CatalogueReads.iteration(user, client) }
        case .reservationStress:
            let didReset = try await client.reset()
            let ledger = SeatLedger()
            result = try await test.run { user in await ReservationStress.iteration(user, client, ledger) }
            checks = try await ReservationStress.verify(ledger, client: client, didReset: didReset)
            try await client.reset()   // the seed resets after this scenario so the next run starts clean
        case .paymentLoad:
            let didReset = try await client.reset()
            let ledger = PaymentLedger()
            result = try await test.run { user in await PaymentSoak.iteration(user, client, ledger) }
            checks = try await PaymentSoak.verify(ledger, client: client, didReset: didReset)
        }
        let run = ScenarioRun(scenario: self, target: target.name, result: result, sla: sla, checks: checks)
        run.writeExtras(root: test.options.reportRoot)
        return run
    }
}

/// A scenario's result with its SLA and the consistency checks made after the run.
struct ScenarioRun: Sendable {
    var scenario: ConcertScenario
    var target: String
    var result: RunResult
    var sla: [Threshold]
    var checks: [ConsistencyCheck]

    /// Evaluated SLA (not recorded as failures).
    var outcomes: [ThresholdOutcome] { sla.evaluate(result) }
    /// Every threshold and check passed.
    var passed: Bool { outcomes.allSatisfy(\.passed) && checks.allSatisfy(\.passed) }
    /// The report folder.
    func directory(root: String?) -> String { ReportWriter(root: root).directory(for: result.name) }

    /// `consistency.txt` (checks) and, with per-second data, `drift.csv`.
    func writeExtras(root: String?) {
        let dir = directory(root: root)
        var text = "consistency checks for \(result.name) (target \(target))\n"
        if checks.isEmpty { text += "  (none for this scenario)\n" }
        for c in checks { text += "  \(c.passed ? "✓" : "✗") \(c.name): \(c.message)\n" }
        try? Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/consistency.txt"))
        if scenario == .paymentLoad {
            try? Data(Drift.csv(result).utf8).write(to: URL(fileURLWithPath: dir + "/drift.csv"))
        }
    }
}

/// One consistency check after a run (no seat sold twice, points deducted exactly once).
struct ConsistencyCheck: Sendable, CustomStringConvertible {
    var name: String
    var passed: Bool
    var message: String
    var description: String { "\(passed ? "✓" : "✗") \(name): \(message)" }
}

/// Per-second mean latency from the `http_req_duration_sum_us` and `http_reqs` series: a
/// leak or a filling pool shows as a rising line.
enum Drift {
    /// (second, requests, mean ms, errors) for every second with requests.
    static func perSecond(_ r: RunResult) -> [(second: Int, reqs: Int64, meanMillis: Double, errors: Int64)] {
        let sums = r.metrics.series[K6Metrics.durationSumMicros] ?? []
        let reqs = r.metrics.series[BuiltInMetrics.httpReqs] ?? []
        let errs = r.metrics.series["errors"] ?? []
        return reqs.indices.compactMap { i in
            guard reqs[i] > 0 else { return nil }
            let s = i < sums.count ? sums[i] : 0
            return (i, reqs[i], Double(s) / 1000 / Double(reqs[i]), i < errs.count ? errs[i] : 0)
        }
    }

    /// Mean latency of the last third of the seconds ÷ that of the first third (nil with < 3 seconds).
    static func ratio(_ r: RunResult) -> Double? {
        let p = perSecond(r)
        guard p.count >= 3 else { return nil }
        let third = p.count / 3
        func mean(_ s: ArraySlice<(second: Int, reqs: Int64, meanMillis: Double, errors: Int64)>) -> Double {
            let n = s.reduce(0) { $0 + $1.reqs }
            return s.reduce(0.0) { $0 + $1.meanMillis * Double($1.reqs) } / Double(max(1, n))
        }
        let first = mean(p.prefix(third)), last = mean(p.suffix(third))
        return first > 0 ? last / first : nil
    }

    static func csv(_ r: RunResult) -> String {
        var out = "second,http_reqs,http_req_duration_avg_ms,errors\n"
        for row in perSecond(r) { out += "\(row.second),\(row.reqs),\(String(format: "%.3f", row.meanMillis)),\(row.errors)\n" }
        return out
    }
}

// MARK: - Scenario 1: queue spike (open model)

enum QueueSpike {
    /// One arrival: issue a queue token. Timed from the scheduled start, so a stalled server
    /// cannot hide its stall behind late iterations.
    static func iteration(_ user: VirtualUser, _ client: ConcertClient) async {
        let body = #"{"userId":"user-\#(user.id)-\#(user.iteration)"}"#
        guard let r = await client.request(user, .POST, client.config.paths.queueToken, json: body, step: "queue_token",
                                           expected: [200, 201], since: user.scheduledStartNanos) else { return }
        if (200...201).contains(r.status) && !r.bodyString.contains("token") {
            user.fail(ScriptFailure("queue token response has no token: \(ConcertClient.snippet(r.bodyString))",
                                    kind: "queue_token_missing", source: .server), step: "queue_token")
        }
    }
}

// MARK: - Scenario 2: reservation stress (closed model)

enum ReservationMetrics {
    static let success = "reservation_success"
    static let conflict = "reservation_conflict"
    static let lockTimeout = "reservation_lock_timeout"
    /// Rate over every answer: a hit unless the answer sold a seat that had been sold before.
    static let soldOnce = "seat_sold_once"
    static let succeeded = "reservations_succeeded"
    static let conflicted = "reservations_conflicted"
}

/// Which seats the clients were told they bought; a second 201 for a seat is a double sale.
final class SeatLedger: Sendable {
    private let sold = Mutex<[String: Int]>([:])
    /// Notes a 201 for `seat`; returns false when the seat had been sold before.
    func sell(_ seat: String) -> Bool {
        sold.withLock { s in s[seat, default: 0] += 1; return s[seat] == 1 }
    }
    /// Successful reservations and seats sold more than once.
    var summary: (reservations: Int, seats: Int, doubleSold: [String]) {
        sold.withLock { s in (s.values.reduce(0, +), s.count, s.filter { $0.value > 1 }.map(\.key).sorted()) }
    }
}

enum ReservationStress {
    /// One attempt: a random seat of the contended schedule. 201 = sold, 409 = taken (an expected
    /// outcome), 5xx = lock time-out / server error (an error).
    static func iteration(_ user: VirtualUser, _ client: ConcertClient, _ ledger: SeatLedger) async {
        let c = client.config
        user.markConnected()   // a closed-model user holds its keep-alive connection while it runs
        let n = Int.random(in: 1...c.seats)
        let seat = "\(c.scheduleId)_seat_\(n)"
        let body = #"{"userId":"user-\#(user.id)","scheduleId":"\#(c.scheduleId)","seatNo":\#(n),"seatId":"\#(seat)"}"#
        if let r = await client.request(user, .POST, c.paths.reservations, json: body, step: "reserve", expected: [200, 201, 409]) {
            let sold = r.status == 200 || r.status == 201
            user.rate(ReservationMetrics.success, hit: sold)
            user.rate(ReservationMetrics.conflict, hit: r.status == 409)
            user.rate(ReservationMetrics.lockTimeout, hit: r.status == 500 || r.status == 504)
            let first = sold ? ledger.sell(seat) : true
            user.rate(ReservationMetrics.soldOnce, hit: first)
            if sold {
                user.count(ReservationMetrics.succeeded)
                if !first {
                    user.fail(ScriptFailure("seat \(seat) was sold twice", kind: "double_booking", source: .server), step: "reserve")
                }
            } else if r.status == 409 {
                user.count(ReservationMetrics.conflicted)
            }
        }
        await user.sleep(for: c.thinkTime)
    }

    /// No seat sold twice, by the clients' own count and by the server's totals.
    static func verify(_ ledger: SeatLedger, client: ConcertClient, didReset: Bool) async throws -> [ConsistencyCheck] {
        let s = ledger.summary
        var checks = [ConsistencyCheck(name: "no seat sold twice (client)", passed: s.doubleSold.isEmpty,
                                       message: s.doubleSold.isEmpty ? "\(s.reservations) reservations for \(s.seats) distinct seats"
                                           : "seats sold more than once: \(s.doubleSold.prefix(10).joined(separator: ", "))")]
        checks.append(ConsistencyCheck(name: "sold seats within the schedule", passed: s.seats <= client.config.seats,
                                       message: "\(s.seats) seats sold of \(client.config.seats)"))
        if let t = try await client.totals(), let reserved = t.reservedSeats, let made = t.reservations {
            checks.append(ConsistencyCheck(name: "no seat sold twice (server totals)", passed: reserved == made,
                                           message: "reservedSeats \(reserved), reservations \(made)"))
            if didReset {
                checks.append(ConsistencyCheck(name: "server reservations = client 201s", passed: made == s.reservations,
                                               message: "server \(made), client \(s.reservations)"))
            }
        }
        return checks
    }
}

// MARK: - Scenario 3: payment soak (closed model)

enum PaymentMetrics {
    static let exactlyOnce = "payment_exactly_once"
    static let completed = "payments_completed"
    static let replayed = "payments_replayed"
    static let doubleCharged = "payments_double_charged"
    static let inDoubt = "payments_in_doubt"
}

/// What the clients know about the payments they made, per user.
final class PaymentLedger: Sendable {
    struct UserBook { var before: Int?; var paid = 0; var inDoubt = 0 }
    struct State { var users: [String: UserBook] = [:]; var paid = 0; var replays = 0; var inDoubt = 0; var doubleCharged = 0 }
    let state = Mutex(State())

    func knows(_ user: String) -> Bool { state.withLock { $0.users[user] != nil } }
    func start(_ user: String, balance: Int?) { state.withLock { $0.users[user] = UserBook(before: balance) } }
    func record(_ user: String, paid: Bool, replays: Int, inDoubt: Bool, doubleCharged: Bool) {
        state.withLock { s in
            if paid { s.paid += 1; s.users[user, default: UserBook(before: nil)].paid += 1 }
            if inDoubt { s.inDoubt += 1; s.users[user, default: UserBook(before: nil)].inDoubt += 1 }
            s.replays += replays
            if doubleCharged { s.doubleCharged += 1 }
        }
    }
}

enum PaymentSoak {
    /// One payment, sent `paymentDuplicates` times at once with the same `Idempotency-Key`:
    /// exactly one may be created (201); the others replay it (200) or are refused as a
    /// duplicate in flight (409). Both are expected outcomes.
    static func iteration(_ user: VirtualUser, _ client: ConcertClient, _ ledger: PaymentLedger) async {
        let c = client.config
        user.markConnected()
        let userId = "soak-user-\(user.id)"
        if !ledger.knows(userId) { ledger.start(userId, balance: try? await client.balance(of: userId)) }
        let key = "pay-\(user.id)-\(user.iteration)-\(UInt32.random(in: 0...UInt32.max))"
        let body = #"{"userId":"\#(userId)","amount":\#(c.paymentAmount)}"#
        let answers = await withTaskGroup(of: (Int, String?)?.self) { group in
            for _ in 0..<c.paymentDuplicates {
                group.addTask {
                    guard let r = await client.request(user, .POST, c.paths.payments, json: body, headers: ["Idempotency-Key": key],
                                                       step: "payment", expected: [200, 201, 409], trackDrift: true) else { return nil }
                    return (r.status, r.jsonValue(at: "paymentId"))
                }
            }
            var all: [(Int, String?)?] = []
            for await a in group { all.append(a) }
            return all
        }
        let created = answers.filter { $0?.0 == 201 }.count
        let replayed = answers.filter { $0?.0 == 200 }.count
        let ids = Set(answers.compactMap { a -> String? in a.flatMap { (200...201).contains($0.0) ? $0.1 : nil } })
        let noAnswer = answers.contains { $0 == nil }
        let double = created > 1 || ids.count > 1
        user.rate(PaymentMetrics.exactlyOnce, hit: !double)
        if double {
            user.count(PaymentMetrics.doubleCharged)
            user.fail(ScriptFailure("Idempotency-Key \(key) was charged \(created) times (\(ids.count) payment ids)",
                                    kind: "double_charge", source: .server), step: "payment")
        }
        let paid = created + replayed > 0
        if paid { user.count(PaymentMetrics.completed) }
        if replayed > 0 { user.count(PaymentMetrics.replayed, by: Int64(replayed)) }
        let inDoubt = !paid && noAnswer   // a lost answer may still have been charged
        if inDoubt { user.count(PaymentMetrics.inDoubt) }
        ledger.record(userId, paid: paid, replays: replayed, inDoubt: inDoubt, doubleCharged: double)
        await user.sleep(for: c.thinkTime)
    }

    /// Points were deducted exactly once per payment: the server's totals against the clients'
    /// count, and each user's balance before and after.
    static func verify(_ ledger: PaymentLedger, client: ConcertClient, didReset: Bool) async throws -> [ConsistencyCheck] {
        let s = ledger.state.withLock { $0 }
        let amount = client.config.paymentAmount
        var checks = [ConsistencyCheck(name: "no key charged twice (client)", passed: s.doubleCharged == 0,
                                       message: "\(s.paid) payments, \(s.replays) replays, \(s.doubleCharged) double charges, \(s.inDoubt) in doubt")]
        if let t = try await client.totals(), didReset {
            if let n = t.payments {
                checks.append(ConsistencyCheck(name: "server payments = client payments", passed: (s.paid...(s.paid + s.inDoubt)).contains(n),
                                               message: "server \(n), client \(s.paid) (+\(s.inDoubt) in doubt)"))
            }
            if let paidAmount = t.paidAmount {
                checks.append(ConsistencyCheck(name: "amount charged = payments × amount",
                                               passed: (s.paid * amount...(s.paid + s.inDoubt) * amount).contains(paidAmount),
                                               message: "server \(paidAmount), client \(s.paid) × \(amount)"))
                if let deducted = t.pointsDeducted {
                    checks.append(ConsistencyCheck(name: "points deducted = amount charged", passed: deducted == paidAmount,
                                                   message: "deducted \(deducted), charged \(paidAmount)"))
                }
            }
            if let consistent = t.consistent {
                checks.append(ConsistencyCheck(name: "server reports consistent", passed: consistent, message: "consistent = \(consistent)"))
            }
        }
        // Balances: a sample of users (at most 50), before − after = paid × amount.
        var bad: [String] = []
        var checked = 0
        for (user, book) in s.users.sorted(by: { $0.key < $1.key }).prefix(50) {
            guard let before = book.before, let after = try await client.balance(of: user) else { continue }
            checked += 1
            let spent = before - after
            if !((book.paid * amount)...((book.paid + book.inDoubt) * amount)).contains(spent) {
                bad.append("\(user): spent \(spent), paid \(book.paid) × \(amount)")
            }
        }
        if checked > 0 {
            checks.append(ConsistencyCheck(name: "each balance fell by exactly its payments", passed: bad.isEmpty,
                                           message: bad.isEmpty ? "\(checked) users checked" : bad.prefix(5).joined(separator: "; ")))
        }
        return checks
    }
}

// MARK: - Scenario 4: concert endurance (closed model)

enum CatalogueMetrics {
    static let cacheHit = "cache_hit"
    static let hitDuration = "http_req_duration_cache_hit"
    static let missDuration = "http_req_duration_cache_miss"
    static let headerMissing = "cache_header_missing"
}

enum CatalogueReads {
    /// One browse: the concert list, a concert, its schedules, a schedule's seats. Each answer's
    /// `X-Cache` header feeds the `cache_hit` rate and the hit/miss latency trends.
    static func iteration(_ user: VirtualUser, _ client: ConcertClient) async {
        let c = client.config
        let concert = c.concertIds.randomElement() ?? "concert_test_1"
        let schedule = c.scheduleIds.randomElement() ?? "schedule_test_1"
        user.markConnected()
        let paths = [c.paths.concerts, c.paths.concerts + "/" + concert, c.paths.concerts + "/" + concert + "/schedules",
                     ConcertConfiguration.fill(c.paths.scheduleSeats, ["scheduleId": schedule])]
        for p in paths {
            let t0 = monotonicNanos()
            guard let r = await client.request(user, .GET, p, step: "catalogue", expected: [200]), r.status == 200 else { continue }
            let nanos = monotonicNanos() &- t0
            if let x = r.headers["X-Cache"] {
                let hit = x.uppercased().hasPrefix("HIT")
                user.rate(CatalogueMetrics.cacheHit, hit: hit)
                user.recorder.recordNanos(hit ? CatalogueMetrics.hitDuration : CatalogueMetrics.missDuration, nanos)
            } else {
                user.count(CatalogueMetrics.headerMissing)
            }
            if user.isStopping { break }
        }
        await user.sleep(for: c.thinkTime)
    }
}
