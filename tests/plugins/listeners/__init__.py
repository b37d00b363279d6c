"""Tests of plugins/listeners/."""
