"""Training pieces: schedules, losses, weight decay, the custom loop."""
