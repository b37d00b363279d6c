"""Tests of framegru/plugin_manager/."""
