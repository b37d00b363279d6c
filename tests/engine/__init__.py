"""Tests of framegru/engine/."""
