"""Outputs: quicklooks now; resumable region writes and output STAC come with the national-cube job."""
