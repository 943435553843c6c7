"""Media files a model takes or makes: their types told from the bytes, and where they come from."""
