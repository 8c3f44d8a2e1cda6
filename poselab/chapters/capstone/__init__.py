"""Chapter 07: the capstone (loss arena, playground)."""
