"""Tests of framegru/config/."""
