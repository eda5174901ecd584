import Testing
@testable import LoadKitEngine
@testable import LoadKitTransport

/// A breached latency threshold says on which side the time went, as errors do: a held-out user
/// had to compare the generator's CPU line with the verdict by hand.
@Suite struct LatencyBlameTests {
    /// A run whose p95 is 50 ms (breaching 10 ms) with the generator's CPU per second given.
    static func run(cpu: [Double], cpus: String? = "2", late: Int64 = 0) -> RunResult {
        let r = MetricsRecorder()
        for i in 1...100 { r.record("checkout", micros: Int64(i) * 500) }
        r.increment("iterations", by: 100)
        if late > 0 { r.increment("iterations_late", by: late) }
        var env: [String: String] = [:]
        if let cpus { env["generator_cpus"] = cpus }
        return RunResult(name: "blame", startedAtMillis: 1_700_000_000_000, durationSeconds: Double(cpu.count),
                         metrics: r.snapshot(), plannedPeakUsers: 10, peakActiveUsers: 10,
                         generator: cpu.enumerated().map { GeneratorSample(second: Double($0.offset), cpuPercent: $0.element,
                                                                           rssBytes: 1 << 20, openDescriptors: 20) },
                         environment: env)
    }

    static func summaries(_ r: RunResult) -> [String] {
        let outcomes = r.evaluate { SLA.p95("checkout", below: .milliseconds(10)) }
        return [ConsoleSummary.render(r, outcomes: outcomes, full: false), ConsoleSummary.full(r, outcomes: outcomes),
                HTMLReport.render(r, outcomes: outcomes)]
    }

    @Test func aBreachWithTheGeneratorBelowSaturationIsTheServersSide() {
        for text in Self.summaries(Self.run(cpu: [20, 35, 30])) {
            #expect(text.contains("latency breached with the load generator below saturation (CPU max 35 % of 2 cores"), "\(text)")
            #expect(text.contains("the time went on the server"))
        }
    }

    @Test func aBreachWithTheGeneratorSaturatedSaysItMayBeTheGenerators() {
        for text in Self.summaries(Self.run(cpu: [120, 190, 185])) {
            #expect(text.contains("⚠ latency breached while the load generator was saturated (CPU max 190 % of 2 cores"), "\(text)")
        }
        // Iterations that started late are the generator's lag too (open model).
        for text in Self.summaries(Self.run(cpu: [20, 30], late: 10)) {
            #expect(text.contains("⚠ latency breached while the load generator was saturated"), "\(text)")
            #expect(text.contains("10 % of iterations started more than 1 ms late"))
        }
    }

    @Test func noBlameLineWithoutALatencyBreachOrWithoutTheFigures() {
        let r = Self.run(cpu: [20, 30])
        let passing = r.evaluate { SLA.p95("checkout", below: .seconds(1)) }
        #expect(!ConsoleSummary.render(r, outcomes: passing, full: false).contains("latency breached"))
        let unknownCores = Self.run(cpu: [20, 30], cpus: nil)
        for text in Self.summaries(unknownCores) { #expect(!text.contains("latency breached"), "\(text)") }
        #expect(!Self.summaries(Self.run(cpu: [])).contains { $0.contains("latency breached") })
    }
}
