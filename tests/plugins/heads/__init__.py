"""Tests of plugins/heads/."""
