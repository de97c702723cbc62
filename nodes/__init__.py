"""The palette: node families the canvas offers, and the stores they write to."""
