"""Skeleton data: raw readers, preprocessing, formats, sampling and input streams."""
