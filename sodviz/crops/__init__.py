"""Where to look again: windows, ViCrop-Det, re-detected crops, fusion, slicing and the budget study."""
