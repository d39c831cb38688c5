"""Tests of zsarray.distributions."""
