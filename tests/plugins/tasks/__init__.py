"""Tests of plugins/tasks/."""
