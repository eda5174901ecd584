import LoadKit
print("loadkit: not yet")
