"""Tests of plugins/backbones/."""
