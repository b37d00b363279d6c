"""Tests of framegru/training/."""
