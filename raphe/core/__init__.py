"""The ground floor that every other part of raphe stands on: the error that means "bad input",
files that appear whole or not at all, and the specs and defaults shared by several components.

Nothing here imports anything heavier than numpy, and nothing here imports another part of raphe.
"""
