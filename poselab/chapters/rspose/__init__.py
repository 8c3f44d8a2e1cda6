"""Chapter 02: RSPose, ranking losses."""
