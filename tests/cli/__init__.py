"""Tests of framegru/cli/."""
