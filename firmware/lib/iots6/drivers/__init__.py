"""Sensor drivers. Each takes its bus or pin as an argument, so tests can pass fakes of the hardware."""
