"""m2mcloud: an elastic oneM2M IoT platform on your own machines."""

__version__ = "0.1.0"
