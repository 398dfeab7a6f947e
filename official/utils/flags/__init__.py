"""absl flag helpers shared by the binaries."""
