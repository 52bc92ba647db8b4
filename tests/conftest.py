"""Shared pytest configuration for vosapp."""
