"""The ground floor that every other part of raphe stands on: ``errors`` (the error that means "bad
input"), ``staged`` (files that appear whole or not at all), ``specs`` (the window, the endpoints,
the decision rule, caps and bounds shared by several components) and ``native`` (silencing native
libraries' notes on stderr).

Nothing here imports anything heavier than numpy, and nothing here imports another part of raphe.
"""
