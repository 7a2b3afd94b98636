"""Persona chat environment: a Naptha environment module where persona agents take turns on a topic."""
