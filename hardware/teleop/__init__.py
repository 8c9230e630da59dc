"""Teleoperation devices behind the ``TeleopDevice`` protocol."""

from hardware.teleop.base import TeleopCommand, TeleopDevice

__all__ = ["TeleopCommand", "TeleopDevice"]
