"""Developer tools shipped with the package (docs generation)."""
