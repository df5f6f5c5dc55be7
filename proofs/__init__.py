"""Runnable proofs of the paper's equations and claims (installed as ``erftheory.proofs``)."""
