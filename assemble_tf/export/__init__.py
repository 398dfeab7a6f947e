"""SavedModel export with serving signatures."""
