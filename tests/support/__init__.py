"""Test support: toy envs and devices, fixtures shared by several test files (never product code)."""
