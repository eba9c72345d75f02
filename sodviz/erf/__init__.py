"""Effective receptive fields: gradients to the input per stage, Gaussian fits, AATS tokens."""
