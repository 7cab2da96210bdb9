"""fleetgen: synthetic fleet-telematics batches for the bronze zone of a lakehouse."""

__version__ = "0.1.0"
