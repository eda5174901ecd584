import Testing
@testable import LoadKit
@testable import LoadKitEngine
@testable import LoadKitProtocols
@testable import LoadKitTransport

@Suite struct DiagnosisTests {
    @Test func refusesDescriptorExhaustion() {
        // Seed 004: 10,000 connections with the fixture server in-process need 20,000 descriptors.
        let d = Diagnosis.evaluate(CapacityPlan(peakConnections: 10_000, descriptorsPerConnection: 2),
                                   openFileLimit: 20_000, descriptorsInUse: 30, ephemeralPorts: 28_232)
        let r = try! #require(d.refusal)
        #expect(r.kind == "planned_fd_exhaustion")
        #expect(r.source == .loadGenerator)
        #expect(r.message.contains("20000") && r.message.contains("10000 connections"))
        #expect(r.message.contains("separate") || r.message.contains("own process"))
    }

    @Test func warnsWhenClose() {
        let d = Diagnosis.evaluate(CapacityPlan(peakConnections: 9_000, descriptorsPerConnection: 2),
                                   openFileLimit: 20_000, descriptorsInUse: 30, ephemeralPorts: 28_232)
        #expect(d.refusal == nil)
        #expect(d.warnings.count == 1)
        let ok = Diagnosis.evaluate(CapacityPlan(peakConnections: 1_000), openFileLimit: 20_000, descriptorsInUse: 30,
                                    ephemeralPorts: 28_232)
        #expect(ok.refusal == nil && ok.warnings.isEmpty)
    }

    @Test func refusesPortExhaustionAndNamesTheRemedy() {
        let d = Diagnosis.evaluate(CapacityPlan(peakConnections: 50_000), openFileLimit: 1_000_000, descriptorsInUse: 30,
                                   ephemeralPorts: 28_232)
        let r = try! #require(d.refusal)
        #expect(r.kind == "planned_port_exhaustion")
        #expect(r.message.contains("28232") && r.message.contains("127.0.0.0/8") && r.message.contains("2 source addresses"))
        // Two source addresses make it fit.
        let two = Diagnosis.evaluate(CapacityPlan(peakConnections: 50_000, sourceAddresses: 2), openFileLimit: 1_000_000,
                                     descriptorsInUse: 30, ephemeralPorts: 28_232)
        #expect(two.refusal == nil)
    }

    @Test func runRefusesAnImpossiblePlan() async {
        let test = LoadTest("too-big", burst: 100_000).connections(perUser: 1, descriptorsEach: 2).progress(false)
        await #expect(throws: CapacityError.self) {
            _ = try await test.run { _ in Issue.record("must not start") }
        }
    }

    @Test func defaultPlanAssumesOneConnectionPerUser() async {
        let test = LoadTest("huge") { Stage("up", to: 30_000, over: .seconds(1)) }.progress(false).reports(false)
        await #expect(throws: CapacityError.self) {
            _ = try await test.run { _ in Issue.record("must not start") }
        }
    }

    @Test func preflightRaisesTheLimit() throws {
        let d = try Diagnosis.preflight(CapacityPlan(peakConnections: 10))
        #expect(Int(d.facts["open_file_limit"] ?? "") == ResourceLimits.openFiles().hard)
    }

    @Test func sourceAddressPoolRoundRobin() {
        let pool = SourceAddressPool(count: 3)
        let hosts = (0..<7).map { _ in pool.next().host }
        #expect(hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"])
        #expect(SourceAddressPool.needed(connections: 10_000, ephemeralPorts: 28_232) == 1)
        #expect(SourceAddressPool.needed(connections: 50_000, ephemeralPorts: 28_232) == 3)
        #expect(SourceAddressPool(forConnections: 1).addresses.count == 1)
    }
}
