"""Folders of videos and images: planning, resuming, one machine or a Ray cluster."""
