"""ClipPhotos: search, tag and de-duplicate a personal photo library with a local CLIP model."""

__version__ = "0.1.0"
