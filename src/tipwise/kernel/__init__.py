"""Shared kernel: database, events plumbing, errors, clock, ids. No business rules."""
