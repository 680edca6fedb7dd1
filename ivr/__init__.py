"""Opt-Out Line: the telephone and SMS line for the National Data Opt-Out."""
