"""Chapter 05: SAR, spatial-aware regression."""
