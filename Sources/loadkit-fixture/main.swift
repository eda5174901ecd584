import LoadKit
import LoadKitFixtures
print("loadkit-fixture: not yet")
