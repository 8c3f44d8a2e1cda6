"""Chapter 03: RCNet, confidence ranking."""
