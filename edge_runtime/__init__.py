"""edge-detect runtime: what runs on the board (no TensorFlow here)."""

__version__ = "0.1.0"
