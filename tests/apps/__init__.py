"""Tests of framegru/apps/."""
