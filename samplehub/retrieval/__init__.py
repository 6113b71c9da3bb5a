"""The three-step cross-dataset query, query-by-image and the dataset builder."""
