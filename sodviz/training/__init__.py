"""Training the demo detector: the recipe, the resumable loop, the crop stream."""
