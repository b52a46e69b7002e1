"""The Whisper-encoder teacher (host side; never imported by edge_runtime)."""
