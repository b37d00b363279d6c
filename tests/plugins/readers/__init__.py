"""Tests of plugins/readers/."""
