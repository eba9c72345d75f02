"""ACS for detectors: candidate boxes per object, their attention features, selectors and the study."""
