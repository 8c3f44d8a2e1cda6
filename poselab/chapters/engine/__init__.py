"""Chapter 01: the training engine and codecs."""
