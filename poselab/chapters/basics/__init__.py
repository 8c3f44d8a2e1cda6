"""Chapter 00: COCO keypoints, heatmaps, OKS and AP."""
