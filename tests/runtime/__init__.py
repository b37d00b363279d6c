"""Tests of framegru/runtime/."""
