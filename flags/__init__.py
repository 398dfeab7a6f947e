"""absl flag definitions of the Assemble-TF binaries (no logic beyond
turning flags into library arguments). Import as `from flags import x`;
absl's own module is always `from absl import flags`."""
