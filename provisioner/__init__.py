"""Composition root: settings, embedded defaults and the ``provisioner`` command line.

The only package that reads the environment; everything else is handed what it needs.
"""
