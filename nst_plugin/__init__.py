"""nst-plugin: neural style transfer as a workflow node that image-processing hosts drop in."""

__version__ = "0.1.0"
