import Testing
@testable import LoadKit
