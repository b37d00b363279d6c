"""Tests of framegru/io/."""
