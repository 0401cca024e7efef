"""skelact: skeleton-based action recognition on NTU RGB+D, reproducibly."""

__version__ = "0.1.0"
