"""Maintenance of a fleet of degrading machines (``lepton/Maintenance-v0``).

Machines move through condition states by Markov chains; every step each machine runs, starts a
partial repair (taking time and a crew) or is replaced. ``optimal`` solves the one-machine
problem exactly by value iteration.
"""
