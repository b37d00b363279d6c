"""Tests of framegru/model/."""
