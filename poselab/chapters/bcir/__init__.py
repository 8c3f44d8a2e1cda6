"""Chapter 06: BCIR, bias-compensated integral regression."""
