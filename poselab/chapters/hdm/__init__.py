"""Chapter 04: HDM, heatmap distribution matching."""
