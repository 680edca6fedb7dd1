"""Applying the register to a data set (`flask register apply`), and the register runs it records."""
