"""Workers that time reference environments inside their own virtual environments.

Each worker is a standalone script run by ``scripts.bench`` with the reference venv's Python; it
imports nothing from Lepton Gym and prints one JSON line on stdout.
"""
