"""Tests of framegru/bench/."""
