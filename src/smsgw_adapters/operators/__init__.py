"""Adapters for upstream SMS operators."""
