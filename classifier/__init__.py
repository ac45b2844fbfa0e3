"""Telling SER from NSER cells: synthetic data now; the model, training and runtime to come."""
