"""Naptha glue: the modules' shared runtime and packaging/publishing with the naptha CLI."""
