"""Tests of framegru/deploy/."""
